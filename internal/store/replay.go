package store

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// Damage is a file in which Replay found data that the disk damaged, rather
// than the torn tail a crash leaves: a bad frame in a snapshot or in a
// segment before the newest, or one followed by valid frames. Replay yields
// the entries before the bad frame, none after it in that file, and leaves
// the file as it is; the next snapshot sets it aside (see Snapshot.Write).
type Damage struct {
	File   string // path of the file
	Offset int64  // where its first bad frame starts
	Size   int64  // its size: Size-Offset bytes were not replayed
	Reason string // what is wrong with the frame at Offset
}

// Replay calls fn with every entry of the latest snapshot, then of every
// segment after it, in append order. The slice passed to fn is only valid
// during the call. If fn returns an error Replay stops and returns it.
//
// At the first frame of a file that is not valid (bad length, bad
// checksum, partial frame) Replay stops reading that file and goes on with
// the next one:
//   - a torn tail of the newest segment, as a crash mid-write leaves (no
//     valid frame after it), is cut off so that appends continue after the
//     last whole entry, and logged at Warn level;
//   - anything else is damage: logged at Error level, reported by Damaged,
//     and the file is left whole. If it is the newest segment, appends go
//     to a new one.
//
// Both log lines name the file, the offset and the bytes dropped.
//
// Replay must be called exactly once, before any Append. If it fails the Log
// cannot be appended to and should be closed.
func (l *Log) Replay(fn func(entry []byte) error) error {
	l.mu.Lock()
	if l.replayStarted || l.closed {
		l.mu.Unlock()
		return errors.New("store: Replay called twice or after Close")
	}
	l.replayStarted = true
	l.mu.Unlock()

	var files []string
	if l.snapNum > 0 {
		files = append(files, snapName(l.snapNum))
	}
	for _, n := range l.segNums {
		files = append(files, segName(n))
	}
	var disk, sinceSnap, snapSize int64
	newestDamaged := false
	for i, name := range files {
		newest := len(l.segNums) > 0 && i == len(files)-1
		size, damage, err := l.replayFile(filepath.Join(l.dir, name), newest, fn)
		if err != nil {
			return err
		}
		if damage != nil {
			l.damaged = append(l.damaged, *damage)
			newestDamaged = newest
		}
		disk += size
		if l.snapNum > 0 && i == 0 {
			snapSize = size
		} else {
			sinceSnap += size
		}
	}

	tail := max(l.snapNum, 1)
	if len(l.segNums) > 0 {
		tail = l.segNums[len(l.segNums)-1]
	}
	if newestDamaged {
		tail++ // never append after damage: the next Replay would not read it
	}
	f, err := l.createSegment(tail)
	if err != nil {
		return err
	}
	l.stats.diskBytes.Add(disk)
	l.stats.sinceSnapshot.Add(sinceSnap)
	l.stats.snapshotBytes.Store(snapSize)

	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		f.Close()
		return ErrClosed
	}
	l.f = f
	l.curSeg = tail
	l.ready = true
	return nil
}

// Damaged returns the files Replay found damaged, in the order it read
// them, or nil. Entries after each one's Offset were lost: the caller must
// get them again from elsewhere.
func (l *Log) Damaged() []Damage { return slices.Clone(l.damaged) }

// replayFile calls fn for each valid frame of the file at path and returns
// the file's resulting size and, if the disk damaged it, what Replay
// reports. newest says whether the file is the newest segment, the only one
// whose tail may be torn by a crash; a torn tail is cut off.
func (l *Log) replayFile(path string, newest bool, fn func([]byte) error) (int64, *Damage, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, nil, fmt.Errorf("store: replay: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, nil, fmt.Errorf("store: replay: %w", err)
	}
	size := fi.Size()
	off, reason, err := scanFrames(f, size, fn)
	if err != nil {
		return 0, nil, err
	}
	if off == size {
		return size, nil, nil
	}

	validAfter, err := validFrameAfter(f, off+1, size)
	if err != nil {
		return 0, nil, err
	}
	attrs := []any{"file", path, "offset", off, "bytes_dropped", size - off, "reason", reason}
	if !newest || validAfter {
		l.logger.Error("store: file damaged; replayed the entries before the first bad frame and none after it, and left the file as it is",
			append(attrs, "valid_frames_after", validAfter)...)
		return size, &Damage{File: path, Offset: off, Size: size, Reason: reason}, nil
	}
	l.logger.Warn("store: truncated torn tail of log", attrs...)
	if err := f.Truncate(off); err != nil {
		return 0, nil, fmt.Errorf("store: truncate %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return 0, nil, fmt.Errorf("store: fsync %s: %w", path, err)
	}
	return off, nil, nil
}

// scanFrames calls fn with the payload of each valid frame of f, which is
// size bytes long, from its start. It returns the offset of the first bad
// frame (size if there is none) and what is wrong with it; an error is an
// I/O error or fn's.
func scanFrames(f *os.File, size int64, fn func([]byte) error) (off int64, reason string, err error) {
	r := bufio.NewReaderSize(f, 256<<10)
	var (
		hdr     [frameHeaderSize]byte
		payload []byte
	)
	for off < size {
		if size-off < frameHeaderSize {
			return off, "partial frame header", nil
		}
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return off, "", fmt.Errorf("store: read %s: %w", f.Name(), err)
		}
		n := int64(binary.LittleEndian.Uint32(hdr[0:4]))
		if n > MaxEntrySize {
			return off, "bad frame length", nil
		}
		if size-off-frameHeaderSize < n {
			return off, "partial frame", nil
		}
		if int64(cap(payload)) < n {
			payload = make([]byte, n)
		}
		payload = payload[:n]
		if _, err := io.ReadFull(r, payload); err != nil {
			return off, "", fmt.Errorf("store: read %s: %w", f.Name(), err)
		}
		if frameChecksum(hdr[0:4], payload) != binary.LittleEndian.Uint32(hdr[4:8]) {
			return off, "checksum mismatch", nil
		}
		if err := fn(payload); err != nil {
			return off, "", err
		}
		off += frameHeaderSize + n
	}
	return off, "", nil
}

// checkSnapshot returns what is wrong with the snapshot file at path, or ""
// if every frame of it is valid. A snapshot is written whole (to a
// temporary file, then renamed), so any bad frame means it is damaged.
func checkSnapshot(path string) (problem string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("store: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("store: %w", err)
	}
	if fi.Size() == 0 {
		return "empty", nil // a snapshot holds at least its sequence entry
	}
	off, reason, err := scanFrames(f, fi.Size(), func([]byte) error { return nil })
	if err != nil || reason == "" {
		return "", err
	}
	return fmt.Sprintf("%s at offset %d", reason, off), nil
}

// validFrameAfter reports whether a valid frame starts at any offset in
// [from, size) of f. It tells a torn tail (garbage to the end) from damage in
// the middle of a file (valid records follow). It reads the file in windows,
// each with room for a whole frame starting at its last offset.
func validFrameAfter(f *os.File, from, size int64) (bool, error) {
	const window = 4 << 20
	buf := make([]byte, min(size-from, window+frameHeaderSize+MaxEntrySize))
	for start := from; start < size; start += window {
		n, err := f.ReadAt(buf, start)
		if err != nil && !errors.Is(err, io.EOF) {
			return false, fmt.Errorf("store: replay %s: %w", f.Name(), err)
		}
		b := buf[:n]
		for i := range min(n, window) {
			if _, ok := parseFrame(b[i:]); ok {
				return true, nil
			}
		}
	}
	return false, nil
}
