package store

import (
	"cmp"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Names of the files in a data directory.
const (
	lockName  = "LOCK"
	metaName  = "META"
	tmpSuffix = ".tmp"
	// damagedSuffix marks a file found damaged at Open, kept for a look.
	damagedSuffix = ".damaged"
	segPrefix     = "seg-"
	snapPrefix    = "snap-"
	fileSuffix    = ".log"

	// formatVersion is written to META of a new directory. In version 2
	// every file but the newest segment ends with an end frame; version 1
	// had none. Open takes a version 1 directory, and the first snapshot
	// that leaves none of its files behind moves it to version 2. Open
	// refuses any other version.
	formatVersion       = 2
	legacyFormatVersion = 1
	metaMagic           = "herd-store"
)

func segName(n uint64) string  { return fmt.Sprintf("%s%010d%s", segPrefix, n, fileSuffix) }
func snapName(n uint64) string { return fmt.Sprintf("%s%010d%s", snapPrefix, n, fileSuffix) }

// parseName returns the number in a segment or snapshot file name.
func parseName(name, prefix string) (uint64, bool) {
	digits, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return 0, false
	}
	digits, ok = strings.CutSuffix(digits, fileSuffix)
	if !ok || digits == "" {
		return 0, false
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	return n, err == nil && n > 0
}

// dirState is what a data directory holds, by file number.
type dirState struct {
	snaps []uint64 // snapshot numbers, ascending
	segs  []uint64 // segment numbers, ascending
	temps []string // names of leftover temporary files
}

func readDirState(dir string) (dirState, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return dirState{}, fmt.Errorf("store: read data dir: %w", err)
	}
	var st dirState
	for _, e := range ents {
		name := e.Name()
		if n, ok := parseName(name, segPrefix); ok {
			st.segs = append(st.segs, n)
		} else if n, ok := parseName(name, snapPrefix); ok {
			st.snaps = append(st.snaps, n)
		} else if strings.HasSuffix(name, tmpSuffix) {
			st.temps = append(st.temps, name)
		}
	}
	slices.Sort(st.snaps)
	slices.Sort(st.segs)
	return st, nil
}

// replaceable reports whether older files can stand in for snapshot
// snaps[i]: the snapshot before it (or a new directory's empty start) and
// an unbroken run of segments from there. Compaction deletes covered
// segments oldest first, so a crash in the middle of it leaves a run that
// does not start there.
func (st dirState) replaceable(i int) bool {
	next := uint64(1) // a new directory's first segment
	if i > 0 {
		next = st.snaps[i-1]
	}
	found := false
	for _, n := range st.segs {
		if n >= st.snaps[i] {
			break
		}
		if n != next {
			return false
		}
		next, found = n+1, true
	}
	return found
}

// freeName returns path, or if a file has that name, the first of path.2,
// path.3, ... that none has: a file set aside never replaces another.
func freeName(path string) string {
	name := path
	for k := 2; ; k++ {
		if _, err := os.Lstat(name); errors.Is(err, fs.ErrNotExist) {
			return name
		}
		name = fmt.Sprintf("%s.%d", path, k)
	}
}

// setAside renames the damaged file at path to path.damaged (or the first
// free name after it, see freeName), where Open no longer reads it but a
// person can, and returns the new path.
func setAside(path string) (string, error) {
	aside := freeName(path + damagedSuffix)
	if err := os.Rename(path, aside); err != nil {
		return "", fmt.Errorf("store: set aside damaged file: %w", err)
	}
	return aside, nil
}

// fileSize returns the size of the file at path, or 0 if it cannot say.
func fileSize(path string) int64 {
	if fi, err := os.Stat(path); err == nil {
		return fi.Size()
	}
	return 0
}

// lockDir takes an exclusive, non-blocking flock on dir's LOCK file. The lock
// lives as long as the returned file stays open.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("store: open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("store: data dir %s is in use by another server (flock on %s): %w", dir, path, ErrLocked)
		}
		return nil, fmt.Errorf("store: lock %s: %w", path, err)
	}
	return f, nil
}

// meta is what META holds.
type meta struct {
	version int
	epoch   uint64
}

// noMeta is readMeta's problem for a directory without META.
const noMeta = "missing"

// readMeta reads META. A file that is missing or damaged is a problem it
// describes, for the caller to repair; an I/O error, or a format version
// this code does not know (a newer herd's), is an error.
func readMeta(dir string) (m meta, problem string, err error) {
	path := filepath.Join(dir, metaName)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return meta{}, noMeta, nil
	}
	if err != nil {
		return meta{}, "", fmt.Errorf("store: read meta: %w", err)
	}
	hasVersion, problem := false, ""
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSuffix(line, "\n")
		key, value, _ := strings.Cut(line, " ")
		switch key {
		case metaMagic:
			version, err := strconv.Atoi(value)
			if err != nil {
				problem = cmp.Or(problem, fmt.Sprintf("bad %q line", line))
				continue
			}
			m.version, hasVersion = version, true
		case "epoch":
			// Always written as 16 digits: fewer means a damaged file.
			if m.epoch, err = strconv.ParseUint(value, 16, 64); err != nil || len(value) != 16 {
				problem = cmp.Or(problem, fmt.Sprintf("bad %q line", line))
			}
		}
	}
	switch {
	case hasVersion && m.version != formatVersion && m.version != legacyFormatVersion:
		// A newer herd's directory, whatever else is wrong with META.
		return meta{}, "", fmt.Errorf("store: %s: format version %d, want %d or %d", path, m.version, legacyFormatVersion, formatVersion)
	case problem != "":
		return meta{}, problem, nil
	case !hasVersion:
		return meta{}, "no format version", nil
	case m.epoch == 0:
		return meta{}, "no epoch", nil
	}
	return m, "", nil
}

// writeMeta replaces META atomically with m.
func writeMeta(dir string, m meta) error {
	content := fmt.Sprintf("%s %d\nepoch %016x\n", metaMagic, m.version, m.epoch)
	return writeFileAtomic(dir, metaName, []byte(content))
}

func newEpoch() (uint64, error) {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, fmt.Errorf("store: new epoch: %w", err)
		}
		if e := binary.LittleEndian.Uint64(b[:]); e != 0 {
			return e, nil
		}
	}
}

// writeFileAtomic replaces dir/name with data: temporary file, fsync, rename,
// directory fsync.
func writeFileAtomic(dir, name string, data []byte) error {
	tmp := filepath.Join(dir, name+tmpSuffix)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("store: create %s: %w", tmp, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("store: write %s: %w", name, err)
	}
	return syncDir(dir)
}

// syncDir fsyncs a directory so that file creations, renames and removals in
// it survive power loss.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("store: open dir for fsync: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("store: fsync dir %s: %w", dir, err)
	}
	return nil
}
