package store_test

import (
	"bytes"
	"runtime"
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
