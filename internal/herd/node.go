// Package herd is the core of a herd server: its client table, the
// newest-wins rule that makes flooding stop, and the change feed that peer
// links read from. It does no I/O, reads no clock and starts no goroutines;
// the server package carries its results to sockets and disk.
//
// # Flooding as a change feed
//
// Every record a node stores gets the next number of the node's own change
// sequence. A link to a neighbor is nothing but a cursor into that sequence:
// it sends every record after the cursor, in order, and advances. Live
// flooding and catch-up after a partition are the same loop; a neighbor that
// was away for an hour resumes from its cursor and receives each changed
// client once, with its newest location, however often it moved meanwhile.
// Nothing is queued per link, so a slow or dead neighbor costs no memory and
// cannot make the node drop an update.
//
// A receiver keeps, per neighbor, the neighbor's epoch (which identifies its
// data directory) and the last sequence number it applied. It hands that
// cursor back when the link re-opens, so only the difference crosses the wire.
//
// # Newest wins
//
// A record replaces the stored one for its client only if it is newer.
// Older and equal records are neither stored nor forwarded, so every update
// crosses each link at most once per direction and floods end.
//
// A client's IAMAT, or an AT line a client injects, is newer only if its
// client time is strictly later. A record from a neighbor's feed (or the
// journal) with the same client time as the stored one is newer if its AT
// line sorts after the stored line. Without that tie-break two servers
// that took different updates with one client time, as when a client
// retries its IAMAT at a second server, would each keep their own for
// good; with it, every server settles on the same one, whatever the order
// of arrival.
package herd

import (
	"errors"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/herd-dev/herd/internal/wire"
)

// Record is what the herd knows of one client: the AT line of its latest
// IAMAT, as the server that took it produced it. Its exported fields do not
// change once it is stored. It is laid out to take 48 bytes: a server keeps
// one per client.
type Record struct {
	// Line is the AT line without line ending.
	Line string
	// Seq is this node's change sequence number for the record.
	Seq uint64

	sec                    int64  // client time, seconds
	nsec                   int32  // and nanoseconds
	clientStart, clientEnd uint32 // the client id is Line[clientStart:clientEnd]
	// from is the neighbor the record came from, as an index into its
	// node's sources (see Node.From).
	from source
	// replaced is set, under the node's lock, once a newer record for the
	// client is stored; the change feed then skips this one.
	replaced bool
}

// source numbers the neighbors records come from within one node, so that
// a record names its neighbor in two bytes rather than a string's sixteen.
// Source 0 is the node itself.
type source uint16

// maxSources bounds a node's sources. A node has as many as it has had
// neighbors, so the bound is never reached in practice; past it, records
// are kept as the node's own, which costs only duplicates: they are then
// also sent back to the neighbor they came from, which drops them.
const maxSources = 1<<16 - 1

func newRecord(line string, clientStart int, client []byte, t wire.Time) *Record {
	return &Record{Line: line, sec: t.Sec, nsec: t.Nsec,
		clientStart: uint32(clientStart), clientEnd: uint32(clientStart + len(client))}
}

// NewRecord builds a record from at, parsed from line. A line already in
// canonical form (as the peers of this herd send it) is kept as it is;
// any other is rewritten in canonical form.
func NewRecord(line []byte, at *wire.Msg) *Record {
	var text string
	if at.IsCanonical(line) {
		text = string(line)
	} else {
		text = string(at.AppendFormat(make([]byte, 0, 96)))
	}
	start := len("AT ") + len(at.Server) + 1 + len(at.Skew) + 1
	return newRecord(text, start, at.Client, at.T)
}

// Client returns the record's client id.
func (r *Record) Client() string { return r.Line[r.clientStart:r.clientEnd] }

// Time returns the client's own time for this location.
func (r *Record) Time() wire.Time { return wire.Time{Sec: r.sec, Nsec: r.nsec} }

// ReceivedAt returns when the server that took the client's IAMAT received
// it (the client's time plus the AT line's skew); ok is false if the skew
// cannot say.
func (r *Record) ReceivedAt() (t wire.Time, ok bool) {
	afterServer := strings.IndexByte(r.Line[len("AT "):], ' ')
	if afterServer < 0 {
		return wire.Time{}, false
	}
	skew := r.Line[len("AT ")+afterServer+1:]
	if end := strings.IndexByte(skew, ' '); end >= 0 {
		skew = skew[:end]
	}
	return wire.ReceiveTime(r.Time(), []byte(skew))
}

// Location parses the record's location field.
func (r *Record) Location() wire.Location {
	m, err := wire.Parse([]byte(r.Line))
	if err != nil {
		panic("herd: stored record is not an AT line: " + r.Line) // stored records are validated
	}
	return m.Loc
}

// Limits bound what a node takes from clients; a zero field sets no bound.
// Records from neighbors are never refused for them: every server must end
// with the same table, whatever its own limits.
type Limits struct {
	// MaxClientIDBytes is the longest client id a client may send.
	MaxClientIDBytes int
	// MaxClockAheadNanos is how far ahead of the server's clock a client's
	// time may be; later times could pin a location for good.
	MaxClockAheadNanos int64
	// MaxClients caps the clients the node takes a new client's update
	// for; known clients still update.
	MaxClients int
}

// Errors for a client's update that the node's Limits refuse.
var (
	ErrClientIDTooLong = errors.New("herd: client id too long")
	ErrClockAhead      = errors.New("herd: client time too far ahead of the server's clock")
	ErrTableFull       = errors.New("herd: client table full")
)

// Cursor is how far a node has read a neighbor's change sequence.
type Cursor struct {
	Epoch uint64 // the neighbor's data-directory identity
	Seq   uint64 // last sequence number applied
}

// Journal receives an entry for every change, in order, while the node's lock
// is held. It must only buffer (see store.Log.Append), and must copy the
// entry: the node reuses its memory.
type Journal interface {
	Append(entry []byte)
}

// Node is one server's view of the herd. It is safe for concurrent use.
type Node struct {
	name    string
	journal Journal
	limits  Limits

	mu      sync.RWMutex
	clients map[string]*Record
	// sources names the neighbors records came from, by their source;
	// sources[0] is "", the node itself. It only grows.
	sources  []string
	sourceOf map[string]source
	// changes holds records in Seq order. Replaced records stay until
	// compaction.
	changes []*Record
	stale   int
	seq     uint64
	// runStart is where this process's numbering began (see
	// FinishRestore): every record it numbered is above it.
	runStart uint64
	cursors  map[string]Cursor
	saved    map[string]Cursor // cursors as last journaled
	// waiters are the channels of Watch, told of every change: a slice,
	// since every stored record walks it.
	waiters []chan struct{}
	entry   []byte // scratch for journal entries; Journal.Append copies
}

// NewNode returns an empty node called name. A nil journal keeps nothing.
func NewNode(name string, journal Journal) *Node {
	if journal == nil {
		journal = discard{}
	}
	return &Node{
		name:     name,
		journal:  journal,
		clients:  make(map[string]*Record),
		sources:  []string{""},
		sourceOf: map[string]source{"": 0},
		cursors:  make(map[string]Cursor),
		saved:    make(map[string]Cursor),
	}
}

type discard struct{}

func (discard) Append([]byte) {}

// Name returns the node's server name.
func (n *Node) Name() string { return n.name }

// SetLimits sets the limits on clients' updates. Call it before the node
// takes any.
func (n *Node) SetLimits(l Limits) { n.limits = l }

// Limits returns the limits on clients' updates.
func (n *Node) Limits() Limits { return n.limits }

// IAMAT takes a client's IAMAT received at the given time. It returns the AT
// reply, which is stored and flooded only if it is newer than what the node
// knows of the client. An IAMAT the node's Limits refuse gets an error and
// no reply.
func (n *Node) IAMAT(received wire.Time, m *wire.Msg) (reply string, stored bool, err error) {
	if err := n.limits.check(received, len(m.Client), m.T); err != nil {
		return "", false, err
	}
	var buf [128]byte
	reply = string(wire.AppendAT(buf[:0], n.name, received, m))
	start := len(reply) - len(m.Time) - 1 - len(m.Location) - 1 - len(m.Client)
	rec := newRecord(reply, start, m.Client, m.T)
	n.mu.Lock()
	defer n.mu.Unlock()
	stored, err = n.offerClientLocked(rec)
	if err != nil {
		return "", false, err
	}
	return reply, stored, nil
}

// Offer stores rec, an AT line a client injected at time now without peer
// auth, if it is newer than the node's record for the client, and reports
// whether it did; the node's Limits apply as to an IAMAT. rec.Seq is
// assigned here. Records from neighbors go through OfferFrom.
func (n *Node) Offer(now wire.Time, rec *Record) (stored bool, err error) {
	if err := n.limits.check(now, int(rec.clientEnd-rec.clientStart), rec.Time()); err != nil {
		return false, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.offerClientLocked(rec)
}

// check applies the limits that need no lock to a client's update: the
// length of its client id and how far its time t is ahead of now.
func (l *Limits) check(now wire.Time, idBytes int, t wire.Time) error {
	if l.MaxClientIDBytes > 0 && idBytes > l.MaxClientIDBytes {
		return ErrClientIDTooLong
	}
	if l.MaxClockAheadNanos > 0 && t.Compare(now.Add(l.MaxClockAheadNanos)) > 0 {
		return ErrClockAhead
	}
	return nil
}

// offerClientLocked stores a client's update, unless it is for a new
// client and the table is at MaxClients.
func (n *Node) offerClientLocked(rec *Record) (bool, error) {
	if max := n.limits.MaxClients; max > 0 && len(n.clients) >= max {
		if _, known := n.clients[rec.Client()]; !known {
			return false, ErrTableFull
		}
	}
	return n.offerLocked(rec, laterTime), nil
}

// OfferFrom applies a batch of records read from neighbor peer's change
// sequence and advances the node's cursor for peer to cur. It returns how
// many records were new; each of those is given its sequence number, and
// the others keep Seq 0.
func (n *Node) OfferFrom(peer string, cur Cursor, recs []*Record) (stored int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	from := sourceLocked(n, peer)
	for _, r := range recs {
		r.from = from
		if n.offerLocked(r, laterTimeOrLine) {
			stored++
		}
	}
	n.cursors[peer] = cur
	return stored
}

// newerRule says when a record is newer than the stored one (see the
// package documentation).
type newerRule bool

const (
	laterTime       newerRule = false // a client's IAMAT or AT line at this node
	laterTimeOrLine newerRule = true  // a neighbor's record, or the journal's
)

// newer reports whether rec is newer than old by rule.
func newer(rec, old *Record, rule newerRule) bool {
	if c := rec.Time().Compare(old.Time()); c != 0 || rule == laterTime {
		return c > 0
	}
	return rec.Line > old.Line
}

func (n *Node) offerLocked(rec *Record, rule newerRule) bool {
	client := rec.Client()
	old, ok := n.clients[client]
	if ok && !newer(rec, old, rule) {
		return false
	}
	n.seq++
	rec.Seq = n.seq
	n.clients[client] = rec
	n.changes = append(n.changes, rec)
	if ok {
		old.replaced = true
		n.stale++
		n.compactLocked()
	}
	n.entry = appendRecordEntry(n.entry[:0], rec, n.sources[rec.from])
	n.journal.Append(n.entry)
	for _, w := range n.waiters {
		select {
		case w <- struct{}{}:
		default:
		}
	}
	return true
}

// compactLocked drops superseded records from the change feed once they are
// the majority, keeping memory proportional to the number of clients. It
// filters the feed in place: the array, about twice the number of clients
// long by then, is reused as the feed grows back instead of reallocated.
func (n *Node) compactLocked() {
	if n.stale < 1024 || n.stale < len(n.changes)/2 {
		return
	}
	live := n.changes[:0]
	for _, r := range n.changes {
		if !r.replaced {
			live = append(live, r)
		}
	}
	clear(n.changes[len(live):]) // let the superseded records go
	n.changes, n.stale = live, 0
}

// sourceLocked returns the source that stands for neighbor name in n,
// numbering it if it is new. The caller holds the node's lock for writing.
func sourceLocked[Name string | []byte](n *Node, name Name) source {
	if src, ok := n.sourceOf[string(name)]; ok {
		return src
	}
	if len(n.sources) > maxSources {
		return 0
	}
	src := source(len(n.sources))
	n.sources = append(n.sources, string(name))
	n.sourceOf[string(name)] = src
	return src
}

// From returns the neighbor r came from, or "" if this node took the IAMAT
// (or the record was injected by a client without peer auth). r must be
// one of the node's records.
func (n *Node) From(r *Record) string {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.sources[r.from]
}

// Lookup returns the node's record for client.
func (n *Node) Lookup(client []byte) (*Record, bool) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	r, ok := n.clients[string(client)]
	return r, ok
}

// Len returns the number of clients the node knows.
func (n *Node) Len() int {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return len(n.clients)
}

// Head returns the node's latest change sequence number.
func (n *Node) Head() uint64 {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.seq
}

// RunStart returns the sequence number this process's numbering started
// from: every record it numbered is above it. A neighbor that has read
// past it before this process has sent it anything read records of an
// earlier process that this one has lost, and whose numbers it may reuse.
func (n *Node) RunStart() uint64 {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.runStart
}

// Cursor returns how far the node has read neighbor peer's change sequence.
func (n *Node) Cursor(peer string) Cursor {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.cursors[peer]
}

// Changes appends to dst the live records with sequence numbers after
// `after`, in order, at most max of them, leaving out records that came from
// skip (the neighbor being sent to, which has them already). It returns the
// sequence number to resume from: past every record it looked at, sent or
// skipped.
func (n *Node) Changes(dst []*Record, after uint64, max int, skip string) ([]*Record, uint64) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	skipFrom, skipping := n.sourceOf[skip]
	skipping = skipping && skip != ""
	i := sort.Search(len(n.changes), func(i int) bool { return n.changes[i].Seq > after })
	next := after
	for ; i < len(n.changes) && len(dst) < max; i++ {
		r := n.changes[i]
		next = r.Seq
		if r.replaced || (skipping && r.from == skipFrom) {
			continue
		}
		dst = append(dst, r)
	}
	if i == len(n.changes) {
		next = n.seq
	}
	return dst, next
}

// Watch returns a channel that receives a value (coalesced) after each
// change, and a function that stops the watch.
func (n *Node) Watch() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	n.mu.Lock()
	n.waiters = append(n.waiters, ch)
	n.mu.Unlock()
	return ch, func() {
		n.mu.Lock()
		n.waiters = slices.DeleteFunc(n.waiters, func(w chan struct{}) bool { return w == ch })
		n.mu.Unlock()
	}
}

// State is a consistent copy of a node's contents.
type State struct {
	Seq     uint64
	Records []*Record // live records in change order
	Cursors map[string]Cursor
	sources []string // the node's sources, which the records refer to
}

// Freeze copies the node's state under its lock, calling during (if not nil)
// while the lock is still held: a journal marks its snapshot point there, so
// that the state and the journal agree on what came before it. Records are
// immutable, so the copy is only pointers.
func (n *Node) Freeze(during func()) State {
	n.mu.Lock()
	defer n.mu.Unlock()
	st := State{Seq: n.seq, Records: make([]*Record, 0, len(n.clients)), Cursors: make(map[string]Cursor, len(n.cursors)), sources: n.sources}
	for _, r := range n.changes {
		if !r.replaced {
			st.Records = append(st.Records, r)
		}
	}
	for peer, c := range n.cursors {
		st.Cursors[peer] = c
	}
	if during != nil {
		during()
	}
	return st
}

// SaveCursors journals the cursors that moved since they were last saved, so
// a restart resumes each link close to where it stopped.
func (n *Node) SaveCursors() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for peer, c := range n.cursors {
		if n.saved[peer] != c {
			n.entry = appendCursorEntry(n.entry[:0], peer, c)
			n.journal.Append(n.entry)
			n.saved[peer] = c
		}
	}
}

// Recent appends to dst up to max of the most recently changed live
// records, newest first.
func (n *Node) Recent(dst []*Record, max int) []*Record {
	n.mu.RLock()
	defer n.mu.RUnlock()
	for i := len(n.changes) - 1; i >= 0 && len(dst) < max; i-- {
		if r := n.changes[i]; !r.replaced {
			dst = append(dst, r)
		}
	}
	return dst
}
