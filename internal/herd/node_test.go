package herd

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/herd-dev/herd/internal/wire"
)

// network is five nodes wired as the seed's herd, exchanging records through
// per-link cursors exactly as the server's peer links do, but synchronously.
type network struct {
	nodes   map[string]*Node
	links   map[[2]string]uint64 // directed link -> sender's sequence the receiver has read
	down    map[[2]string]bool   // undirected link cut, keyed both ways
	epochs  map[string]uint64
	journal map[string]*memJournal
}

var seedTopology = map[string][]string{
	"Alford":   {"Hamilton", "Welsh"},
	"Ball":     {"Holiday", "Welsh"},
	"Hamilton": {"Alford", "Holiday"},
	"Holiday":  {"Ball", "Hamilton"},
	"Welsh":    {"Alford", "Ball"},
}

type memJournal struct{ entries [][]byte }

func (j *memJournal) Append(e []byte) { j.entries = append(j.entries, append([]byte(nil), e...)) }

func newNetwork() *network {
	nw := &network{nodes: map[string]*Node{}, links: map[[2]string]uint64{}, down: map[[2]string]bool{},
		epochs: map[string]uint64{}, journal: map[string]*memJournal{}}
	for name, nbrs := range seedTopology {
		nw.journal[name] = &memJournal{}
		nw.nodes[name] = NewNode(name, nw.journal[name])
		nw.epochs[name] = uint64(len(nw.epochs) + 1)
		for _, nb := range nbrs {
			nw.links[[2]string{name, nb}] = 0
		}
	}
	return nw
}

func (nw *network) cut(a, b string) { nw.down[[2]string{a, b}], nw.down[[2]string{b, a}] = true, true }
func (nw *network) restore(a, b string) {
	delete(nw.down, [2]string{a, b})
	delete(nw.down, [2]string{b, a})
}

// step moves at most max records over the directed link, as a peer link
// would in one batch, and reports whether anything moved.
func (nw *network) step(link [2]string, max int) bool {
	if nw.down[link] {
		return false
	}
	from, to := nw.nodes[link[0]], nw.nodes[link[1]]
	after := nw.links[link]
	recs, next := from.Changes(nil, after, max, link[1])
	if next == after {
		return false
	}
	copies := make([]*Record, len(recs))
	for i, r := range recs {
		c := *r
		copies[i] = &c
	}
	to.OfferFrom(link[0], Cursor{Epoch: nw.epochs[link[0]], Seq: next}, copies)
	nw.links[link] = next
	return true
}

// settle delivers until no link has anything left to send.
func (nw *network) settle() {
	for moved := true; moved; {
		moved = false
		for link := range nw.links {
			if nw.step(link, 1<<30) {
				moved = true
			}
		}
	}
}

func iamat(t testing.TB, n *Node, client string, sec int64, loc string) string {
	t.Helper()
	m, err := wire.Parse(fmt.Appendf(nil, "IAMAT %s %s %d.000000001", client, loc, sec))
	if err != nil {
		t.Fatal(err)
	}
	reply, _, _ := n.IAMAT(wire.Time{Sec: sec + 1}, &m)
	return reply
}

func (nw *network) requireEverywhere(t *testing.T, client, line string) {
	t.Helper()
	for name, n := range nw.nodes {
		r, ok := n.Lookup([]byte(client))
		if !ok || r.Line != line {
			t.Errorf("%s has %v for %s; want %q", name, r, client, line)
		}
	}
}

func TestNode_FloodReachesEveryServer(t *testing.T) {
	nw := newNetwork()
	line := iamat(t, nw.nodes["Alford"], "kiwi", 100, "+34.068930-118.445127")
	if want := "AT Alford +0.999999999 kiwi +34.068930-118.445127 100.000000001"; line != want {
		t.Fatalf("IAMAT reply = %q; want %q", line, want)
	}
	nw.settle()
	nw.requireEverywhere(t, "kiwi", line)
}

func TestNode_NewestWins(t *testing.T) {
	nw := newNetwork()
	newer := iamat(t, nw.nodes["Ball"], "kiwi", 200, "+1+1")
	iamat(t, nw.nodes["Alford"], "kiwi", 100, "+2+2")
	nw.settle()
	nw.requireEverywhere(t, "kiwi", newer)

	// An equal time is not newer: the first stays.
	iamat(t, nw.nodes["Holiday"], "kiwi", 200, "+3+3")
	nw.settle()
	nw.requireEverywhere(t, "kiwi", newer)
}

// TestNode_EqualTimesSettleOnOneRecord covers a client that sends one
// update, with one client time, to two servers before either has heard of
// the other's (a client that retried its IAMAT elsewhere): every server
// must end with the same record, whichever reaches it first.
func TestNode_EqualTimesSettleOnOneRecord(t *testing.T) {
	for _, pair := range [][2]string{{"Alford", "Holiday"}, {"Holiday", "Alford"}, {"Ball", "Hamilton"}, {"Welsh", "Alford"}} {
		t.Run(pair[0]+"+"+pair[1], func(t *testing.T) {
			nw := newNetwork()
			a := iamat(t, nw.nodes[pair[0]], "kiwi", 200, "+1+1")
			b := iamat(t, nw.nodes[pair[1]], "kiwi", 200, "+2+2")
			nw.settle()
			nw.requireEverywhere(t, "kiwi", max(a, b))
			// The same holds after each server restarts from its journal.
			for name, j := range nw.journal {
				restarted := NewNode(name, nil)
				for _, e := range j.entries {
					if err := restarted.Restore(e); err != nil {
						t.Fatal(err)
					}
				}
				restarted.FinishRestore()
				if r, _ := restarted.Lookup([]byte("kiwi")); r == nil || r.Line != max(a, b) {
					t.Errorf("%s restarted with %v; want %q", name, r, max(a, b))
				}
			}
		})
	}
}

func TestNode_EqualTimeIAMATAtOneServerIsDropped(t *testing.T) {
	n := NewNode("Alford", nil)
	first := iamat(t, n, "kiwi", 200, "+1+1")
	// A later receive time makes a larger skew, so this AT line sorts
	// after the first: the tie-break for records from elsewhere must not
	// apply to a client's own IAMATs.
	_, stored, _ := n.IAMAT(wire.Time{Sec: 250}, mustParse(t, "IAMAT kiwi +2+2 200.000000001"))
	if r, _ := n.Lookup([]byte("kiwi")); stored || r.Line != first {
		t.Errorf("an equal-time IAMAT replaced %q with %q (stored %v)", first, r.Line, stored)
	}
	// Nor to an AT line a client injects (no peer secret), as the seed's
	// servers flood.
	injected := "AT Zed +0.000000001 kiwi +9+9 200.000000001"
	if stored, _ := n.Offer(wire.Time{Sec: 250}, NewRecord([]byte(injected), mustParse(t, injected))); stored {
		t.Errorf("an injected equal-time AT line replaced %q", first)
	}
}

func TestNode_StaleUpdateIsNotForwarded(t *testing.T) {
	nw := newNetwork()
	iamat(t, nw.nodes["Alford"], "kiwi", 200, "+1+1")
	nw.settle()
	heads := map[string]uint64{}
	for name, n := range nw.nodes {
		heads[name] = n.Head()
	}
	if _, stored, _ := nw.nodes["Welsh"].IAMAT(wire.Time{Sec: 300}, mustParse(t, "IAMAT kiwi +5+5 150")); stored {
		t.Fatal("an older IAMAT was stored")
	}
	nw.settle()
	for name, n := range nw.nodes {
		if n.Head() != heads[name] {
			t.Errorf("%s changed (head %d -> %d) after a stale update", name, heads[name], n.Head())
		}
	}
}

func TestNode_EachUpdateCrossesEachLinkOnce(t *testing.T) {
	nw := newNetwork()
	iamat(t, nw.nodes["Alford"], "kiwi", 100, "+1+1")
	nw.settle()
	for name, j := range nw.journal {
		if len(j.entries) != 1 {
			t.Errorf("%s journaled %d changes for one update; want 1", name, len(j.entries))
		}
	}
}

func TestNode_CutLinksCatchUpWhenRestored(t *testing.T) {
	nw := newNetwork()
	// Cut Hamilton off completely, as if it were down.
	nw.cut("Hamilton", "Alford")
	nw.cut("Hamilton", "Holiday")
	var lines []string
	for i := range 50 {
		lines = append(lines, iamat(t, nw.nodes["Welsh"], fmt.Sprintf("c%d", i), 100+int64(i), "+1+1"))
	}
	moved := iamat(t, nw.nodes["Welsh"], "c0", 1000, "+2+2")
	nw.settle()
	if _, ok := nw.nodes["Hamilton"].Lookup([]byte("c1")); ok {
		t.Fatal("a cut-off node learned an update")
	}
	local := iamat(t, nw.nodes["Hamilton"], "h", 100, "+3+3")
	nw.restore("Hamilton", "Holiday")
	nw.settle()
	nw.restore("Hamilton", "Alford")
	nw.settle()
	nw.requireEverywhere(t, "c0", moved)
	nw.requireEverywhere(t, "c49", lines[49])
	nw.requireEverywhere(t, "h", local)
}

func TestNode_CatchUpSendsOnlyTheDifference(t *testing.T) {
	nw := newNetwork()
	for i := range 1000 {
		iamat(t, nw.nodes["Alford"], fmt.Sprintf("c%d", i), 100, "+1+1")
	}
	nw.settle()
	nw.cut("Alford", "Hamilton")
	iamat(t, nw.nodes["Alford"], "c7", 200, "+1+1")
	nw.nodes["Hamilton"].IAMAT(wire.Time{Sec: 1}, mustParse(t, "IAMAT c7 +1+1 150")) // older, loses
	for i := range 10 {
		iamat(t, nw.nodes["Alford"], "late", 300+int64(i), "+1+1") // one client moving: one record
	}
	link := [2]string{"Alford", "Hamilton"}
	recs, _ := nw.nodes["Alford"].Changes(nil, nw.links[link], 1<<30, "Hamilton")
	if len(recs) != 2 {
		t.Errorf("catch-up after 11 updates of 2 clients sends %d records; want 2", len(recs))
	}
}

// TestNode_RandomDeliveryConverges checks the flooding property: whatever the
// order and batching of deliveries, and whichever links flap, every node ends
// with the newest update of every client.
func TestNode_RandomDeliveryConverges(t *testing.T) {
	for seed := range uint64(30) {
		rng := rand.New(rand.NewPCG(seed, 1))
		nw := newNetwork()
		names := []string{"Alford", "Ball", "Hamilton", "Holiday", "Welsh"}
		links := make([][2]string, 0, len(nw.links))
		for l := range nw.links {
			links = append(links, l)
		}
		newest := map[string]int64{}
		for range 400 {
			switch rng.IntN(4) {
			case 0:
				client := fmt.Sprintf("c%d", rng.IntN(20))
				sec := rng.Int64N(1000)
				iamat(t, nw.nodes[names[rng.IntN(5)]], client, sec, "+1+1")
				newest[client] = max(newest[client], sec)
			case 1:
				l := links[rng.IntN(len(links))]
				if rng.IntN(2) == 0 {
					nw.cut(l[0], l[1])
				} else {
					nw.restore(l[0], l[1])
				}
			default:
				nw.step(links[rng.IntN(len(links))], 1+rng.IntN(3))
			}
		}
		nw.down = map[[2]string]bool{}
		nw.settle()
		for client, sec := range newest {
			for name, n := range nw.nodes {
				r, ok := n.Lookup([]byte(client))
				if !ok || r.Time().Sec != sec {
					t.Fatalf("seed %d: %s has %v for %s; want time %d", seed, name, r, client, sec)
				}
			}
		}
	}
}

func TestNode_JournalRestoresState(t *testing.T) {
	j := &memJournal{}
	a := NewNode("Alford", j)
	iamat(t, a, "kiwi", 100, "+1+1")
	newest := iamat(t, a, "kiwi", 200, "+2+2")
	other := iamat(t, a, "pear", 100, "+3+3")
	a.OfferFrom("Welsh", Cursor{Epoch: 9, Seq: 41}, nil)
	a.SaveCursors()

	b := NewNode("Alford", nil)
	for _, e := range j.entries {
		if err := b.Restore(e); err != nil {
			t.Fatal(err)
		}
	}
	b.FinishRestore()
	for client, want := range map[string]string{"kiwi": newest, "pear": other} {
		if r, ok := b.Lookup([]byte(client)); !ok || r.Line != want {
			t.Errorf("restored %s = %v; want %q", client, r, want)
		}
	}
	if c := b.Cursor("Welsh"); c != (Cursor{Epoch: 9, Seq: 41}) {
		t.Errorf("restored cursor = %+v; want {9 41}", c)
	}
	if b.Head() <= a.Head() {
		t.Errorf("sequence after restart %d does not pass %d", b.Head(), a.Head())
	}
	recs, _ := b.Changes(nil, 0, 10, "")
	if len(recs) != 2 {
		t.Errorf("restored change feed has %d records; want 2 live ones", len(recs))
	}
}

// restartFromSnapshot rebuilds n, as a restart does, from the entries of a
// snapshot of it.
func restartFromSnapshot(t *testing.T, n *Node) *Node {
	t.Helper()
	st := n.Freeze(nil)
	restarted := NewNode(n.Name(), nil)
	for e := range st.Entries {
		if err := restarted.Restore(e); err != nil {
			t.Fatal(err)
		}
	}
	restarted.FinishRestore()
	return restarted
}

func TestNode_FreezeEntriesRoundTrip(t *testing.T) {
	a := NewNode("Alford", nil)
	for i := range 100 {
		iamat(t, a, fmt.Sprintf("c%d", i%10), int64(i), "+1+1")
	}
	a.OfferFrom("Ball", Cursor{Epoch: 3, Seq: 7}, nil)
	b := restartFromSnapshot(t, a)
	if b.Len() != 10 || b.Cursor("Ball") != (Cursor{3, 7}) {
		t.Errorf("restored %d clients, cursor %+v; want 10, {3 7}", b.Len(), b.Cursor("Ball"))
	}
}

func TestNode_RestoreRejectsGarbage(t *testing.T) {
	for _, e := range []string{"", "X 1", "R x - AT a +0.000000000 c +1+1 1", "R 1 - IAMAT c +1+1 1", "C p 1", "S x"} {
		if err := NewNode("A", nil).Restore([]byte(e)); err == nil {
			t.Errorf("Restore(%q) = nil; want an error", e)
		}
	}
}

func TestNode_ChangeFeedStaysCompact(t *testing.T) {
	a := NewNode("Alford", nil)
	for i := range 100_000 {
		iamat(t, a, fmt.Sprintf("c%d", i%100), int64(i), "+1+1")
	}
	if len(a.changes) > 4096 {
		t.Errorf("change feed holds %d records for 100 clients", len(a.changes))
	}
}

func TestNode_WatchSignalsChanges(t *testing.T) {
	a := NewNode("Alford", nil)
	ch, stop := a.Watch()
	defer stop()
	iamat(t, a, "kiwi", 1, "+1+1")
	select {
	case <-ch:
	default:
		t.Fatal("no signal after a change")
	}
}

func mustParse(t testing.TB, line string) *wire.Msg {
	t.Helper()
	m, err := wire.Parse([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	return &m
}

func TestRecord_Size(t *testing.T) {
	if got := unsafe.Sizeof(Record{}); got > 48 {
		t.Errorf("Record takes %d bytes; want at most 48 (one per client)", got)
	}
}

// received builds the record a neighbor sends for client.
func received(t testing.TB, server, client string, sec int64) *Record {
	line := fmt.Sprintf("AT %s +0.500000000 %s +34.068930-118.445127 %d.5", server, client, sec)
	return NewRecord([]byte(line), mustParse(t, line))
}

func TestNode_RemembersWhereRecordsCameFrom(t *testing.T) {
	a := NewNode("Alford", nil)
	a.OfferFrom("Ball", Cursor{Epoch: 1, Seq: 1}, []*Record{received(t, "Ball", "kiwi", 5)})
	a.OfferFrom("Welsh", Cursor{Epoch: 2, Seq: 1}, []*Record{received(t, "Welsh", "plum", 5)})
	iamat(t, a, "own", 5, "+1+1")
	check := func(n *Node, when string) {
		t.Helper()
		for client, want := range map[string]string{"kiwi": "Ball", "plum": "Welsh", "own": ""} {
			if r, ok := n.Lookup([]byte(client)); !ok || n.From(r) != want {
				t.Errorf("%s: %s came from %q; want %q", when, client, n.From(r), want)
			}
		}
		var sent []string
		recs, _ := n.Changes(nil, 0, 10, "Ball")
		for _, r := range recs {
			sent = append(sent, r.Client())
		}
		if !slices.Equal(sent, []string{"plum", "own"}) {
			t.Errorf("%s: the feed to Ball holds %v; want [plum own], not Ball's own kiwi", when, sent)
		}
	}
	check(a, "running")
	b := restartFromSnapshot(t, a)
	check(b, "restored")
}

func TestNode_PastMaxSourcesRecordsCountAsItsOwn(t *testing.T) {
	n := NewNode("Alford", nil)
	for i := range maxSources - 1 { // sources[0] is the node itself
		n.OfferFrom(fmt.Sprint("peer", i), Cursor{}, nil)
	}
	n.OfferFrom("last", Cursor{}, []*Record{received(t, "last", "kiwi", 5)})
	n.OfferFrom("beyond", Cursor{}, []*Record{received(t, "beyond", "plum", 5)})
	for client, want := range map[string]string{"kiwi": "last", "plum": ""} {
		if r, ok := n.Lookup([]byte(client)); !ok || n.From(r) != want {
			t.Errorf("%s came from %q; want %q", client, n.From(r), want)
		}
	}
	if recs, _ := n.Changes(nil, 0, 10, "beyond"); len(recs) != 2 {
		t.Errorf("the feed to beyond holds %d records; want both, its own sent back and dropped there", len(recs))
	}
}

func TestNewRecord_StoresTheCanonicalLine(t *testing.T) {
	const canonical = "AT Alford +0.500000000 kiwi +34.068930-118.445127 3.5"
	for _, line := range []string{canonical, "AT\tAlford  +0.500000000 kiwi +34.068930-118.445127 3.5"} {
		m, err := wire.Parse([]byte(line))
		if err != nil {
			t.Fatal(err)
		}
		r := NewRecord([]byte(line), &m)
		if r.Line != canonical || r.Client() != "kiwi" || r.Time() != (wire.Time{Sec: 3, Nsec: 500000000}) {
			t.Errorf("NewRecord(%q) = line %q, client %q, time %v", line, r.Line, r.Client(), r.Time())
		}
	}
}

func TestNode_LimitsRefuseClientsUpdates(t *testing.T) {
	now := wire.Time{Sec: 1_000_000}
	limits := Limits{MaxClientIDBytes: 8, MaxClockAheadNanos: 3600e9, MaxClients: 2}
	tests := []struct {
		name  string
		iamat string
		want  error
	}{
		{"id at the limit", "IAMAT abcdefgh +1+1 1000000", nil},
		{"id over the limit", "IAMAT abcdefghi +1+1 1000000", ErrClientIDTooLong},
		{"an hour ahead", "IAMAT clock +1+1 1003600", nil},
		{"just over an hour ahead", "IAMAT clock +1+1 1003600.000000001", ErrClockAhead},
		{"year 3000", "IAMAT pinned +1+1 32503680000.0", ErrClockAhead},
		{"far in the past", "IAMAT old +1+1 1.0", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := NewNode("Alford", nil)
			n.SetLimits(limits)
			reply, stored, err := n.IAMAT(now, mustParse(t, tt.iamat))
			if !errors.Is(err, tt.want) {
				t.Fatalf("IAMAT(%q) error = %v; want %v", tt.iamat, err, tt.want)
			}
			if (err == nil) != (stored && reply != "") {
				t.Errorf("IAMAT(%q) = %q, stored %v, %v", tt.iamat, reply, stored, err)
			}
			injected := "AT Hamilton +0.000000000 " + strings.TrimPrefix(tt.iamat, "IAMAT ")
			if _, err := n.Offer(now, NewRecord([]byte(injected), mustParse(t, injected))); !errors.Is(err, tt.want) {
				t.Errorf("Offer(%q) error = %v; want %v", injected, err, tt.want)
			}
		})
	}
}

// At MaxClients a new client is refused, known clients still update, and
// records from neighbors are stored whatever the count.
func TestNode_MaxClients(t *testing.T) {
	n := NewNode("Alford", nil)
	n.SetLimits(Limits{MaxClients: 2})
	now := wire.Time{Sec: 100}
	for _, c := range []string{"a", "b"} {
		if _, _, err := n.IAMAT(now, mustParse(t, "IAMAT "+c+" +1+1 50")); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := n.IAMAT(now, mustParse(t, "IAMAT c +1+1 50")); !errors.Is(err, ErrTableFull) {
		t.Errorf("a third client: %v; want ErrTableFull", err)
	}
	if _, stored, err := n.IAMAT(now, mustParse(t, "IAMAT a +2+2 60")); err != nil || !stored {
		t.Errorf("a known client's update: stored %v, %v; want stored", stored, err)
	}
	line := "AT Hamilton +0.000000000 c +1+1 50"
	if got := n.OfferFrom("Hamilton", Cursor{Epoch: 1, Seq: 1}, []*Record{NewRecord([]byte(line), mustParse(t, line))}); got != 1 || n.Len() != 3 {
		t.Errorf("a neighbor's record for a new client: stored %d, %d clients; want it stored", got, n.Len())
	}
}

func TestRecord_ReceivedAt(t *testing.T) {
	tests := []struct {
		line string
		want wire.Time
		ok   bool
	}{
		{"AT Alford +0.263873386 kiwi +34.068930-118.445127 1479413884.392014450", wire.Time{Sec: 1479413884, Nsec: 655887836}, true},
		{"AT Alford -1.500000000 kiwi +1+1 10.0", wire.Time{Sec: 8, Nsec: 500000000}, true},
	}
	for _, tt := range tests {
		got, ok := NewRecord([]byte(tt.line), mustParse(t, tt.line)).ReceivedAt()
		if got != tt.want || ok != tt.ok {
			t.Errorf("ReceivedAt of %q = %+v, %v; want %+v, %v", tt.line, got, ok, tt.want, tt.ok)
		}
	}
}
