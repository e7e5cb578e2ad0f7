package durable

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/herd-dev/herd/internal/herd"
	"github.com/herd-dev/herd/internal/wire"
)

// BenchmarkOpen measures recovery of a server that knows 200,000 clients
// (a snapshot, then 2,000 updates and the cursors journaled after it), with
// the snapshot intact and cut in half. A damaged one costs a new snapshot
// on top of the replay.
func BenchmarkOpen(b *testing.B) {
	const clients, updates = 200_000, 2_000
	src := b.TempDir()
	s, err := Open(Options{Dir: src, Name: "S"})
	if err != nil {
		b.Fatal(err)
	}
	offer := func(from, n int) {
		recs := make([]*herd.Record, 0, n)
		for i := from; i < from+n; i++ {
			line := fmt.Sprintf("AT R +0.500000000 client-%07d +34.068930-118.445127 1700000000.%09d", i%clients, i)
			m, err := wire.Parse([]byte(line))
			if err != nil {
				b.Fatal(err)
			}
			recs = append(recs, herd.NewRecord([]byte(line), &m))
		}
		s.Node().OfferFrom("R", herd.Cursor{Epoch: 7, Seq: uint64(from + n)}, recs)
	}
	offer(0, clients)
	if err := s.Compact(); err != nil {
		b.Fatal(err)
	}
	offer(clients, updates)
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}

	for _, damaged := range []bool{false, true} {
		b.Run(map[bool]string{false: "intact", true: "snapshot-cut-in-half"}[damaged], func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				dir := copyFlatDir(b, src)
				if damaged {
					snaps, _ := filepath.Glob(filepath.Join(dir, "snap-*.log"))
					fi, err := os.Stat(snaps[0])
					if err != nil {
						b.Fatal(err)
					}
					if err := os.Truncate(snaps[0], fi.Size()/2); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				s, err := Open(Options{Dir: dir, Name: "S"})
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				s.Close()
				os.RemoveAll(dir)
				b.StartTimer()
			}
		})
	}
}

// copyFlatDir copies the files of src into a new directory.
func copyFlatDir(tb testing.TB, src string) string {
	tb.Helper()
	dst := tb.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dst
}
