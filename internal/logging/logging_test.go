package logging

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/herd-dev/herd/internal/config"
)

func testConfig(t *testing.T, configure func(*config.Config)) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.LogDir = filepath.Join(t.TempDir(), "logs")
	configure(cfg)
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestOpen_LevelAndFormat logs one record at each level to stdout and
// checks which reach it, and in what form.
func TestOpen_LevelAndFormat(t *testing.T) {
	for _, tc := range []struct {
		level, format string
		want          []string // messages
	}{
		{"debug", "text", []string{"d", "i", "w", "e"}},
		{"info", "text", []string{"i", "w", "e"}},
		{"warn", "json", []string{"w", "e"}},
		{"error", "json", []string{"e"}},
	} {
		t.Run(tc.level+"/"+tc.format, func(t *testing.T) {
			cfg := testConfig(t, func(c *config.Config) {
				c.LogLevel, c.LogFormat, c.LogTo = tc.level, tc.format, config.LogToStdout
			})
			var stdout lockedBuffer
			l, err := Open(cfg, "Alford", Options{Stdout: &stdout})
			if err != nil {
				t.Fatal(err)
			}
			if l.Path != "" {
				t.Errorf("Path = %q; want none for stdout", l.Path)
			}
			l.Logger.Debug("d")
			l.Logger.Info("i", "line", []byte("IAMAT kiwi +1+1 1.5"))
			l.Logger.Warn("w")
			l.Logger.Error("e")
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, line := range strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n") {
				if tc.format == config.LogFormatJSON {
					got = append(got, jsonMsg(t, line))
				} else {
					got = append(got, logfmtMsg(t, line))
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("logged %q; want %q:\n%s", got, tc.want, stdout.String())
			}
		})
	}
}

func logfmtMsg(t *testing.T, line string) string {
	t.Helper()
	_, rest, ok := strings.Cut(line, " msg=")
	if !ok || !strings.HasPrefix(line, "time=") || !strings.Contains(line, " server=Alford") {
		t.Fatalf("not a logfmt record with the server's name: %q", line)
	}
	msg, _, _ := strings.Cut(rest, " ")
	return msg
}

func jsonMsg(t *testing.T, line string) string {
	t.Helper()
	var record struct{ Time, Level, Msg, Server string }
	if err := json.Unmarshal([]byte(line), &record); err != nil || record.Time == "" || record.Server != "Alford" {
		t.Fatalf("not a JSON record with the server's name: %q (%v)", line, err)
	}
	return record.Msg
}

func TestOpen_FileAppends(t *testing.T) {
	cfg := testConfig(t, func(*config.Config) {})
	for _, msg := range []string{"first", "second"} {
		l, err := Open(cfg, "Alford", Options{})
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(cfg.LogDir, "Alford.log"); l.Path != want {
			t.Errorf("Path = %q; want %q", l.Path, want)
		}
		l.Logger.Info(msg)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(filepath.Join(cfg.LogDir, "Alford.log"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "\n"); n != 2 || !strings.Contains(string(data), "msg=first") || !strings.Contains(string(data), "msg=second") {
		t.Errorf("log file holds %q; want both runs' lines", data)
	}
}

func TestOpen_LogDirThatCannotBeMadeIsNamed(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, func(c *config.Config) { c.LogDir = filepath.Join(file, "logs") })
	if l, err := Open(cfg, "Alford", Options{}); err == nil || !strings.Contains(err.Error(), "log_dir") {
		if l != nil {
			l.Close()
		}
		t.Errorf("Open = %v; want an error naming log_dir", err)
	}
}

// TestOpen_Rotates writes 40 times log_max_bytes of records to a log that
// keeps 2 rotated files: every file holds whole records, in order, and
// stays under log_max_bytes, filled to within a record of it but the
// current one, and only the newest 2 rotated files remain.
func TestOpen_Rotates(t *testing.T) {
	const maxBytes = 64 << 10
	cfg := testConfig(t, func(c *config.Config) { c.LogMaxBytes, c.LogKeep = maxBytes, 2 })
	l, err := Open(cfg, "Alford", Options{})
	if err != nil {
		t.Fatal(err)
	}
	batch := bytes.Repeat([]byte("HERD-AT 4294967297 1 Alford +0.263873386 kiwi +34.068930-118.445127 1479413884.392014450\n"), 10)
	const records = 40 * maxBytes / 1000
	for i := range records {
		l.Logger.Info("in", "peer", "Ball", "i", i, "lines", batch)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var files []string
	eventually(t, func() bool { // lumberjack removes old files in the background
		files, _ = filepath.Glob(filepath.Join(cfg.LogDir, "Alford*.log"))
		return len(files) == 3
	}, "Alford.log and 2 rotated files")
	last := -1
	for n, f := range files { // rotated files first: their names sort before Alford.log
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) > maxBytes || len(data) < maxBytes-1100 && n < 2 {
			t.Errorf("%s is %d bytes; want at most %d, and a rotated file within a record of it", f, len(data), maxBytes)
		}
		for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
			var i int
			_, after, _ := strings.Cut(line, " i=")
			if !strings.HasPrefix(line, "time=") || !strings.HasSuffix(line, `450\n"`) {
				t.Fatalf("%s holds a broken record: %.80q", f, line)
			}
			if _, err := fmt.Sscan(after, &i); err != nil || last != -1 && i != last+1 {
				t.Fatalf("%s: record %d follows %d", f, i, last)
			}
			last = i
		}
	}
	if last != records-1 {
		t.Errorf("the last record is %d; want %d", last, records-1)
	}
}

// TestOpen_ReportsAFailingOutputOnStderr checks the notices of an outage
// of the output and of its end on stderr, once each.
func TestOpen_ReportsAFailingOutputOnStderr(t *testing.T) {
	cfg := testConfig(t, func(c *config.Config) { c.LogTo = config.LogToStdout })
	stdout := &failingWriter{}
	var stderr lockedBuffer
	l, err := Open(cfg, "Alford", Options{Stdout: stdout, Stderr: &stderr})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	stdout.fail(true)
	l.Logger.Info("during")
	eventually(t, func() bool { return strings.Contains(stderr.String(), "cannot write the log to stdout") }, "a notice on stderr")
	stdout.fail(false)
	l.Logger.Info("after")
	eventually(t, func() bool { return strings.Contains(stdout.String(), "msg=after") }, "logging to resume")
	eventually(t, func() bool {
		return strings.Contains(stderr.String(), "writing the log to stdout again; 0 lines were dropped")
	},
		"a notice of the end of the outage")
	if n := strings.Count(stderr.String(), "\n"); n != 2 {
		t.Errorf("stderr holds %d lines; want 2:\n%s", n, stderr.String())
	}
	if !strings.Contains(stdout.String(), "msg=during") || l.Dropped() != 0 {
		t.Errorf("lines written during a short outage were lost (%d dropped):\n%s", l.Dropped(), stdout.String())
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// failingWriter fails every write, as a full disk does, while told to.
type failingWriter struct {
	lockedBuffer
	failing bool
}

func (w *failingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	failing := w.failing
	w.mu.Unlock()
	if failing {
		return 0, syscall.ENOSPC
	}
	return w.lockedBuffer.Write(p)
}

func (w *failingWriter) fail(on bool) {
	w.mu.Lock()
	w.failing = on
	w.mu.Unlock()
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
