package store_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/herd-dev/herd/internal/store"
)

// buildDir writes a data directory by hand: META of the given format
// version, and each file as the concatenation of its parts.
func buildDir(t *testing.T, version int, fileParts map[string][][]byte) string {
	t.Helper()
	dir := t.TempDir()
	meta := fmt.Sprintf("herd-store %d\nepoch 0123456789abcdef\n", version)
	if err := os.WriteFile(filepath.Join(dir, "META"), []byte(meta), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, parts := range fileParts {
		if err := os.WriteFile(filepath.Join(dir, name), slices.Concat(parts...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// framesEnded returns the frames of entries followed by their end frame.
func framesEnded(entries ...string) []byte {
	var b []byte
	for _, e := range entries {
		b = append(b, frame([]byte(e))...)
	}
	return append(b, endFrame(len(b))...)
}

// TestEndFrames covers the end frame that closes every file but the newest
// segment: a file that lost its tail exactly at a frame boundary reads as
// valid frame by frame, and only the missing end frame tells that entries
// were lost. A version 1 directory, written before end frames, still opens.
func TestEndFrames(t *testing.T) {
	a1, a2, b1 := frame([]byte("a1")), frame([]byte("a2")), frame([]byte("b1"))
	for _, tc := range []struct {
		name    string
		version int
		seg1    [][]byte // the older segment; seg-2 holds b1
		want    [][]byte
		damage  string // the reason Damaged gives for seg-1, or ""
	}{
		{"whole", 2, [][]byte{framesEnded("a1", "a2")}, strs("a1", "a2", "b1"), ""},
		{"cut at a frame boundary", 2, [][]byte{a1}, strs("a1", "b1"), "no end frame"},
		{"end frame out of place", 2, [][]byte{a1, endFrame(0), a2}, strs("a1", "b1"), "end frame out of place"},
		{"data after the end frame", 2, [][]byte{framesEnded("a1"), a2}, strs("a1", "b1"), "data after the end frame"},
		{"bad end frame", 2, [][]byte{a1, a2, flipLast(endFrame(len(a1) + len(a2)))}, strs("a1", "a2", "b1"), "checksum mismatch"},
		{"version 1 without end frames", 1, [][]byte{a1, a2}, strs("a1", "a2", "b1"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := buildDir(t, tc.version, map[string][][]byte{
				"seg-0000000001.log": tc.seg1,
				"seg-0000000002.log": {b1},
			})
			l, got, _ := openReplay(t, dir, store.FsyncNo)
			wantEntries(t, got, tc.want)
			damaged := l.Damaged()
			switch {
			case tc.damage == "" && len(damaged) > 0:
				t.Errorf("Damaged() = %+v, want none", damaged)
			case tc.damage != "" && (len(damaged) != 1 || !strings.HasSuffix(damaged[0].File, "seg-0000000001.log") || !strings.Contains(damaged[0].Reason, tc.damage)):
				t.Errorf("Damaged() = %+v, want seg-0000000001.log: %s", damaged, tc.damage)
			}
		})
	}
}

func flipLast(b []byte) []byte {
	b[len(b)-1] ^= 1
	return b
}

// TestSnapshotCutAtFrameBoundary cuts a snapshot that nothing older can
// stand in for just before its last entry: the entries before the cut come
// back, Damaged reports the snapshot, and the file is left as it is.
func TestSnapshotCutAtFrameBoundary(t *testing.T) {
	dir := t.TempDir()
	l, _, _ := openReplay(t, dir, store.FsyncNo)
	appendAll(t, l, strs("a1")...)
	if err := l.BeginSnapshot().Write(slices.Values(strs("s1", "s2", "s3"))); err != nil {
		t.Fatal(err)
	}
	appendAll(t, l, strs("b1")...)
	mustClose(t, l)
	snap := filepath.Join(dir, files(t, dir)[1])
	cut := slices.Concat(frame([]byte("s1")), frame([]byte("s2")))
	if err := os.WriteFile(snap, cut, 0o644); err != nil {
		t.Fatal(err)
	}
	l, got, _ := openReplay(t, dir, store.FsyncNo)
	wantEntries(t, got, strs("s1", "s2", "b1"))
	if d := l.Damaged(); len(d) != 1 || d[0].File != snap {
		t.Errorf("Damaged() = %+v, want the snapshot %s", d, snap)
	}
	wantFile(t, snap, cut)
}

// TestMissingFiles covers a segment, or the snapshot before the segments,
// gone from the directory: the entries of the files left come back, and
// Damaged names where the run of files breaks.
func TestMissingFiles(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fill   func(*store.Log) // after a1 is appended
		remove string
		want   [][]byte
		damage string // the file Damaged names
	}{
		{
			name: "a segment",
			fill: func(l *store.Log) {
				l.BeginSnapshot().Abort() // a1 stays in seg-1
				appendAll(t, l, strs("b1")...)
				l.BeginSnapshot().Abort() // b1 stays in seg-2
				appendAll(t, l, strs("c1")...)
			},
			remove: "seg-0000000002.log", want: strs("a1", "c1"), damage: "seg-0000000002.log",
		},
		{
			name: "the snapshot",
			fill: func(l *store.Log) {
				if err := l.BeginSnapshot().Write(slices.Values(strs("s1"))); err != nil {
					t.Fatal(err)
				}
				appendAll(t, l, strs("b1")...)
			},
			remove: "snap-0000000002.log", want: strs("b1"), damage: "seg-0000000001.log",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l, _, _ := openReplay(t, dir, store.FsyncNo)
			appendAll(t, l, strs("a1")...)
			tc.fill(l)
			mustClose(t, l)
			if err := os.Remove(filepath.Join(dir, tc.remove)); err != nil {
				t.Fatal(err)
			}
			l, got, _ := openReplay(t, dir, store.FsyncNo)
			wantEntries(t, got, tc.want)
			if d := l.Damaged(); len(d) != 1 || filepath.Base(d[0].File) != tc.damage || !strings.Contains(d[0].Reason, "missing") {
				t.Errorf("Damaged() = %+v, want %s missing", d, tc.damage)
			}
		})
	}
}

// TestNewestSegmentEnded covers a crash after a segment got its end frame
// and before the next one was created: nothing is lost, and appends go to
// a new segment, since entries after an end frame would be damage.
func TestNewestSegmentEnded(t *testing.T) {
	dir := buildDir(t, 2, map[string][][]byte{"seg-0000000001.log": {framesEnded("a1", "a2")}})
	l, got, _ := openReplay(t, dir, store.FsyncNo)
	wantEntries(t, got, strs("a1", "a2"))
	appendAll(t, l, strs("b1")...)
	mustClose(t, l)
	l, got, _ = openReplay(t, dir, store.FsyncNo)
	wantEntries(t, got, strs("a1", "a2", "b1"))
	if d := l.Damaged(); len(d) > 0 {
		t.Errorf("Damaged() = %+v, want none", d)
	}
}

// TestVersion1Directory_MovedOnBySnapshot opens a directory written before
// end frames, and checks that the first snapshot that replaces all its
// files moves META to version 2, after which files without end frames are
// damage.
func TestVersion1Directory_MovedOnBySnapshot(t *testing.T) {
	dir := buildDir(t, 1, map[string][][]byte{
		"seg-0000000001.log": {frame([]byte("a1"))},
		"seg-0000000002.log": {frame([]byte("a2"))},
	})
	l, got, _ := openReplay(t, dir, store.FsyncNo)
	wantEntries(t, got, strs("a1", "a2"))
	if d := l.Damaged(); len(d) > 0 {
		t.Errorf("Damaged() = %+v in a version 1 directory, want none", d)
	}
	if err := l.BeginSnapshot().Write(slices.Values(strs("s1"))); err != nil {
		t.Fatal(err)
	}
	appendAll(t, l, strs("b1")...)
	mustClose(t, l)
	meta, err := os.ReadFile(filepath.Join(dir, "META"))
	if err != nil || !strings.HasPrefix(string(meta), "herd-store 2\nepoch 0123456789abcdef\n") {
		t.Fatalf("META after the snapshot: %q (%v); want version 2 and the same epoch", meta, err)
	}
	l, got, _ = openReplay(t, dir, store.FsyncNo)
	wantEntries(t, got, strs("s1", "b1"))
	if d := l.Damaged(); len(d) > 0 {
		t.Errorf("Damaged() = %+v after the move to version 2, want none", d)
	}
}
