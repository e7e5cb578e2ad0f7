package store_test

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/herd-dev/herd/internal/herdtest"
	"github.com/herd-dev/herd/internal/store"
)

// A Log whose writes fail must not keep what is appended after: nothing can
// make it durable, and a server goes on appending every update it takes.
// Memory would grow without bound.
func TestFailedLog_DropsAndCountsLaterEntries(t *testing.T) {
	dir := t.TempDir()
	l, _, _ := openReplay(t, dir, store.FsyncEverySec)
	appendAll(t, l, []byte("before"))
	herdtest.BreakJournal(t, dir)
	l.Append([]byte("in the failed write"))
	if err := l.Commit(); err == nil {
		t.Fatal("Commit succeeded on a broken segment")
	}

	const n, size = 100_000, 1000 // 100 MB of entries
	entry := bytes.Repeat([]byte("x"), size)
	heapBefore := liveHeap()
	for range n {
		l.Append(entry)
	}
	if grown := liveHeap() - heapBefore; grown > n*size/10 {
		t.Errorf("live heap grew by %d MB while %d MB were appended to a failed log; want it flat", grown>>20, n*size>>20)
	}
	if got, want := l.Stats().Dropped, uint64(n+1); got != want {
		t.Errorf("Stats().Dropped = %d, want %d (the failed write's entry and every later one)", got, want)
	}
	if err := l.Commit(); err == nil {
		t.Error("Commit succeeded after the log failed")
	}
	l.Close()
	_, got, _ := openReplay(t, dir, store.FsyncEverySec)
	wantEntries(t, got, strs("before"))
}

// liveHeap returns the bytes of live heap objects after a collection.
func liveHeap() int64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// Deleting the data directory under a running Log must fail it: writes to
// the unlinked segment still succeed, and would be gone at the next start.
func TestDeletedDataDir_FailsTheLog(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			l, _, _ := openReplay(t, dir, mode)
			appendAll(t, l, []byte("before"))
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the log to notice that its directory is gone", func() bool { return l.Err() != nil })
			if err := l.Err(); !strings.Contains(err.Error(), "deleted") {
				t.Errorf("Err() = %v; want it to say the segment was deleted", err)
			}
			l.Append([]byte("after"))
			if err := l.Commit(); err == nil {
				t.Error("Commit succeeded with the data directory gone")
			}
		})
	}
}

// Stats.SnapshotBytes, which compaction is measured against, is the size of
// the latest snapshot file, after a Write and after a reopen.
func TestStats_SnapshotBytes(t *testing.T) {
	dir := t.TempDir()
	l, _, _ := openReplay(t, dir, store.FsyncNo)
	if got := l.Stats().SnapshotBytes; got != 0 {
		t.Errorf("SnapshotBytes = %d in a new directory, want 0", got)
	}
	appendAll(t, l, strs("a", "b")...)
	if err := l.BeginSnapshot().Write(slices.Values(strs("a", "b", "c"))); err != nil {
		t.Fatal(err)
	}
	want := int64(len(frame([]byte("a")))*3 + endFrameBytes)
	if got := l.Stats().SnapshotBytes; got != want {
		t.Errorf("SnapshotBytes = %d after a snapshot of %d bytes", got, want)
	}
	appendAll(t, l, strs("d")...)
	mustClose(t, l)
	l, _, _ = openReplay(t, dir, store.FsyncNo)
	if got := l.Stats().SnapshotBytes; got != want {
		t.Errorf("SnapshotBytes = %d after a reopen, want %d", got, want)
	}
}
