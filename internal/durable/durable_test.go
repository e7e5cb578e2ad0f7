package durable

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/herd-dev/herd/internal/herd"
	"github.com/herd-dev/herd/internal/store"
	"github.com/herd-dev/herd/internal/wire"
)

func TestNeedsCompaction(t *testing.T) {
	const mb = 1 << 20
	for _, tc := range []struct {
		since, snapshot int64
		want            bool
	}{
		{since: 0, snapshot: 0, want: false},
		{since: 63 * mb, snapshot: 0, want: false},
		{since: 64 * mb, snapshot: 0, want: true},
		{since: 64 * mb, snapshot: 10 * mb, want: true},
		{since: 64 * mb, snapshot: 40 * mb, want: false},
		{since: 80 * mb, snapshot: 40 * mb, want: true},
		{since: 500 * mb, snapshot: 300 * mb, want: false},
	} {
		st := store.Stats{BytesSinceSnapshot: tc.since, SnapshotBytes: tc.snapshot}
		if got := needsCompaction(st); got != tc.want {
			t.Errorf("needsCompaction(since %d MiB, snapshot %d MiB) = %v; want %v", tc.since/mb, tc.snapshot/mb, got, tc.want)
		}
	}
}

func TestOpen_BadFsync(t *testing.T) {
	_, err := Open(Options{Dir: t.TempDir(), Name: "S", Fsync: "sometimes"})
	if err == nil || !strings.Contains(err.Error(), "fsync") || !strings.Contains(err.Error(), "sometimes") {
		t.Errorf("Open with fsync %q = %v; want an error naming fsync and the value", "sometimes", err)
	}
}

// errorLog is a slog.Handler that keeps the messages of Error records.
type errorLog struct {
	mu   *sync.Mutex
	msgs *[]string
}

func newErrorLog() errorLog { return errorLog{mu: &sync.Mutex{}, msgs: new([]string)} }

func (errorLog) Enabled(_ context.Context, level slog.Level) bool { return level >= slog.LevelError }
func (h errorLog) WithAttrs([]slog.Attr) slog.Handler             { return h }
func (h errorLog) WithGroup(string) slog.Handler                  { return h }

func (h errorLog) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.msgs = append(*h.msgs, r.Message)
	return nil
}

// errors returns the messages of the Error records logged so far.
func (h errorLog) errors() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(*h.msgs)
}

// open opens a Store on dir, failing the test if it cannot.
func open(t *testing.T, dir string) (*Store, errorLog) {
	t.Helper()
	capture := newErrorLog()
	s, err := Open(Options{Dir: dir, Name: "S", Fsync: "no", Logger: slog.New(capture)})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, capture
}

func mustClose(t *testing.T, s *Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// records makes n AT records from neighbor peer for clients prefix-0 and on.
func records(t *testing.T, prefix string, n int) []*herd.Record {
	t.Helper()
	var out []*herd.Record
	for i := range n {
		line := fmt.Sprintf("AT R +0.500000000 %s-%04d +34.068930-118.445127 1700000000.%09d", prefix, i, i)
		m, err := wire.Parse([]byte(line))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, herd.NewRecord([]byte(line), &m))
	}
	return out
}

// missing returns how many of recs the node has no record for.
func missing(n *herd.Node, recs []*herd.Record) int {
	lost := 0
	for _, r := range recs {
		if _, ok := n.Lookup([]byte(r.Client())); !ok {
			lost++
		}
	}
	return lost
}

// onlyFile returns the path of dir's only file matching pattern.
func onlyFile(t *testing.T, dir, pattern string) string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil || len(matches) != 1 {
		t.Fatalf("files %s in %s: %v (%v); want one", pattern, dir, matches, err)
	}
	return matches[0]
}

// A store whose snapshot or segment the disk damaged loses the records
// after the bad frame, while the cursor journaled later survives: the node
// must forget its cursors, so that neighbors send everything again, and
// keep them forgotten across a restart; the damaged file is set aside whole.
// A torn tail of the newest segment, as a crash leaves, loses no cursor.
func TestOpen_DamageForgetsCursors(t *testing.T) {
	for _, tc := range []struct {
		name        string
		file        string // glob of the file to damage
		damage      func(b []byte) []byte
		wantForgets bool
	}{
		{"snapshot cut in half", "snap-*.log", func(b []byte) []byte { return b[:len(b)/2] }, true},
		{"snapshot byte flipped", "snap-*.log", func(b []byte) []byte { b[len(b)/2] ^= 0x40; return b }, true},
		{"segment byte flipped", "seg-*.log", func(b []byte) []byte { b[len(b)/3] ^= 0x40; return b }, true},
		{"segment torn tail", "seg-*.log", func(b []byte) []byte { return b[:len(b)-3] }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := open(t, dir)
			early, late := records(t, "early", 400), records(t, "late", 400)
			s.Node().OfferFrom("R", herd.Cursor{Epoch: 7, Seq: 400}, early)
			if err := s.Compact(); err != nil {
				t.Fatal(err)
			}
			s.Node().OfferFrom("R", herd.Cursor{Epoch: 7, Seq: 800}, late)
			mustClose(t, s) // journals R's cursor after the late records

			path := onlyFile(t, dir, tc.file)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, tc.damage(bytes.Clone(data)), 0o644); err != nil {
				t.Fatal(err)
			}

			s, capture := open(t, dir)
			lost := missing(s.Node(), append(early, late...))
			cursor := s.Node().Cursor("R")
			if !tc.wantForgets {
				// The torn frame is the last cursor entry: the snapshot's holds.
				if cursor != (herd.Cursor{Epoch: 7, Seq: 400}) || lost != 0 {
					t.Fatalf("after a torn tail: cursor %+v, %d records missing; want the snapshot's cursor and every record", cursor, lost)
				}
				if errs := capture.errors(); len(errs) != 0 {
					t.Errorf("a torn tail logged errors: %q", errs)
				}
				return
			}
			if lost == 0 {
				t.Fatal("the damage lost no record; the test damages the wrong place")
			}
			if cursor != (herd.Cursor{}) {
				t.Errorf("after damage lost %d records, R's cursor is %+v; want it forgotten so R sends everything", lost, cursor)
			}
			aside := onlyFile(t, dir, "*.damaged")
			if got, err := os.ReadFile(aside); err != nil || !bytes.Equal(got, tc.damage(bytes.Clone(data))) {
				t.Errorf("%s is not the damaged file, whole (%v)", aside, err)
			}
			if errs := capture.errors(); len(errs) == 0 || !strings.Contains(strings.Join(errs, ""), "forgot every link cursor") {
				t.Errorf("errors logged %q; want one saying the cursors were forgotten", errs)
			}
			mustClose(t, s)

			// The forgotten cursors and the surviving records stay so.
			s, capture = open(t, dir)
			if got := s.Node().Cursor("R"); got != (herd.Cursor{}) {
				t.Errorf("after a second restart R's cursor is %+v; want it still forgotten", got)
			}
			if got := missing(s.Node(), append(early, late...)); got != lost {
				t.Errorf("after a second restart %d records are missing; want the same %d", got, lost)
			}
			if errs := capture.errors(); len(errs) != 0 {
				t.Errorf("second restart logged errors: %q", errs)
			}
		})
	}
}

// Close journals the cursors that moved, so a restart resumes each link.
func TestClose_SavesCursors(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir)
	s.Node().OfferFrom("R", herd.Cursor{Epoch: 7, Seq: 3}, records(t, "c", 3))
	mustClose(t, s)
	s, _ = open(t, dir)
	if got, want := s.Node().Cursor("R"), (herd.Cursor{Epoch: 7, Seq: 3}); got != want {
		t.Errorf("cursor after a restart = %+v; want %+v", got, want)
	}
}

// A compaction that cannot write its snapshot, as on a disk without room,
// fails without harm and is counted; the next one that can write goes
// ahead.
func TestCompact_FailureIsCounted(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir)
	s.Node().OfferFrom("R", herd.Cursor{Epoch: 7, Seq: 10}, records(t, "c", 10))
	// The next snapshot's temporary file cannot be created: a directory
	// holds its name.
	blocker := filepath.Join(dir, "snap-0000000002.log.tmp")
	if err := os.Mkdir(blocker, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(); err == nil {
		t.Fatal("Compact succeeded without room for its snapshot")
	}
	if got := s.CompactionFailures(); got != 1 {
		t.Errorf("CompactionFailures = %d after one failed; want 1", got)
	}
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(); err != nil {
		t.Fatalf("Compact with room again: %v", err)
	}
	if got := s.CompactionFailures(); got != 1 {
		t.Errorf("CompactionFailures = %d after a success; want still 1", got)
	}
}
