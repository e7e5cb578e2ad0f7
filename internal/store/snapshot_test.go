package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/herd-dev/herd/internal/store"
)

func TestSnapshotThenAppends(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			l, _, _ := openReplay(t, dir, mode)
			appendAll(t, l, strs("a1", "a2", "a3")...)
			s := l.BeginSnapshot()
			if s == nil {
				t.Fatal("BeginSnapshot = nil")
			}
			if n := l.BytesSinceSnapshot(); n != 0 {
				t.Errorf("BytesSinceSnapshot after the cut = %d", n)
			}
			l.Append([]byte("b1")) // after the cut, before the snapshot is written
			if err := s.Write(slices.Values(strs("s1", "s2"))); err != nil {
				t.Fatal(err)
			}
			appendAll(t, l, []byte("b2"))
			if n, want := l.BytesSinceSnapshot(), int64(len(frame([]byte("b1")))*2); n != want {
				t.Errorf("BytesSinceSnapshot = %d, want %d", n, want)
			}
			if st := l.Stats(); st.Snapshots != 1 || st.DiskBytes != dirSize(t, dir) {
				t.Errorf("Stats = %+v, want 1 snapshot and DiskBytes = %d", st, dirSize(t, dir))
			}
			mustClose(t, l)
			if got, want := files(t, dir), []string{"seg-0000000002.log", "snap-0000000002.log"}; !slices.Equal(got, want) {
				t.Errorf("files = %v, want %v", got, want)
			}

			l, got, _ := openReplay(t, dir, mode)
			wantEntries(t, got, strs("s1", "s2", "b1", "b2"))
			if n, want := l.BytesSinceSnapshot(), int64(len(frame([]byte("b1")))*2); n != want {
				t.Errorf("BytesSinceSnapshot after reopen = %d, want %d", n, want)
			}
			if st := l.Stats(); st.DiskBytes != dirSize(t, dir) {
				t.Errorf("DiskBytes after reopen = %d, want %d", st.DiskBytes, dirSize(t, dir))
			}

			// A second snapshot replaces the first.
			s = l.BeginSnapshot()
			if err := s.Write(slices.Values(strs("t1"))); err != nil {
				t.Fatal(err)
			}
			appendAll(t, l, []byte("c1"))
			mustClose(t, l)
			_, got, _ = openReplay(t, dir, mode)
			wantEntries(t, got, strs("t1", "c1"))
			if got, want := files(t, dir), []string{"seg-0000000003.log", "snap-0000000003.log"}; !slices.Equal(got, want) {
				t.Errorf("files = %v, want %v", got, want)
			}
		})
	}
}

func TestSnapshotOneAtATime(t *testing.T) {
	dir := t.TempDir()
	l, _, _ := openReplay(t, dir, store.FsyncNo)
	appendAll(t, l, strs("a1")...)
	s := l.BeginSnapshot()
	if s2 := l.BeginSnapshot(); s2 != nil {
		t.Fatal("second BeginSnapshot while one is in progress is not nil")
	}
	appendAll(t, l, strs("a2")...)
	s.Abort()
	s.Abort() // idempotent
	if err := s.Write(slices.Values(strs("x"))); err == nil {
		t.Error("Write after Abort succeeded")
	}
	if n, want := l.BytesSinceSnapshot(), int64(len(frame([]byte("a1")))*2); n != want {
		t.Errorf("BytesSinceSnapshot after Abort = %d, want %d", n, want)
	}

	appendAll(t, l, strs("a3")...)
	s = l.BeginSnapshot()
	if s == nil {
		t.Fatal("BeginSnapshot after Abort = nil")
	}
	appendAll(t, l, strs("a4")...)
	if err := s.Write(slices.Values(strs("s"))); err != nil {
		t.Fatal(err)
	}
	mustClose(t, l)
	_, got, _ := openReplay(t, dir, store.FsyncNo)
	wantEntries(t, got, strs("s", "a4"))
}

func TestSnapshotWriteError(t *testing.T) {
	dir := t.TempDir()
	l, _, _ := openReplay(t, dir, store.FsyncNo)
	appendAll(t, l, strs("a1", "a2")...)
	s := l.BeginSnapshot()
	err := s.Write(slices.Values([][]byte{[]byte("ok"), make([]byte, store.MaxEntrySize+1)}))
	if err == nil || !strings.Contains(err.Error(), "MaxEntrySize") {
		t.Fatalf("Write of an oversized entry = %v", err)
	}
	appendAll(t, l, strs("a3")...)
	mustClose(t, l)
	for _, name := range files(t, dir) {
		if strings.HasPrefix(name, "snap-") {
			t.Errorf("failed snapshot left %s", name)
		}
	}
	_, got, _ := openReplay(t, dir, store.FsyncNo)
	wantEntries(t, got, strs("a1", "a2", "a3"))
}

func TestSnapshotStopsAtClose(t *testing.T) {
	dir := t.TempDir()
	l, _, _ := openReplay(t, dir, store.FsyncNo)
	appendAll(t, l, strs("a1")...)
	s := l.BeginSnapshot()
	started := make(chan struct{})
	errc := make(chan error)
	go func() {
		errc <- s.Write(func(yield func([]byte) bool) {
			close(started)
			for yield([]byte("state")) { // endless: only Close stops it
			}
		})
	}()
	<-started
	mustClose(t, l)
	if err := <-errc; !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Write interrupted by Close = %v, want ErrClosed", err)
	}
	_, got, _ := openReplay(t, dir, store.FsyncNo)
	wantEntries(t, got, strs("a1"))
}

// TestSnapshotCrash simulates crashes at each step of a snapshot by copying
// the data directory (a copy is what a crash leaves, without the lock).
func TestSnapshotCrash(t *testing.T) {
	// Build a directory with two segments' worth of history.
	src := t.TempDir()
	l, _, _ := openReplay(t, src, store.FsyncNo)
	appendAll(t, l, strs("a1", "a2")...)
	mustClose(t, l)
	before := copyDir(t, src) // state before the snapshot: seg-1 only

	l, _, _ = openReplay(t, src, store.FsyncNo)
	s := l.BeginSnapshot()
	appendAll(t, l, strs("b1")...)
	if err := s.Write(slices.Values(strs("s1"))); err != nil {
		t.Fatal(err)
	}
	appendAll(t, l, strs("b2")...)
	mustClose(t, l)
	after := src // snap-2 and seg-2

	tests := []struct {
		name  string
		setup func(t *testing.T) string
		want  [][]byte
		files []string
	}{
		{
			name: "before rename: a partial temporary snapshot is ignored",
			setup: func(t *testing.T) string {
				dir := copyDir(t, before)
				copyFile(t, filepath.Join(after, "seg-0000000002.log"), filepath.Join(dir, "seg-0000000002.log"))
				partial := append(frame([]byte("s1")), 0xde, 0xad)
				if err := os.WriteFile(filepath.Join(dir, "snap-0000000002.log.tmp"), partial, 0o644); err != nil {
					t.Fatal(err)
				}
				return dir
			},
			want:  strs("a1", "a2", "b1", "b2"),
			files: []string{"seg-0000000001.log", "seg-0000000002.log"},
		},
		{
			name: "after rename, before deleting the old segment",
			setup: func(t *testing.T) string {
				dir := copyDir(t, after)
				copyFile(t, filepath.Join(before, "seg-0000000001.log"), filepath.Join(dir, "seg-0000000001.log"))
				return dir
			},
			want:  strs("s1", "b1", "b2"),
			files: []string{"seg-0000000002.log", "snap-0000000002.log"},
		},
		{
			name: "after rename, before deleting an older snapshot",
			setup: func(t *testing.T) string {
				dir := copyDir(t, after)
				if err := os.WriteFile(filepath.Join(dir, "snap-0000000001.log"), frame([]byte("old")), 0o644); err != nil {
					t.Fatal(err)
				}
				return dir
			},
			want:  strs("s1", "b1", "b2"),
			files: []string{"seg-0000000002.log", "snap-0000000002.log"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.setup(t)
			l, got, capture := openReplay(t, dir, store.FsyncNo)
			wantEntries(t, got, tt.want)
			if w := capture.lines("WARN"); len(w) != 0 {
				t.Errorf("warnings %q", w)
			}
			if got := files(t, dir); !slices.Equal(got, tt.files) {
				t.Errorf("files after Open = %v, want %v", got, tt.files)
			}
			if got, want := l.Stats().DiskBytes, dirSize(t, dir); got != want {
				t.Errorf("Stats.DiskBytes = %d, files hold %d", got, want)
			}
			if _, err := os.Stat(filepath.Join(dir, "snap-0000000002.log.tmp")); !os.IsNotExist(err) {
				t.Errorf("temporary snapshot not removed: %v", err)
			}
			appendAll(t, l, strs("c1")...)
			mustClose(t, l)
			_, got, _ = openReplay(t, dir, store.FsyncNo)
			wantEntries(t, got, append(slices.Clone(tt.want), []byte("c1")))
		})
	}
}

// table is a caller's in-memory state, as the server keeps it: one record
// per key, newest wins, logged under the table's lock.
type table struct {
	mu   sync.Mutex
	rows map[string]string
	log  *store.Log
}

func (tb *table) apply(e []byte) error {
	k, v, ok := bytes.Cut(e, []byte{'='})
	if !ok {
		return fmt.Errorf("bad record %q", e)
	}
	tb.rows[string(k)] = string(v)
	return nil
}

func (tb *table) set(k, v string) error {
	tb.mu.Lock()
	tb.rows[k] = v
	tb.log.Append([]byte(k + "=" + v))
	tb.mu.Unlock()
	return tb.log.Commit()
}

// compact snapshots the table when the log has grown well past its size.
func (tb *table) compact(minBytes int64) error {
	tb.mu.Lock()
	live := int64(0)
	for k, v := range tb.rows {
		live += int64(len(k) + len(v) + 9)
	}
	if tb.log.BytesSinceSnapshot() < 2*live+minBytes {
		tb.mu.Unlock()
		return nil
	}
	s := tb.log.BeginSnapshot()
	if s == nil {
		tb.mu.Unlock()
		return nil
	}
	rows := maps.Clone(tb.rows)
	tb.mu.Unlock()
	return s.Write(func(yield func([]byte) bool) {
		for k, v := range rows {
			if !yield([]byte(k + "=" + v)) {
				return
			}
		}
	})
}

func openTable(t *testing.T, dir string, mode store.FsyncMode) *table {
	t.Helper()
	l, _ := open(t, dir, mode)
	tb := &table{rows: map[string]string{}, log: l}
	if err := l.Replay(tb.apply); err != nil {
		t.Fatal(err)
	}
	return tb
}

// TestSnapshotUnderLoad rewrites the same keys from several goroutines, each
// compacting when the log has grown (as a server does after its writes), so
// that snapshots run while the others append and commit. A reopen must
// rebuild exactly the final table.
func TestSnapshotUnderLoad(t *testing.T) {
	const writers, perWriter, keys, minBytes = 4, 3000, 50, 16 << 10
	for _, mode := range []store.FsyncMode{store.FsyncEverySec, store.FsyncNo} {
		t.Run(mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			tb := openTable(t, dir, mode)
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					for i := range perWriter {
						k := fmt.Sprintf("client-%02d", (i*7+w)%keys)
						if err := tb.set(k, fmt.Sprintf("w%d-%06d-%s", w, i, strings.Repeat("v", 60))); err != nil {
							t.Error(err)
							return
						}
						if err := tb.compact(minBytes); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()

			st := tb.log.Stats()
			written := int64(writers * perWriter * 80)
			if st.Snapshots < 5 || st.DiskBytes > written/10 {
				t.Errorf("Stats = %+v after writing %d bytes: compaction is not keeping up", st, written)
			}
			want := maps.Clone(tb.rows)
			mustClose(t, tb.log)

			tb = openTable(t, dir, mode)
			if !maps.Equal(tb.rows, want) {
				t.Fatalf("reopened table differs: %d rows, want %d", len(tb.rows), len(want))
			}
		})
	}
}

// TestBoundedGrowth checks that rewriting the same keys with snapshots keeps
// the directory near the live size.
func TestBoundedGrowth(t *testing.T) {
	const keys, rounds, minBytes = 100, 200, 32 << 10
	dir := t.TempDir()
	tb := openTable(t, dir, store.FsyncEverySec)
	for r := range rounds {
		for k := range keys {
			if err := tb.set(fmt.Sprintf("client-%03d", k), fmt.Sprintf("%06d%s", r, strings.Repeat("x", 94))); err != nil {
				t.Fatal(err)
			}
		}
		if err := tb.compact(minBytes); err != nil {
			t.Fatal(err)
		}
		live := int64(keys * 120)
		if size := dirSize(t, dir); size > 3*live+minBytes+live {
			t.Fatalf("round %d: %d bytes on disk for %d live", r, size, live)
		}
	}
	st := tb.log.Stats()
	if st.DiskBytes != dirSize(t, dir) {
		t.Errorf("Stats.DiskBytes = %d, files hold %d", st.DiskBytes, dirSize(t, dir))
	}
	if st.Snapshots == 0 {
		t.Error("no snapshot ran")
	}
}
