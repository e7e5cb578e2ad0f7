package herdtest

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// BreakJournal makes every later write to the journal segments this
// process has open in dir fail, as a failing disk would: it puts a
// read-only descriptor in place of each one. It works on Linux, where
// /proc/self/fd lists the process's open files.
func BreakJournal(tb testing.TB, dir string) {
	tb.Helper()
	dir, err := filepath.Abs(dir)
	if err != nil {
		tb.Fatal(err)
	}
	readOnly, err := os.Open(os.DevNull)
	if err != nil {
		tb.Fatal(err)
	}
	defer readOnly.Close()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Skipf("cannot list open files: %v", err)
	}
	broken := 0
	for _, e := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil || filepath.Dir(target) != dir || !strings.HasPrefix(filepath.Base(target), "seg-") {
			continue
		}
		fd, _ := strconv.Atoi(e.Name())
		if err := syscall.Dup2(int(readOnly.Fd()), fd); err != nil {
			tb.Fatal(err)
		}
		broken++
	}
	if broken == 0 {
		tb.Fatalf("no open journal segment in %s", dir)
	}
}

// Crash stops a server and leaves its data directory as a kill -9 at the
// moment of the call would: what the server had handed to the operating
// system then, and nothing after it (no cursors saved at shutdown, no
// final commit). It copies the directory while the server runs, stops the
// server, and puts the copy in its place. Restart brings the server back.
func (h *Herd) Crash(name string) {
	h.tb.Helper()
	dir := filepath.Join(h.Cfg.DataDir, name)
	image := dir + ".crashed"
	if err := os.Mkdir(image, 0o755); err != nil {
		h.tb.Fatal(err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		h.tb.Fatal(err)
	}
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile, as by a compaction
		}
		if err != nil {
			h.tb.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(image, e.Name()), data, 0o644); err != nil {
			h.tb.Fatal(err)
		}
	}
	h.Stop(name)
	if err := os.RemoveAll(dir); err != nil {
		h.tb.Fatal(err)
	}
	if err := os.Rename(image, dir); err != nil {
		h.tb.Fatal(err)
	}
}
