package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/herd-dev/herd/internal/herdtest"
	"github.com/herd-dev/herd/internal/store"
)

var modes = []store.FsyncMode{store.FsyncAlways, store.FsyncEverySec, store.FsyncNo}

func TestRoundTrip(t *testing.T) {
	big := bytes.Repeat([]byte{0xA5}, store.MaxEntrySize)
	tests := []struct {
		name    string
		entries [][]byte
	}{
		{"none", nil},
		{"one", strs("IAMAT kiwi +34.068930-118.445127 1479413884.392014450")},
		{"empty entries", strs("", "a", "", "")},
		{"binary", [][]byte{{0, 0, 0, 0, 0, 0, 0, 0}, {0xff, 0xfe, '\n', 0}, bytes.Repeat([]byte{0}, 100)}},
		{"max size", [][]byte{big, []byte("after")}},
		{"many", func() [][]byte {
			var es [][]byte
			for i := range 5000 {
				es = append(es, fmt.Appendf(nil, "client-%06d %0100d", i, i))
			}
			return es
		}()},
	}
	for _, tt := range tests {
		for _, mode := range modes {
			t.Run(tt.name+"/"+mode.String(), func(t *testing.T) {
				dir := t.TempDir()
				l, got, _ := openReplay(t, dir, mode)
				wantEntries(t, got, nil)
				appendAll(t, l, tt.entries...)
				mustClose(t, l)

				l, got, capture := openReplay(t, dir, mode)
				wantEntries(t, got, tt.entries)
				if s := capture.lines("WARN"); len(s) > 0 {
					t.Errorf("clean reopen logged warnings: %q", s)
				}
				// Appending after a reopen continues the same log.
				appendAll(t, l, []byte("more"))
				mustClose(t, l)
				_, got, _ = openReplay(t, dir, mode)
				wantEntries(t, got, append(tt.entries, []byte("more")))
			})
		}
	}
}

func TestAppendPanicsOnMisuse(t *testing.T) {
	dir := t.TempDir()
	l, _ := open(t, dir, store.FsyncNo)
	mustPanic(t, "Append before Replay", func() { l.Append([]byte("x")) })
	if err := l.Replay(func([]byte) error { return nil }); err != nil {
		t.Fatal(err)
	}
	mustPanic(t, "oversized Append", func() { l.Append(make([]byte, store.MaxEntrySize+1)) })
	if err := l.Replay(func([]byte) error { return nil }); err == nil {
		t.Error("second Replay succeeded")
	}
}

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s did not panic", what)
		}
	}()
	f()
}

func TestReplayStopsOnCallbackError(t *testing.T) {
	dir := t.TempDir()
	l, _, _ := openReplay(t, dir, store.FsyncNo)
	appendAll(t, l, strs("a", "b", "c")...)
	mustClose(t, l)

	l, _ = open(t, dir, store.FsyncNo)
	stop := errors.New("stop")
	var n int
	err := l.Replay(func([]byte) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 2 {
		t.Fatalf("Replay = %v after %d entries, want the callback's error after 2", err, n)
	}
}

func TestCloseSemantics(t *testing.T) {
	dir := t.TempDir()
	l, _, _ := openReplay(t, dir, store.FsyncNo)
	l.Append([]byte("flushed by Close"))
	mustClose(t, l)
	if err := l.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	l.Append([]byte("dropped"))
	if err := l.Commit(); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Commit after Close = %v, want ErrClosed", err)
	}
	if s := l.BeginSnapshot(); s != nil {
		t.Error("BeginSnapshot after Close is not nil")
	}
	_, got, _ := openReplay(t, dir, store.FsyncNo)
	wantEntries(t, got, strs("flushed by Close"))
}

// TestConcurrentAppendCommit checks that nothing is lost and that each
// goroutine's entries keep their order, in every mode.
func TestConcurrentAppendCommit(t *testing.T) {
	const goroutines, perG = 16, 300
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			l, _, _ := openReplay(t, dir, mode)
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					for i := range perG {
						l.Append(fmt.Appendf(nil, "%d %d", g, i))
						if i%3 != 0 { // also leave some to the background flusher
							if err := l.Commit(); err != nil {
								t.Error(err)
								return
							}
						}
					}
				})
			}
			wg.Wait()
			mustClose(t, l)

			_, got, _ := openReplay(t, dir, mode)
			if len(got) != goroutines*perG {
				t.Fatalf("replayed %d entries, want %d", len(got), goroutines*perG)
			}
			next := make([]int, goroutines)
			for _, e := range got {
				var g, i int
				if _, err := fmt.Sscanf(string(e), "%d %d", &g, &i); err != nil {
					t.Fatalf("entry %q: %v", e, err)
				}
				if i != next[g] {
					t.Fatalf("goroutine %d: entry %d came where %d was due", g, i, next[g])
				}
				next[g]++
			}
		})
	}
}

// TestCommitWritesToOS checks that Commit returns only after the entries are
// in the file, so that they survive SIGKILL.
func TestCommitWritesToOS(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			l, _, _ := openReplay(t, dir, mode)
			var want [][]byte
			for i := range 50 {
				e := fmt.Appendf(nil, "entry %d", i)
				want = append(want, e)
				appendAll(t, l, e)
				// A copy of the directory is what a crash right now leaves.
				_, got, _ := openReplay(t, copyDir(t, dir), mode)
				wantEntries(t, got, want)
			}
		})
	}
}

// TestBackgroundFlush checks that entries nobody commits reach the OS soon.
func TestBackgroundFlush(t *testing.T) {
	dir := t.TempDir()
	l, _, _ := openReplay(t, dir, store.FsyncEverySec)
	l.Append([]byte("from a peer"))
	seg := onlySegment(t, dir)
	want := int64(len(frame([]byte("from a peer"))))
	eventually(t, "the entry to reach the segment file", func() bool {
		fi, err := os.Stat(seg)
		return err == nil && fi.Size() == want
	})
	if s := l.Stats(); s.Writes != 1 || s.Commits != 0 {
		t.Errorf("Stats = %+v, want 1 write and no commit", s)
	}
}

func TestCommitFsyncAlways(t *testing.T) {
	t.Run("sequential", func(t *testing.T) {
		l, _, _ := openReplay(t, t.TempDir(), store.FsyncAlways)
		const n = 10
		for i := range n {
			appendAll(t, l, fmt.Appendf(nil, "%d", i))
		}
		s := l.Stats()
		if s.Commits != n || s.Fsyncs != n || s.Writes != n {
			t.Fatalf("after %d Append+Commit: %+v, want %d commits, writes and fsyncs", n, s, n)
		}
		if s.LastFsync <= 0 || s.TotalFsync < s.LastFsync {
			t.Errorf("fsync latencies not recorded: %+v", s)
		}
		// Nothing new to write: no syscall.
		if err := l.Commit(); err != nil {
			t.Fatal(err)
		}
		if s2 := l.Stats(); s2.Writes != s.Writes || s2.Fsyncs != s.Fsyncs || s2.Commits != n+1 {
			t.Errorf("empty Commit made a syscall: %+v -> %+v", s, s2)
		}
	})
	t.Run("group commit", func(t *testing.T) {
		l, _, _ := openReplay(t, t.TempDir(), store.FsyncAlways)
		const goroutines, perG = 32, 20
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Go(func() {
				for i := range perG {
					l.Append(fmt.Appendf(nil, "%d %d", g, i))
					if err := l.Commit(); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		s := l.Stats()
		if s.Commits != goroutines*perG || s.Fsyncs >= s.Commits || s.Fsyncs == 0 {
			t.Fatalf("Stats = %+v, want %d commits sharing fewer fsyncs", s, goroutines*perG)
		}
		t.Logf("%d commits, %d writes, %d fsyncs", s.Commits, s.Writes, s.Fsyncs)
	})
	t.Run("everysec does not fsync on commit", func(t *testing.T) {
		l, _, _ := openReplay(t, t.TempDir(), store.FsyncEverySec)
		appendAll(t, l, []byte("x"))
		if s := l.Stats(); s.Writes != 1 || s.Fsyncs > 1 { // the background fsync may have run
			t.Fatalf("Stats = %+v, want 1 write", s)
		}
	})
}

func TestEpoch(t *testing.T) {
	dir := t.TempDir()
	l, _, _ := openReplay(t, dir, store.FsyncNo)
	e1 := l.Epoch()
	if e1 == 0 {
		t.Fatal("Epoch is 0")
	}
	mustClose(t, l)
	l, _, _ = openReplay(t, dir, store.FsyncNo)
	if e := l.Epoch(); e != e1 {
		t.Fatalf("Epoch after reopen = %x, want %x", e, e1)
	}
	renewed, err := l.RenewEpoch(e1)
	if err != nil || renewed == e1 || renewed == 0 || l.Epoch() != renewed {
		t.Fatalf("RenewEpoch = %x, %v, then Epoch %x; want a new non-zero epoch (old %x)", renewed, err, l.Epoch(), e1)
	}
	// A second caller that still holds the old epoch gets the new one.
	if again, err := l.RenewEpoch(e1); err != nil || again != renewed {
		t.Fatalf("RenewEpoch of a superseded epoch = %x, %v; want the current %x", again, err, renewed)
	}
	mustClose(t, l)
	l, _, _ = openReplay(t, dir, store.FsyncNo)
	if e := l.Epoch(); e != renewed {
		t.Fatalf("Epoch after a renewal and reopen = %x, want %x", e, renewed)
	}
	mustClose(t, l)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	l, _, _ = openReplay(t, dir, store.FsyncNo)
	if e := l.Epoch(); e == e1 || e == 0 {
		t.Fatalf("Epoch of a wiped dir = %x, want a new non-zero one (old %x)", e, e1)
	}
}

func TestLock(t *testing.T) {
	dir := t.TempDir()
	l, _ := open(t, dir, store.FsyncNo)
	_, err := store.Open(dir, store.Options{})
	if !errors.Is(err, store.ErrLocked) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second Open = %v, want ErrLocked naming %s", err, dir)
	}
	mustClose(t, l)
	l2, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	mustClose(t, l2)
}

func TestOpenErrors(t *testing.T) {
	if _, err := store.Open(t.TempDir(), store.Options{Fsync: 7}); err == nil || !strings.Contains(err.Error(), "FsyncMode(7)") {
		t.Errorf("Open with a bad fsync mode = %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "META"), []byte("herd-store 99\nepoch 00000000000000a1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Open(dir, store.Options{}); err == nil || !strings.Contains(err.Error(), "version 99") {
		t.Errorf("Open of a newer format = %v", err)
	}
	// Refused too when the rest of META is damaged: it is not repaired as
	// a format this code knows.
	if err := os.WriteFile(filepath.Join(dir, "META"), []byte("herd-store 3\nepoch 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Open(dir, store.Options{}); err == nil || !strings.Contains(err.Error(), "version 3") {
		t.Errorf("Open of a newer format with a damaged epoch = %v", err)
	}

	// A META cut short or emptied is repaired as loudly as a damaged log
	// file: set aside, a new epoch (so every neighbor reads the whole
	// change feed), an error logged, and every entry still replayed.
	for _, damage := range []struct {
		name string
		cut  func([]byte) []byte
	}{
		{"cut in its epoch", func(b []byte) []byte { return b[:len(b)-5] }},
		{"emptied", func([]byte) []byte { return nil }},
	} {
		dir = t.TempDir()
		l, _, _ := openReplay(t, dir, store.FsyncNo)
		appendAll(t, l, strs("a1")...)
		epoch := l.Epoch()
		mustClose(t, l)
		metaPath := filepath.Join(dir, "META")
		meta, err := os.ReadFile(metaPath)
		if err != nil {
			t.Fatal(err)
		}
		damaged := damage.cut(meta)
		if err := os.WriteFile(metaPath, damaged, 0o644); err != nil {
			t.Fatal(err)
		}
		l, got, capture := openReplay(t, dir, store.FsyncNo)
		wantEntries(t, got, strs("a1"))
		if l.Epoch() == epoch || l.Epoch() == 0 {
			t.Errorf("META %s: epoch %x after the repair; want a new one", damage.name, l.Epoch())
		}
		if errs := capture.lines("ERROR"); len(errs) != 1 || !strings.Contains(errs[0], "META damaged") {
			t.Errorf("META %s: errors logged %q; want one saying so", damage.name, errs)
		}
		wantFile(t, metaPath+".damaged", damaged)
		mustClose(t, l)
	}
}

func TestErr_ReportsAFailedWrite(t *testing.T) {
	dir := t.TempDir()
	l, _, _ := openReplay(t, dir, store.FsyncEverySec)
	appendAll(t, l, []byte("before"))
	if err := l.Err(); err != nil {
		t.Fatalf("Err = %v on a working log; want nil", err)
	}
	herdtest.BreakJournal(t, dir)
	l.Append([]byte("after"))
	commitErr := l.Commit()
	if commitErr == nil {
		t.Fatal("Commit succeeded on a broken segment")
	}
	if err := l.Err(); err == nil || err.Error() != commitErr.Error() {
		t.Errorf("Err = %v after Commit failed with %v; want the same error", err, commitErr)
	}
	l.Close()
}
