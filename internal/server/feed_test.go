package server

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/herd-dev/herd/internal/herd"
	"github.com/herd-dev/herd/internal/peer"
	"github.com/herd-dev/herd/internal/wire"
)

// sessions returns both ends of a link from Alford to Hamilton, made by a
// real handshake; with a secret every write is sealed.
func sessions(t testing.TB, secret string, epoch, head, cursor uint64) (dialer, acceptor *peer.Session, hello peer.Hello) {
	t.Helper()
	d := peer.NewDialer([]byte(secret), "Alford", "Hamilton", epoch, head)
	a := peer.NewAcceptor("Hamilton", []byte(secret), func(string) bool { return true })
	helloLine, auth, _ := bytes.Cut(d.Start(), []byte("\n"))
	accepting, err := a.Hello(helloLine)
	if err != nil {
		t.Fatal(err)
	}
	out, dialer, _, err := d.Welcome(bytes.TrimSuffix(accepting.Welcome(cursor), []byte("\n")))
	if err != nil {
		t.Fatal(err)
	}
	if len(auth) == 0 {
		auth = out
	}
	acceptor, err = accepting.Auth(bytes.TrimSuffix(auth, []byte("\n")))
	if err != nil {
		t.Fatal(err)
	}
	return dialer, acceptor, accepting.Hello()
}

// iamat stores an IAMAT for client on n, with client time sec.
func iamat(t *testing.T, n *herd.Node, client string, sec int) {
	t.Helper()
	m, err := wire.Parse(fmt.Appendf(nil, "IAMAT %s +34.068930-118.445127 %d.0", client, sec))
	if err != nil {
		t.Fatal(err)
	}
	n.IAMAT(wire.UnixTime(int64(sec)*1e9+5e8), &m)
}

// deliver feeds every line of a write to r.
func deliver(t *testing.T, r *feedReceiver, write []byte) error {
	t.Helper()
	for _, line := range bytes.Split(bytes.TrimSuffix(write, []byte("\n")), []byte("\n")) {
		if err := r.receive(line); err != nil {
			return err
		}
	}
	return nil
}

// A feed sent from one node and received by another leaves the receiver
// with the sender's newest records and its cursor at the sender's head,
// with and without a peer secret.
func TestFeed_SenderToReceiver(t *testing.T) {
	for _, secret := range []string{"", "s3cret"} {
		t.Run(fmt.Sprintf("secret %q", secret), func(t *testing.T) {
			alford, hamilton := herd.NewNode("Alford", nil), herd.NewNode("Hamilton", nil)
			for i := range 300 {
				iamat(t, alford, fmt.Sprintf("c%d", i%200), 1000+i) // 100 of them superseded
			}
			ds, as, hello := sessions(t, secret, 7, alford.Head(), 0)
			f := &feedSender{node: alford, sess: ds, peer: "Hamilton", catchUpEnd: hello.Head}
			r := newFeedReceiver(hamilton, hello, as)
			var total appliedBatch
			for f.fill() {
				b := f.take()
				if err := deliver(t, r, b.lines); err != nil {
					t.Fatal(err)
				}
				a := r.apply()
				total.received += a.received
				total.stored += a.stored
			}
			if total.received != 200 || total.stored != 200 {
				t.Errorf("received %d, stored %d; want 200 live records, each stored", total.received, total.stored)
			}
			if hamilton.Len() != 200 {
				t.Errorf("receiver knows %d clients; want 200", hamilton.Len())
			}
			if got := hamilton.Cursor("Alford"); got != (herd.Cursor{Epoch: 7, Seq: alford.Head()}) {
				t.Errorf("receiver's cursor = %+v; want epoch 7 at the sender's head %d", got, alford.Head())
			}
			if r.applied.Load() != alford.Head() {
				t.Errorf("acknowledged cursor %d; want %d", r.applied.Load(), alford.Head())
			}
		})
	}
}

// Past catch-up, records that came from the neighbor are not sent back to
// it; a MARK still moves its cursor past them. During catch-up they are
// sent, since the neighbor may have lost them.
func TestFeedSender_SkipsTheNeighborsOwnRecordsAfterCatchUp(t *testing.T) {
	node := herd.NewNode("Alford", nil)
	iamat(t, node, "mine", 1000)
	at, err := wire.Parse([]byte("AT Hamilton +0.100000000 theirs +34.068930-118.445127 1000.0"))
	if err != nil {
		t.Fatal(err)
	}
	node.OfferFrom("Hamilton", herd.Cursor{Epoch: 1, Seq: 1}, []*herd.Record{herd.NewRecord([]byte("AT Hamilton +0.100000000 theirs +34.068930-118.445127 1000.0"), &at)})
	tests := []struct {
		name       string
		catchUpEnd uint64
		wantAT     int
	}{
		{"live", 0, 1},
		{"catching up", node.Head(), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds, _, _ := sessions(t, "", 1, 0, 0)
			f := &feedSender{node: node, sess: ds, peer: "Hamilton", catchUpEnd: tt.catchUpEnd}
			if !f.fill() {
				t.Fatal("fill found nothing")
			}
			b := f.take()
			if got := bytes.Count(b.lines, []byte(peer.KeyAT+" ")); got != tt.wantAT || b.records != tt.wantAT {
				t.Errorf("sent %d AT messages (%d counted); want %d:\n%s", got, b.records, tt.wantAT, b.lines)
			}
			if b.cursor != node.Head() {
				t.Errorf("batch resumes after %d; want the head %d", b.cursor, node.Head())
			}
			if tt.wantAT == 1 && !bytes.Contains(b.lines, fmt.Appendf(nil, "%s %d\n", peer.KeyMark, node.Head())) {
				t.Errorf("no MARK past the skipped record:\n%s", b.lines)
			}
			if f.fill() {
				t.Error("a second fill found more")
			}
		})
	}
}

// A sender gathers at most about one write's worth before it says so.
func TestFeedSender_FullAtAWritesWorth(t *testing.T) {
	node := herd.NewNode("Alford", nil)
	for i := range 2000 {
		iamat(t, node, fmt.Sprintf("client-%04d", i), 1000+i)
	}
	ds, _, _ := sessions(t, "", 1, 0, 0)
	f := &feedSender{node: node, sess: ds, peer: "Hamilton"}
	for f.fill() && !f.full() {
	}
	b := f.take()
	if len(b.lines) < writeChunk || len(b.lines) > writeChunk+feedBatch*128 {
		t.Errorf("a full batch is %d bytes; want about %d", len(b.lines), writeChunk)
	}
	if f.pending() {
		t.Error("take left messages behind")
	}
	f.ping()
	if got := f.take(); string(got.lines) != peer.KeyPing+"\n" || got.records != 0 {
		t.Errorf("ping batch = %q (%d records)", got.lines, got.records)
	}
}

// A receiver applies nothing until the seal that covers it checks out, and
// a tampered, unsealed or malformed feed ends the link.
func TestFeedReceiver_Refusals(t *testing.T) {
	const update = "AT Alford +0.100000000 kiwi +34.068930-118.445127 1000.0"
	tests := []struct {
		name  string
		write func(s *peer.Session) []byte
		want  error // nil: applied after the seal
	}{
		{"sealed update", func(s *peer.Session) []byte { return s.Seal(s.AppendUpdate(nil, 1, update)) }, nil},
		{"tampered update", func(s *peer.Session) []byte {
			return bytes.Replace(s.Seal(s.AppendUpdate(nil, 1, update)), []byte("kiwi"), []byte("kiwa"), 1)
		}, peer.ErrAuth},
		{"malformed update", func(s *peer.Session) []byte {
			return s.Seal(s.AppendUpdate(nil, 1, "AT Alford not-an-at-line"))
		}, peer.ErrMalformed},
		{"unknown message", func(s *peer.Session) []byte { return s.Seal(s.Append(nil, "HERD-WHAT", nil)) }, peer.ErrMalformed},
		{"too many unsealed", func(s *peer.Session) []byte {
			var w []byte
			for i := range maxUnsealed + 1 {
				w = s.AppendUpdate(w, uint64(i+1), update)
			}
			return w
		}, errTooManyUnsealed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds, as, hello := sessions(t, "s3cret", 1, 5, 0)
			node := herd.NewNode("Hamilton", nil)
			r := newFeedReceiver(node, hello, as)
			w := tt.write(ds)
			lines := bytes.Split(bytes.TrimSuffix(w, []byte("\n")), []byte("\n"))
			var err error
			for i, line := range lines {
				if err = r.receive(line); err != nil {
					break
				}
				if i < len(lines)-1 && len(r.batch) > 0 {
					t.Fatalf("a record was ready to apply before its seal, after %q", line)
				}
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("receive error = %v; want %v", err, tt.want)
			}
			if tt.want != nil {
				return
			}
			if a := r.apply(); a.received != 1 || a.stored != 1 || a.catchUp != 1 {
				t.Errorf("apply = %+v; want one record stored, counted as catch-up (seq 1 <= head 5)", a)
			}
			if rec, ok := node.Lookup([]byte("kiwi")); !ok || rec.Line != update {
				t.Errorf("node has %v; want %q", rec, update)
			}
		})
	}
}

// A MARK moves the cursor without records, and the ACKs follow it.
func TestFeedReceiver_MarkMovesTheCursor(t *testing.T) {
	ds, as, hello := sessions(t, "", 3, 0, 10)
	node := herd.NewNode("Hamilton", nil)
	r := newFeedReceiver(node, hello, as)
	if r.applied.Load() != 10 {
		t.Fatalf("starts acknowledging %d; want the cursor 10", r.applied.Load())
	}
	if err := deliver(t, r, ds.AppendMark(nil, 42)); err != nil {
		t.Fatal(err)
	}
	r.apply()
	if got := node.Cursor("Alford"); got != (herd.Cursor{Epoch: 3, Seq: 42}) || r.applied.Load() != 42 {
		t.Errorf("cursor %+v, acknowledged %d; want epoch 3 at 42", got, r.applied.Load())
	}
	if node.Len() != 0 {
		t.Errorf("a MARK stored %d records", node.Len())
	}
}

// BenchmarkFeed_Receive measures a neighbor's link applying its feed: every
// line of a sealed batch of updates read, checked, parsed and applied to a
// node holding 100,000 clients, half of them stored and half duplicates,
// as on the seed's ring.
func BenchmarkFeed_Receive(b *testing.B) {
	const clients = 100_000
	source, target := herd.NewNode("Alford", nil), herd.NewNode("Holiday", nil)
	for i := range clients {
		m, err := wire.Parse(fmt.Appendf(nil, "IAMAT client-%07d +34.068930-118.445127 %d.0", i, 1000+i))
		if err != nil {
			b.Fatal(err)
		}
		source.IAMAT(wire.UnixTime(int64(1000+i)*1e9+5e8), &m)
	}
	// The target has every other client's update already: those are
	// duplicates.
	var half []*herd.Record
	half, _ = source.Changes(half, 0, clients, "")
	for i, r := range half {
		if i%2 == 0 {
			m, _ := wire.Parse([]byte(r.Line))
			target.OfferFrom("Hamilton", herd.Cursor{Epoch: 1, Seq: uint64(i + 1)}, []*herd.Record{herd.NewRecord([]byte(r.Line), &m)})
		}
	}
	var batches [][]byte
	ds, as, hello := sessions(b, "s3cret", 7, source.Head(), 0)
	f := &feedSender{node: source, sess: ds, peer: "Holiday", catchUpEnd: 0}
	for f.fill() {
		batches = append(batches, bytes.Clone(f.take().lines))
	}
	r := newFeedReceiver(target, hello, as)
	b.ReportAllocs()
	updates := 0
	for i := 0; b.Loop(); i++ {
		if i == len(batches) {
			b.StopTimer() // a fresh target and session: the batches only apply once
			target = herd.NewNode("Holiday", nil)
			ds, as, hello = sessions(b, "s3cret", 7, source.Head(), 0)
			batches = batches[:0]
			f = &feedSender{node: source, sess: ds, peer: "Holiday"}
			for f.fill() {
				batches = append(batches, bytes.Clone(f.take().lines))
			}
			r, i = newFeedReceiver(target, hello, as), 0
			b.StartTimer()
		}
		for line := range bytes.SplitSeq(bytes.TrimSuffix(batches[i], []byte("\n")), []byte("\n")) {
			if err := r.receive(line); err != nil {
				b.Fatal(err)
			}
		}
		updates += r.apply().received
	}
	b.ReportMetric(float64(updates)/float64(b.N), "updates/op")
}
