package store

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// Damage is a file in which Replay found data that the disk damaged, rather
// than the torn tail a crash leaves: a bad frame in a snapshot or in a
// segment before the newest, or one followed by valid frames; such a file
// that ends early without its end frame; or a file missing from the
// directory. Replay yields the entries before the damage, none after it in
// that file, and leaves the file as it is; the next snapshot sets it aside
// (see Snapshot.Write).
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
// A snapshot or an older segment that ends without its end frame, and a
// segment missing from the run after the snapshot, are damage too.
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
	l.damaged = append(l.damaged, l.missingSegments()...)
	var disk, sinceSnap, snapSize int64
	newestClosed := false
	for i, name := range files {
		newest := len(l.segNums) > 0 && i == len(files)-1
		r, err := l.replayFile(filepath.Join(l.dir, name), newest, fn)
		if err != nil {
			return err
		}
		if r.damage != nil {
			l.damaged = append(l.damaged, *r.damage)
		}
		newestClosed = newest && (r.damage != nil || r.ended)
		disk += r.size
		if l.snapNum > 0 && i == 0 {
			snapSize = r.size
		} else {
			sinceSnap += r.size
		}
	}

	tail := max(l.snapNum, 1)
	if len(l.segNums) > 0 {
		tail = l.segNums[len(l.segNums)-1]
	}
	if newestClosed {
		// Never append after damage, which the next Replay would not read
		// past, nor after an end frame.
		tail++
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

// endFramesRequired reports whether every file but the newest segment must
// end with an end frame: in all but a version 1 directory.
func (l *Log) endFramesRequired() bool { return l.version >= formatVersion }

// missingSegments reports the gaps in the run of segments Replay reads:
// segments are numbered one after another from the snapshot's number (or
// from 1 in a directory that never had a snapshot), so a gap, or a run that
// starts late, is a file lost from the directory.
func (l *Log) missingSegments() []Damage {
	var missing []Damage
	next := max(l.snapNum, 1)
	for _, n := range l.segNums {
		if n > next {
			path := filepath.Join(l.dir, segName(next))
			reason := "missing: no file in the directory holds the entries before " + segName(n)
			l.logger.Error("store: files missing; the entries they held are lost to this directory",
				"file", path, "reason", reason)
			missing = append(missing, Damage{File: path, Reason: reason})
		}
		next = n + 1
	}
	return missing
}

// Damaged returns the files Replay found damaged, in the order it read
// them, or nil. Entries after each one's Offset were lost: the caller must
// get them again from elsewhere.
func (l *Log) Damaged() []Damage { return slices.Clone(l.damaged) }

// replayed is what replayFile found in a file.
type replayed struct {
	size   int64   // the file's size after Replay
	ended  bool    // it ends with its end frame
	damage *Damage // what the disk damaged in it, if anything
}

// replayFile calls fn for each valid frame of the file at path and says
// what it found. newest says whether the file is the newest segment, the
// only one whose tail may be torn by a crash, and the only one without an
// end frame; a torn tail is cut off.
func (l *Log) replayFile(path string, newest bool, fn func([]byte) error) (replayed, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return replayed{}, fmt.Errorf("store: replay: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return replayed{}, fmt.Errorf("store: replay: %w", err)
	}
	size := fi.Size()
	scan, err := scanFrames(f, size, fn)
	if err != nil {
		return replayed{}, err
	}
	r := replayed{size: size, ended: scan.ended}
	if scan.off == size && (scan.ended || newest || !l.endFramesRequired()) {
		return r, nil
	}
	reason := scan.reason
	validAfter := false
	if scan.off == size {
		reason = "no end frame: cut short at a frame boundary"
	} else if validAfter, err = validFrameAfter(f, scan.off+1, size); err != nil {
		return replayed{}, err
	}
	attrs := []any{"file", path, "offset", scan.off, "bytes_dropped", size - scan.off, "reason", reason}
	if !newest || validAfter || scan.ended {
		l.logger.Error("store: file damaged; replayed the entries before the damage and none after it, and left the file as it is",
			append(attrs, "valid_frames_after", validAfter)...)
		r.damage = &Damage{File: path, Offset: scan.off, Size: size, Reason: reason}
		return r, nil
	}
	l.logger.Warn("store: truncated torn tail of log", attrs...)
	if err := f.Truncate(scan.off); err != nil {
		return replayed{}, fmt.Errorf("store: %w", err)
	}
	if err := f.Sync(); err != nil {
		return replayed{}, fmt.Errorf("store: %w", err)
	}
	r.size = scan.off
	return r, nil
}

// scanned is how far scanFrames read a file.
type scanned struct {
	off    int64  // where the first bad frame starts, or the file's size
	reason string // what is wrong with the frame at off, or ""
	ended  bool   // an end frame, in its place, closed the valid frames
}

// scanFrames calls fn with the payload of each valid entry frame of f,
// which is size bytes long, from its start, up to the first bad frame or
// the end frame. An error is an I/O error or fn's.
func scanFrames(f *os.File, size int64, fn func([]byte) error) (scanned, error) {
	r := bufio.NewReaderSize(f, 256<<10)
	var (
		hdr     [frameHeaderSize]byte
		payload []byte
		off     int64
	)
	bad := func(reason string) (scanned, error) { return scanned{off: off, reason: reason}, nil }
	for off < size {
		if size-off < frameHeaderSize {
			return bad("partial frame header")
		}
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return scanned{}, readError(f, err)
		}
		length := binary.LittleEndian.Uint32(hdr[0:4])
		n, ok := payloadSize(length)
		if !ok {
			return bad("bad frame length")
		}
		if size-off-frameHeaderSize < n {
			return bad("partial frame")
		}
		if int64(cap(payload)) < n {
			payload = make([]byte, n)
		}
		payload = payload[:n]
		if _, err := io.ReadFull(r, payload); err != nil {
			return scanned{}, readError(f, err)
		}
		if frameChecksum(hdr[0:4], payload) != binary.LittleEndian.Uint32(hdr[4:8]) {
			return bad("checksum mismatch")
		}
		if length == endFrameMarker {
			if int64(binary.LittleEndian.Uint64(payload)) != off {
				return bad("end frame out of place")
			}
			off += endFrameSize
			if off < size {
				return scanned{off: off, reason: "data after the end frame", ended: true}, nil
			}
			return scanned{off: off, ended: true}, nil
		}
		if err := fn(payload); err != nil {
			return scanned{}, err
		}
		off += frameHeaderSize + n
	}
	return scanned{off: off}, nil
}

// checkSnapshot returns what is wrong with the snapshot file at path, or ""
// if every frame of it is valid and, when endFrame is set, it ends with its
// end frame. A snapshot is written whole (to a temporary file, then
// renamed), so any bad frame means it is damaged.
func checkSnapshot(path string, endFrame bool) (problem string, err error) {
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
	scan, err := scanFrames(f, fi.Size(), func([]byte) error { return nil })
	switch {
	case err != nil:
		return "", err
	case scan.reason != "":
		return fmt.Sprintf("%s at offset %d", scan.reason, scan.off), nil
	case endFrame && !scan.ended:
		return "no end frame: cut short at a frame boundary", nil
	}
	return "", nil
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
			return false, readError(f, err)
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

// readError wraps an error reading f so that it names f once: the
// operating system's errors already do.
func readError(f *os.File, err error) error {
	if _, named := errors.AsType[*fs.PathError](err); named {
		return fmt.Errorf("store: %w", err)
	}
	return fmt.Errorf("store: read %s: %w", f.Name(), err)
}
