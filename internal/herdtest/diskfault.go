package herdtest

import (
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
