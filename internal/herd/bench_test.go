package herd_test

import (
	"fmt"
	"testing"

	"github.com/herd-dev/herd/internal/herd"
	"github.com/herd-dev/herd/internal/wire"
)

// benchJournal stands in for the store: it copies each entry, as
// store.Log.Append copies it into its buffer, and drops it.
type benchJournal struct{ buf []byte }

func (j *benchJournal) Append(entry []byte) { j.buf = append(j.buf[:0], entry...) }

// benchIAMATs returns n parsed IAMATs for distinct clients. Their byte
// fields alias lines that stay alive for the benchmark.
func benchIAMATs(b *testing.B, n int) []wire.Msg {
	b.Helper()
	msgs := make([]wire.Msg, n)
	for i := range msgs {
		line := fmt.Appendf(nil, "IAMAT client-%07d +34.068930-118.445127 1479413884.%09d", i, i)
		m, err := wire.Parse(line)
		if err != nil {
			b.Fatal(err)
		}
		msgs[i] = m
	}
	return msgs
}

// BenchmarkNodeIAMAT measures Node.IAMAT: the AT reply, the record, the
// change feed and the journal entry. "new" names a client the node has not
// seen (its table grows); "same" moves one of 10,000 known clients (records
// are superseded and the feed compacts).
func BenchmarkNodeIAMAT(b *testing.B) {
	b.Run("new", func(b *testing.B) {
		msgs := benchIAMATs(b, 1<<20)
		n := herd.NewNode("Alford", &benchJournal{})
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if i == len(msgs) { // a fresh node, so every client stays new
				b.StopTimer()
				n, i = herd.NewNode("Alford", &benchJournal{}), 0
				b.StartTimer()
			}
			if _, stored, _ := n.IAMAT(wire.Time{Sec: 1479413885}, &msgs[i]); !stored {
				b.Fatal("a new client's IAMAT was not stored")
			}
			i++
		}
	})
	b.Run("same", func(b *testing.B) {
		msgs := benchIAMATs(b, 10_000)
		n := herd.NewNode("Alford", &benchJournal{})
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			m := &msgs[i%len(msgs)]
			m.T.Sec++ // newer than the last time round, so it is stored
			if _, stored, _ := n.IAMAT(wire.Time{Sec: 1479413885}, m); !stored {
				b.Fatal("a newer IAMAT was not stored")
			}
			i++
		}
	})
}

// BenchmarkChanges measures what a peer link does per batch: read up to 256
// live records after its cursor from a node holding 100,000 clients.
func BenchmarkChanges(b *testing.B) {
	msgs := benchIAMATs(b, 100_000)
	n := herd.NewNode("Alford", nil)
	for i := range msgs {
		n.IAMAT(wire.Time{Sec: 1479413885}, &msgs[i])
	}
	head := n.Head()
	dst := make([]*herd.Record, 0, 256)
	b.ReportAllocs()
	var cursor uint64
	for b.Loop() {
		dst, cursor = n.Changes(dst[:0], cursor, 256, "Hamilton")
		if cursor >= head {
			cursor = 0
		}
	}
	b.ReportMetric(256, "records/op")
}

// BenchmarkOfferFrom measures a link applying a neighbor's batch of 256
// updates to a node holding 100,000 clients, each update newer than the
// client's stored record (stored) or not (duplicate), the clients spread
// over the table as a herd's are.
func BenchmarkOfferFrom(b *testing.B) {
	const clients = 100_000
	for _, dup := range []bool{false, true} {
		name := "stored"
		if dup {
			name = "duplicate"
		}
		b.Run(name, func(b *testing.B) {
			n := herd.NewNode("Holiday", &benchJournal{})
			msgs := benchIAMATs(b, clients)
			for i := range msgs {
				n.IAMAT(wire.Time{Sec: 1479413885}, &msgs[i])
			}
			lines := make([][]byte, clients)
			for i := range lines {
				lines[i] = fmt.Appendf(nil, "AT Alford +0.100000000 client-%07d +34.068930-118.445127 1479413890.%09d", (i*7919)%clients, i)
			}
			batch := make([]*herd.Record, 256)
			b.ReportAllocs()
			seq, next := uint64(0), 0
			for b.Loop() {
				b.StopTimer()
				for j := range batch {
					line := lines[next%clients]
					if !dup {
						line = fmt.Appendf(line[:0], "AT Alford +0.100000000 client-%07d +34.068930-118.445127 %d.0", (next*7919)%clients, 1479413890+next)
					}
					m, err := wire.Parse(line)
					if err != nil {
						b.Fatal(err)
					}
					batch[j] = herd.NewRecord(line, &m)
					next++
				}
				seq += 256
				b.StartTimer()
				n.OfferFrom("Alford", herd.Cursor{Epoch: 1, Seq: seq}, batch)
				if dup {
					// The second time round every update is a duplicate.
					next %= clients
				}
			}
			b.ReportMetric(256, "updates/op")
		})
	}
}
