package logsink

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestSink_KeepsEveryLineInOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := New(f, Options{})
	var wg sync.WaitGroup
	const writers, lines = 8, 20000
	for w := range writers {
		wg.Go(func() {
			for i := range lines {
				fmt.Fprintf(s, "w%d %d\n", w, i)
			}
		})
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	next := make([]int, writers)
	for _, l := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
		var w, i int
		if _, err := fmt.Sscanf(string(l), "w%d %d", &w, &i); err != nil {
			t.Fatalf("garbled line %q", l)
		}
		if i != next[w] {
			t.Fatalf("writer %d: line %d after %d", w, i, next[w]-1)
		}
		next[w]++
	}
	for w, n := range next {
		if n != lines {
			t.Errorf("writer %d: %d lines on disk; want %d", w, n, lines)
		}
	}
}

func TestSink_FlushesWithoutClose(t *testing.T) {
	out := &flakyWriter{}
	s := New(out, Options{})
	defer s.Close()
	s.Write([]byte("hello\n"))
	eventually(t, func() bool { return out.String() == "hello\n" }, "the line reaches the output without Close")
}

func TestSink_WriteAfterCloseFails(t *testing.T) {
	s := New(&flakyWriter{}, Options{})
	s.Close()
	if _, err := s.Write([]byte("late\n")); err == nil {
		t.Error("Write after Close succeeded")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

// TestSink_ResumesAfterAnOutage writes lines while the output fails (each
// failed write taking part of what it is given, as a full disk does), then
// lets it recover: the sink reports the outage once and its end once,
// logs again, and loses lines only past what it can hold, counting them.
func TestSink_ResumesAfterAnOutage(t *testing.T) {
	for _, tc := range []struct {
		name        string
		linesInside int // written during the outage
		wantDropped bool
	}{
		{"short outage", 100, false},
		{"outage past the buffer limit", 2 * bufferLimit / 1000, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := &flakyWriter{}
			var mu sync.Mutex
			var failures []error
			var recoveries []uint64
			s := New(out, Options{
				Failed:    func(err error) { mu.Lock(); failures = append(failures, err); mu.Unlock() },
				Recovered: func(n uint64) { mu.Lock(); recoveries = append(recoveries, n); mu.Unlock() },
			})
			defer s.Close()
			line := func(i int) string { return fmt.Sprintf("%-999d\n", i) } // 1000 bytes
			s.Write([]byte(line(0)))
			eventually(t, func() bool { return out.String() == line(0) }, "the first line is written")

			out.fail(true)
			for i := 1; i <= tc.linesInside; i++ {
				s.Write([]byte(line(i)))
			}
			eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(failures) > 0 }, "the outage is reported")
			out.fail(false)
			last := tc.linesInside + 1
			s.Write([]byte(line(last)))
			eventually(t, func() bool { return strings.HasSuffix(out.String(), line(last)) }, "a line after the outage is written")

			// Every line on the output is whole and in order, and the ones
			// missing are the ones counted as dropped.
			written := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			prev := -1
			for _, l := range written {
				var i int
				if _, err := fmt.Sscanf(l, "%d", &i); err != nil || len(l) != 999 || i <= prev {
					t.Fatalf("line %q after line %d: want whole lines in order", l, prev)
				}
				prev = i
			}
			dropped := uint64(last + 1 - len(written))
			if got := s.Dropped(); got != dropped {
				t.Errorf("Dropped() = %d; %d of %d lines are missing", got, dropped, last+1)
			}
			if (dropped > 0) != tc.wantDropped {
				t.Errorf("%d lines dropped; want some: %v", dropped, tc.wantDropped)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(failures) != 1 || !strings.Contains(failures[0].Error(), "no space") {
				t.Errorf("outage reported as %v; want once, with the output's error", failures)
			}
			if len(recoveries) != 1 || recoveries[0] != dropped {
				t.Errorf("recovery reported as %v; want once, with %d dropped", recoveries, dropped)
			}
		})
	}
}

func TestSink_CloseSaysWhatItCouldNotWrite(t *testing.T) {
	out := &flakyWriter{}
	out.fail(true)
	s := New(out, Options{})
	s.Write([]byte("a\nb\n"))
	err := s.Close()
	if err == nil || !strings.Contains(err.Error(), "2 lines not written") {
		t.Errorf("Close = %v; want it to say 2 lines were not written", err)
	}
	if s.Dropped() != 2 {
		t.Errorf("Dropped() = %d; want 2", s.Dropped())
	}
}

// flakyWriter collects what is written to it. While failing, its writes
// fail as on a full disk: the first takes a third of what it is given, the
// others nothing.
type flakyWriter struct {
	mu      sync.Mutex
	failing bool
	full    bool
	buf     bytes.Buffer
}

func (w *flakyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.failing {
		return w.buf.Write(p)
	}
	n := 0
	if !w.full {
		n, w.full = len(p)/3, true
		w.buf.Write(p[:n])
	}
	return n, &os.PathError{Op: "write", Path: "x.log", Err: syscall.ENOSPC}
}

func (w *flakyWriter) fail(on bool) {
	w.mu.Lock()
	w.failing, w.full = on, false
	w.mu.Unlock()
}

func (w *flakyWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func eventually(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 5s: want %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func BenchmarkSink_Write(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "x.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	s := New(f, Options{})
	defer s.Close()
	line := []byte("time=2026-11-25T18:36:59.191Z level=INFO msg=in server=Alford remote=127.0.0.1:34022 line=\"IAMAT kiwi +1+1 1.5\"\n")
	b.SetBytes(int64(len(line)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.Write(line)
		}
	})
}
