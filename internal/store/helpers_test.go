package store_test

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herd-dev/herd/internal/store"
)

// logCapture collects a Log's slog output for assertions.
type logCapture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *logCapture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

func (c *logCapture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// lines returns the captured lines at the given level ("WARN", "ERROR").
func (c *logCapture) lines(level string) []string {
	var out []string
	for line := range strings.Lines(c.String()) {
		if strings.Contains(line, "level="+level+" ") {
			out = append(out, line)
		}
	}
	return out
}

// open opens dir with the given fsync mode, capturing its log, and closes it
// at the end of the test.
func open(t testing.TB, dir string, fsync store.FsyncMode) (*store.Log, *logCapture) {
	t.Helper()
	capture := &logCapture{}
	l, err := store.Open(dir, store.Options{
		Fsync:  fsync,
		Logger: slog.New(slog.NewTextHandler(capture, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { l.Close() })
	return l, capture
}

// openReplay opens dir and returns the log and copies of the replayed entries.
func openReplay(t testing.TB, dir string, fsync store.FsyncMode) (*store.Log, [][]byte, *logCapture) {
	t.Helper()
	l, capture := open(t, dir, fsync)
	var got [][]byte
	if err := l.Replay(func(e []byte) error {
		got = append(got, bytes.Clone(e))
		return nil
	}); err != nil {
		t.Fatalf("Replay: %v", err)
	}
	return l, got, capture
}

// appendAll appends entries, commits and closes l.
func appendAll(t testing.TB, l *store.Log, entries ...[]byte) {
	t.Helper()
	for _, e := range entries {
		l.Append(e)
	}
	if err := l.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

func mustClose(t testing.TB, l *store.Log) {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// strs makes entries from strings.
func strs(ss ...string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

func equalEntries(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func wantEntries(t testing.TB, got, want [][]byte) {
	t.Helper()
	if !equalEntries(got, want) {
		t.Fatalf("replayed %d entries %q, want %d entries %q", len(got), trunc(got), len(want), trunc(want))
	}
}

// trunc shortens entries for error messages.
func trunc(es [][]byte) []string {
	out := make([]string, 0, min(len(es), 20))
	for _, e := range es[:min(len(es), 20)] {
		out = append(out, string(e[:min(len(e), 16)]))
	}
	return out
}

// frame encodes entry in the documented file format, independently of the
// package's encoder.
func frame(entry []byte) []byte {
	return rawFrame(uint32(len(entry)), entry)
}

// endFrame encodes the end frame of a file whose frames take offset bytes,
// likewise.
func endFrame(offset int) []byte {
	return rawFrame(0xFFFFFFFF, binary.LittleEndian.AppendUint64(nil, uint64(offset)))
}

// endFrameBytes is the size of an end frame.
const endFrameBytes = 16

func rawFrame(length uint32, payload []byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, length)
	crc := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	crc.Write(b)
	crc.Write(payload)
	b = binary.LittleEndian.AppendUint32(b, crc.Sum32())
	return append(b, payload...)
}

// files lists the names of the snapshot and segment files in dir.
func files(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "seg-") || strings.HasPrefix(e.Name(), "snap-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// onlySegment returns the path of dir's only segment file.
func onlySegment(t testing.TB, dir string) string {
	t.Helper()
	fs := files(t, dir)
	if len(fs) != 1 || !strings.HasPrefix(fs[0], "seg-") {
		t.Fatalf("files in %s = %v, want one segment", dir, fs)
	}
	return filepath.Join(dir, fs[0])
}

// copyDir copies the regular files of src into a new directory, as a crash
// would leave them (the copy holds no lock).
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		copyFile(t, filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()))
	}
	return dst
}

func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// dirSize is the total size of dir's snapshot and segment files.
func dirSize(t testing.TB, dir string) int64 {
	t.Helper()
	var n int64
	for _, name := range files(t, dir) {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

// eventually polls cond until it holds, failing the test after 10 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
