package logsink

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestSink_KeepsEveryLineInOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
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
	path := filepath.Join(t.TempDir(), "x.log")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Write([]byte("hello\n"))
	deadline := time.Now().Add(2 * time.Second)
	for {
		data, _ := os.ReadFile(path)
		if string(data) == "hello\n" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("file holds %q after 2s; want the line", data)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSink_WriteAfterCloseFails(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "x.log"))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := s.Write([]byte("late\n")); err == nil {
		t.Error("Write after Close succeeded")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func BenchmarkSink_Write(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "x.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	line := []byte("time=2026-11-25T18:36:59.191Z level=INFO msg=in server=Alford remote=127.0.0.1:34022 line=\"IAMAT kiwi +1+1 1.5\"\n")
	b.SetBytes(int64(len(line)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.Write(line)
		}
	})
}
