package store

import (
	"bufio"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Snapshot is a compaction in progress, made by BeginSnapshot and finished by
// Write or Abort.
type Snapshot struct {
	l        *Log
	num      uint64 // the snapshot replaces every segment numbered below num
	cutBytes int64  // BytesSinceSnapshot at the cut, restored if the snapshot fails
	done     bool
}

// BeginSnapshot marks the cut point of a snapshot: entries Appended before
// the call are covered by the snapshot, later ones go to a new segment that
// survives it. Call it while holding the lock under which the caller both
// changes its state and Appends, and copy (or otherwise freeze) that state
// before releasing the lock: the copy is then exactly the state at the cut.
// BeginSnapshot makes no syscall.
//
// Only one snapshot runs at a time: BeginSnapshot returns nil while another
// one is between BeginSnapshot and Write or Abort, before Replay, after
// Close, and after the Log failed (see Err).
func (l *Log) BeginSnapshot() *Snapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.ready || l.closed || l.snapshotting || l.failed {
		return nil
	}
	l.snapshotting = true
	if l.rotation != nil {
		// The switch to segment curSeg has not happened yet (an earlier
		// snapshot was aborted before the writer got to it): move the cut
		// forward by keeping everything so far in the old segment.
		l.rotation.tail = append(l.rotation.tail, l.buf...)
		l.rotation.tailEntries += l.bufEntries
		l.buf = l.buf[:0]
	} else {
		l.rotation = &rotation{tail: l.buf, tailEntries: l.bufEntries, next: l.curSeg + 1}
		l.buf = nil
		l.curSeg++
	}
	l.bufEntries = 0
	return &Snapshot{l: l, num: l.curSeg, cutBytes: l.stats.sinceSnapshot.Swap(0)}
}

// Write writes the caller's state as of the cut point, given as the entries
// that Replay should yield, to a new snapshot file (temporary file, fsync,
// rename, directory fsync), then deletes the segments and the snapshot that it
// replaces; those that Replay found damaged are renamed to NAME.damaged
// instead, for inspection. It may run concurrently with Append and Commit. If it fails, or
// Close begins meanwhile (ErrClosed), no segment is deleted and Replay yields
// the same entries as before. An entry longer than MaxEntrySize is an error.
//
// Write or Abort must be called exactly once per Snapshot.
func (s *Snapshot) Write(entries iter.Seq[[]byte]) error {
	if s.done {
		return errors.New("store: snapshot already written or aborted")
	}
	s.done = true
	l := s.l
	l.snapMu.Lock()
	defer l.snapMu.Unlock()

	start := time.Now()
	size, err := s.write(entries)
	if err != nil {
		l.endSnapshot(s.cutBytes)
		return err
	}
	l.stats.diskBytes.Add(size)
	l.stats.snapshotBytes.Store(size)

	// Make sure the writer has switched to segment s.num, so that nothing is
	// written to the segments about to be deleted.
	l.wmu.Lock()
	err = l.flushLocked(false)
	l.wmu.Unlock()
	if err != nil {
		// The snapshot is durable; the old segments stay until the next Open.
		l.endSnapshot(0)
		return err
	}
	err = l.retireBefore(s.num)
	l.stats.snapshots.Add(1)
	l.stats.lastSnapshot.Store(int64(time.Since(start)))
	l.endSnapshot(0)
	return err
}

// write writes the snapshot file and returns its size.
func (s *Snapshot) write(entries iter.Seq[[]byte]) (size int64, err error) {
	l := s.l
	final := filepath.Join(l.dir, snapName(s.num))
	tmp := final + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, fmt.Errorf("store: create snapshot: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()

	w := bufio.NewWriterSize(f, 1<<20)
	var frame []byte
	for entry := range entries {
		if l.isClosed.Load() {
			return 0, ErrClosed
		}
		if len(entry) > MaxEntrySize {
			return 0, fmt.Errorf("store: snapshot entry of %d bytes exceeds MaxEntrySize", len(entry))
		}
		frame = appendFrame(frame[:0], entry)
		if _, err := w.Write(frame); err != nil { // bufio.Writer errors are sticky
			return 0, fmt.Errorf("store: write snapshot: %w", err)
		}
		size += int64(len(frame))
	}
	frame = appendEndFrame(frame[:0], size)
	w.Write(frame) // an error here is sticky: Flush returns it
	size += int64(len(frame))
	if err := w.Flush(); err != nil {
		return 0, fmt.Errorf("store: write snapshot: %w", err)
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("store: fsync snapshot: %w", err)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("store: close snapshot: %w", err)
	}
	if l.isClosed.Load() {
		return 0, ErrClosed
	}
	if err := os.Rename(tmp, final); err != nil {
		return 0, fmt.Errorf("store: rename snapshot: %w", err)
	}
	// From here on the snapshot is in place: a failure to make the rename
	// durable must not delete it, and the segments it covers are still there.
	return size, syncDir(l.dir)
}

// retireBefore takes the files that snapshot num replaced out of the
// directory. Once none is left, a version 1 directory has only files
// written with end frames, and META says so.
func (l *Log) retireBefore(num uint64) error {
	st, err := readDirState(l.dir)
	if err != nil {
		return err
	}
	for _, n := range st.segs {
		if n < num {
			l.stats.diskBytes.Add(-l.retire(segName(n), "segment covered by snapshot"))
		}
	}
	for _, n := range st.snaps {
		if n < num {
			l.stats.diskBytes.Add(-l.retire(snapName(n), "superseded snapshot"))
		}
	}
	l.metaMu.Lock()
	defer l.metaMu.Unlock()
	if l.endFramesRequired() {
		return nil
	}
	if st, err = readDirState(l.dir); err != nil {
		return err
	}
	if slices.ContainsFunc(st.segs, func(n uint64) bool { return n < num }) || len(st.snaps) > 1 {
		return nil // retired on a later snapshot, or by the next Open
	}
	upgraded := meta{version: formatVersion, epoch: l.epoch.Load()}
	if err := writeMeta(l.dir, upgraded); err != nil {
		// The snapshot is in place; the next one moves META on.
		l.logger.Error("store: cannot move META to the format with end frames", "err", err)
		return nil
	}
	l.version = upgraded.version
	l.logger.Info("store: data directory moved to the format whose files end with end frames", "version", upgraded.version)
	return nil
}

// Abort abandons a snapshot instead of writing it. Every segment stays, so
// Replay yields the same entries as before; the next snapshot covers them.
func (s *Snapshot) Abort() {
	if s.done {
		return
	}
	s.done = true
	s.l.endSnapshot(s.cutBytes)
}

// endSnapshot lets the next BeginSnapshot go ahead. restore is the
// BytesSinceSnapshot of the segments that a failed snapshot did not replace.
func (l *Log) endSnapshot(restore int64) {
	l.stats.sinceSnapshot.Add(restore)
	l.mu.Lock()
	l.snapshotting = false
	l.mu.Unlock()
}
