package store_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/herd-dev/herd/internal/store"
)

// TestTornTail truncates the newest segment at every offset inside its last
// frame, as a crash mid-write may, and checks that every earlier entry comes
// back, a warning names the file and the bytes dropped, and appends go on
// after the last whole entry.
func TestTornTail(t *testing.T) {
	entries := strs("first", strings.Repeat("second ", 10), "the last entry, torn by a crash")
	src := t.TempDir()
	l, _, _ := openReplay(t, src, store.FsyncNo)
	appendAll(t, l, entries...)
	mustClose(t, l)
	seg := onlySegment(t, src)
	fi, err := os.Stat(seg)
	if err != nil {
		t.Fatal(err)
	}
	size := fi.Size()
	lastStart := size - int64(len(frame(entries[2])))

	for cut := lastStart; cut < size; cut++ {
		t.Run(fmt.Sprint(cut-lastStart), func(t *testing.T) {
			dir := copyDir(t, src)
			if err := os.Truncate(filepath.Join(dir, filepath.Base(seg)), cut); err != nil {
				t.Fatal(err)
			}
			l, got, capture := openReplay(t, dir, store.FsyncNo)
			wantEntries(t, got, entries[:2])
			warns := capture.lines("WARN")
			if cut == lastStart {
				if len(warns) != 0 {
					t.Fatalf("a clean cut logged %q", warns)
				}
			} else {
				want := []string{"torn tail", filepath.Base(seg), fmt.Sprintf("offset=%d", lastStart), fmt.Sprintf("bytes_dropped=%d", cut-lastStart)}
				if len(warns) != 1 || !containsAll(warns[0], want...) {
					t.Fatalf("warnings %q, want one containing %q", warns, want)
				}
			}
			if errs := capture.lines("ERROR"); len(errs) != 0 {
				t.Fatalf("a torn tail logged errors: %q", errs)
			}

			appendAll(t, l, []byte("after recovery"))
			mustClose(t, l)
			_, got, capture = openReplay(t, dir, store.FsyncNo)
			wantEntries(t, got, append(entries[:2:2], []byte("after recovery")))
			if w := capture.lines("WARN"); len(w) != 0 {
				t.Fatalf("second reopen logged %q", w)
			}
		})
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// TestCorruptMiddle damages one frame in the middle of the newest segment:
// replay must yield the entries before it, log an error, report the damage,
// leave the file whole, append to a new segment, and the next snapshot must
// set the file aside rather than delete it.
func TestCorruptMiddle(t *testing.T) {
	var entries [][]byte
	for i := range 10 {
		entries = append(entries, fmt.Appendf(nil, "entry %d %s", i, strings.Repeat("x", 40)))
	}
	const bad = 5
	var offset int // where frame bad starts
	for _, e := range entries[:bad] {
		offset += len(frame(e))
	}
	tests := []struct {
		name   string
		damage func(b []byte) // b starts at frame bad
		reason string
	}{
		{"payload bit flip", func(b []byte) { b[12] ^= 0x10 }, "checksum mismatch"},
		{"checksum", func(b []byte) { b[5]++ }, "checksum mismatch"},
		{"length too large", func(b []byte) { binary.LittleEndian.PutUint32(b, 1<<30) }, "bad frame length"},
		{"length off by one", func(b []byte) { b[0]++ }, "checksum mismatch"},
		{"zeroed frame", func(b []byte) { clear(b[:len(frame(entries[bad]))]) }, "checksum mismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			l, _, _ := openReplay(t, dir, store.FsyncNo)
			appendAll(t, l, entries...)
			mustClose(t, l)
			seg := onlySegment(t, dir)
			data, err := os.ReadFile(seg)
			if err != nil {
				t.Fatal(err)
			}
			tt.damage(data[offset:])
			if err := os.WriteFile(seg, data, 0o644); err != nil {
				t.Fatal(err)
			}

			l, got, capture := openReplay(t, dir, store.FsyncNo)
			wantEntries(t, got, entries[:bad])
			errs := capture.lines("ERROR")
			want := []string{filepath.Base(seg), fmt.Sprintf("offset=%d", offset),
				fmt.Sprintf("bytes_dropped=%d", len(data)-offset), "valid_frames_after=true", tt.reason}
			if len(errs) != 1 || !containsAll(errs[0], want...) {
				t.Fatalf("errors logged %q, want one containing %q", errs, want)
			}
			wantDamage := []store.Damage{{File: seg, Offset: int64(offset), Size: int64(len(data)), Reason: tt.reason}}
			if got := l.Damaged(); !slices.Equal(got, wantDamage) {
				t.Errorf("Damaged() = %+v, want %+v", got, wantDamage)
			}
			wantFile(t, seg, data)

			// Appends go after the damage's file, and a reopen reads both.
			appendAll(t, l, []byte("after"))
			mustClose(t, l)
			l, got, _ = openReplay(t, dir, store.FsyncNo)
			wantEntries(t, got, append(slices.Clone(entries[:bad]), []byte("after")))
			wantFile(t, seg, data)

			// A snapshot replaces the damaged file and sets it aside whole.
			if err := l.BeginSnapshot().Write(slices.Values(got)); err != nil {
				t.Fatal(err)
			}
			wantFile(t, seg+".damaged", data)
			mustClose(t, l)
			_, got, capture = openReplay(t, dir, store.FsyncNo)
			wantEntries(t, got, append(slices.Clone(entries[:bad]), []byte("after")))
			if errs := capture.lines("ERROR"); len(errs) != 0 {
				t.Errorf("reopen after the snapshot logged errors: %q", errs)
			}
		})
	}
}

// TestCorruptOlderFile checks that damage to a file that is not the newest
// segment is reported as an error and that later files are still replayed.
func TestCorruptOlderFile(t *testing.T) {
	dir := t.TempDir()
	l, _, _ := openReplay(t, dir, store.FsyncNo)
	appendAll(t, l, strs("a1", "a2")...)
	s := l.BeginSnapshot()
	if err := s.Write(slices.Values(strs("s1", "s2", "s3"))); err != nil {
		t.Fatal(err)
	}
	appendAll(t, l, strs("b1")...)
	mustClose(t, l)
	snap := filepath.Join(dir, files(t, dir)[1]) // seg-N.log sorts before snap-N.log
	if !strings.Contains(snap, "snap-") {
		t.Fatalf("files %v", files(t, dir))
	}
	data, err := os.ReadFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-endFrameBytes-1] ^= 1 // last byte of s3
	if err := os.WriteFile(snap, data, 0o644); err != nil {
		t.Fatal(err)
	}
	l, got, capture := openReplay(t, dir, store.FsyncNo)
	wantEntries(t, got, strs("s1", "s2", "b1"))
	if errs := capture.lines("ERROR"); len(errs) != 1 || !strings.Contains(errs[0], "snap-") || !strings.Contains(errs[0], "checksum mismatch") {
		t.Fatalf("errors logged %q, want one for the snapshot's checksum", errs)
	}
	if d := l.Damaged(); len(d) != 1 || d[0].File != snap {
		t.Errorf("Damaged() = %+v, want the snapshot %s", d, snap)
	}
	wantFile(t, snap, data)
}

// wantFile fails the test unless the file at path holds exactly want.
func wantFile(t testing.TB, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s holds %d bytes, want the %d it had", filepath.Base(path), len(got), len(want))
	}
}

// TestZeroFilledTail checks that a tail of zero bytes, which some file
// systems leave after a crash, is not read as entries.
func TestZeroFilledTail(t *testing.T) {
	dir := t.TempDir()
	l, _, _ := openReplay(t, dir, store.FsyncNo)
	appendAll(t, l, strs("a", "b")...)
	mustClose(t, l)
	seg := onlySegment(t, dir)
	f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(make([]byte, 4096))
	f.Close()
	_, got, capture := openReplay(t, dir, store.FsyncNo)
	wantEntries(t, got, strs("a", "b"))
	if w := capture.lines("WARN"); len(w) != 1 || !strings.Contains(w[0], "bytes_dropped=4096") {
		t.Fatalf("warnings %q", w)
	}
}

// FuzzReplay feeds arbitrary bytes as a segment file: Replay must not panic,
// must yield exactly the longest prefix of valid entry frames, and must
// either cut off a torn tail (nothing valid after the prefix, or after the
// end frame that closes it) or report the damage and leave the file as it
// was.
func FuzzReplay(f *testing.F) {
	valid := append(frame([]byte("hello")), frame([]byte(""))...)
	f.Add([]byte{})
	f.Add(valid)
	f.Add(append(bytes.Clone(valid), 1, 2, 3))
	f.Add(append(bytes.Clone(valid), make([]byte, 20)...))
	f.Add(append(append(bytes.Clone(valid), 0xff, 0xff, 0xff, 0xff), valid...))
	f.Add(frame(bytes.Repeat([]byte{0}, 300))[:200])
	f.Add(slices.Concat(valid, endFrame(len(valid))))
	f.Add(slices.Concat(valid, endFrame(len(valid)), valid))
	f.Add(slices.Concat(valid, endFrame(0)))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		seg := filepath.Join(dir, "seg-0000000001.log")
		if err := os.WriteFile(seg, data, 0o644); err != nil {
			t.Fatal(err)
		}
		l, got, _ := openReplay(t, dir, store.FsyncNo)
		var prefix []byte
		for _, e := range got {
			prefix = append(prefix, frame(e)...)
		}
		if !bytes.HasPrefix(data, prefix) {
			t.Fatalf("replayed entries that are not a prefix of the file")
		}
		kept := len(prefix)
		if rest := data[kept:]; bytes.HasPrefix(rest, endFrame(kept)) {
			kept += endFrameBytes
		} else if startsWithFrame(rest) {
			t.Fatalf("replay stopped before a valid frame at offset %d", len(prefix))
		}
		damaged := len(l.Damaged()) > 0
		mustClose(t, l)
		want := data[:kept]
		if damaged {
			want = data
		}
		wantFile(t, seg, want)
	})
}

// startsWithFrame reports whether b starts with a valid frame, independently
// of the package's decoder.
func startsWithFrame(b []byte) bool {
	if len(b) < 8 {
		return false
	}
	n := binary.LittleEndian.Uint32(b)
	if n > 1<<20 || uint64(len(b)-8) < uint64(n) {
		return false
	}
	return bytes.Equal(frame(b[8:8+n]), b[:8+n])
}

// TestCorruptionFarFromNextFrame checks that a valid frame is found after a
// long stretch of garbage (more than one read window), so the damage is
// reported as corruption rather than a torn tail.
func TestCorruptionFarFromNextFrame(t *testing.T) {
	dir := t.TempDir()
	garbage := bytes.Repeat([]byte{0xff}, 5<<20)
	data := slices.Concat(frame([]byte("a")), garbage, frame([]byte("b")))
	seg := filepath.Join(dir, "seg-0000000001.log")
	if err := os.WriteFile(seg, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, got, capture := openReplay(t, dir, store.FsyncNo)
	wantEntries(t, got, strs("a"))
	errs := capture.lines("ERROR")
	want := []string{"valid_frames_after=true", fmt.Sprintf("bytes_dropped=%d", len(data)-len(frame([]byte("a"))))}
	if len(errs) != 1 || !containsAll(errs[0], want...) {
		t.Fatalf("errors logged %q, want one containing %q", errs, want)
	}
}

// TestDamagedSnapshotWithOlderFiles checks that a damaged snapshot that
// older files can stand in for (here a stray file numbered past the only
// segment) is set aside rather than trusted: trusting it would remove the
// segment and lose every entry.
func TestDamagedSnapshotWithOlderFiles(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content []byte
	}{
		{"garbage", bytes.Repeat([]byte{0xAB}, 1000)},
		{"empty", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l, _, _ := openReplay(t, dir, store.FsyncNo)
			appendAll(t, l, strs("a1", "a2", "a3")...)
			mustClose(t, l)
			stray := filepath.Join(dir, "snap-0000000005.log")
			if err := os.WriteFile(stray, tc.content, 0o644); err != nil {
				t.Fatal(err)
			}
			l, got, capture := openReplay(t, dir, store.FsyncNo)
			defer func() { mustClose(t, l) }() // the last l opened
			wantEntries(t, got, strs("a1", "a2", "a3"))
			if errs := capture.lines("ERROR"); len(errs) != 1 || !strings.Contains(errs[0], "snapshot damaged") {
				t.Errorf("errors logged %q, want one about the damaged snapshot", errs)
			}
			if _, err := os.Stat(stray + ".damaged"); err != nil {
				t.Errorf("the damaged snapshot was not kept aside: %v", err)
			}
			// A second one with the same number keeps the first.
			mustClose(t, l)
			if err := os.WriteFile(stray, tc.content, 0o644); err != nil {
				t.Fatal(err)
			}
			l, _, _ = openReplay(t, dir, store.FsyncNo)
			for _, name := range []string{stray + ".damaged", stray + ".damaged.2"} {
				if _, err := os.Stat(name); err != nil {
					t.Errorf("after a second damaged snapshot: %v", err)
				}
			}
		})
	}
}

// TestDamagedSnapshotAfterPartialCompaction covers a damaged snapshot
// whose predecessor is still there but not all the segments between them
// (compaction deletes covered segments first): the older files cannot
// stand in for it, so its valid part is replayed, as for a damaged
// snapshot with nothing older.
func TestDamagedSnapshotAfterPartialCompaction(t *testing.T) {
	dir := t.TempDir()
	snapshot := func(l *store.Log, entries ...string) string {
		t.Helper()
		s := l.BeginSnapshot()
		if err := s.Write(slices.Values(strs(entries...))); err != nil {
			t.Fatal(err)
		}
		for _, name := range files(t, dir) {
			if strings.HasPrefix(name, "snap-") {
				return filepath.Join(dir, name)
			}
		}
		t.Fatal("no snapshot written")
		return ""
	}
	l, _, _ := openReplay(t, dir, store.FsyncNo)
	appendAll(t, l, strs("a1")...)
	older := snapshot(l, "s1")
	olderData, err := os.ReadFile(older)
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, l, strs("b1")...)
	newer := snapshot(l, "s2a", "s2b", "s2c") // removes older and b1's segment
	appendAll(t, l, strs("c1")...)
	mustClose(t, l)

	// The older snapshot is back, b1's segment is not, and the newer
	// snapshot lost its end frame and the last byte of its last entry.
	if err := os.WriteFile(older, olderData, 0o644); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(newer)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(newer, data[:len(data)-endFrameBytes-1], 0o644); err != nil {
		t.Fatal(err)
	}
	l, got, _ := openReplay(t, dir, store.FsyncNo)
	defer mustClose(t, l)
	wantEntries(t, got, strs("s2a", "s2b", "c1"))
}
