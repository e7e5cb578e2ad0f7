package herd

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/herd-dev/herd/internal/wire"
)

// Journal entries are text, one per change:
//
//	R <seq> <from or -> <AT line>    a stored record
//	C <peer> <epoch> <seq>           a cursor into a neighbor's sequence (0 0: none)
//	S <seq>                          the sequence number reached (in snapshots)

// ErrBadEntry reports a journal entry that does not parse.
var ErrBadEntry = errors.New("herd: bad journal entry")

// appendRecordEntry appends the entry for r, which came from neighbor from.
func appendRecordEntry(dst []byte, r *Record, from string) []byte {
	dst = append(dst, "R "...)
	dst = strconv.AppendUint(dst, r.Seq, 10)
	dst = append(dst, ' ')
	if from == "" {
		dst = append(dst, '-')
	} else {
		dst = append(dst, from...)
	}
	dst = append(dst, ' ')
	return append(dst, r.Line...)
}

func appendCursorEntry(dst []byte, peer string, c Cursor) []byte {
	dst = append(dst, "C "...)
	dst = append(dst, peer...)
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, c.Epoch, 10)
	dst = append(dst, ' ')
	return strconv.AppendUint(dst, c.Seq, 10)
}

func appendSeqEntry(dst []byte, seq uint64) []byte {
	return strconv.AppendUint(append(dst, "S "...), seq, 10)
}

// Entries calls yield with the journal entries that rebuild st, in order.
func (st *State) Entries(yield func(entry []byte) bool) {
	buf := appendSeqEntry(nil, st.Seq)
	if !yield(buf) {
		return
	}
	for _, r := range st.Records {
		if !yield(appendRecordEntry(buf[:0], r, st.sources[r.from])) {
			return
		}
	}
	for peer, c := range st.Cursors {
		if !yield(appendCursorEntry(buf[:0], peer, c)) {
			return
		}
	}
}

// Restore applies one journal entry while a node is being rebuilt at start,
// before it serves. It does not journal.
func (n *Node) Restore(entry []byte) error {
	kind, rest, _ := bytes.Cut(entry, []byte{' '})
	n.mu.Lock()
	defer n.mu.Unlock()
	switch string(kind) {
	case "R":
		seqField, rest, _ := bytes.Cut(rest, []byte{' '})
		from, line, _ := bytes.Cut(rest, []byte{' '})
		seq, err := strconv.ParseUint(string(seqField), 10, 64)
		m, perr := wire.Parse(line)
		if err != nil || perr != nil || m.Kind != wire.KindAT {
			return fmt.Errorf("%w: %q", ErrBadEntry, entry)
		}
		r := NewRecord(line, &m)
		r.Seq = seq
		if string(from) != "-" {
			r.from = sourceLocked(n, from)
		}
		n.seq = max(n.seq, seq)
		client := r.Client()
		if old, ok := n.clients[client]; ok {
			if !newer(r, old, laterTimeOrLine) {
				return nil
			}
			old.replaced = true
			n.stale++
		}
		n.clients[client] = r
		n.changes = append(n.changes, r)
	case "C":
		f := bytes.Fields(rest)
		if len(f) != 3 {
			return fmt.Errorf("%w: %q", ErrBadEntry, entry)
		}
		epoch, err1 := strconv.ParseUint(string(f[1]), 10, 64)
		seq, err2 := strconv.ParseUint(string(f[2]), 10, 64)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("%w: %q", ErrBadEntry, entry)
		}
		c := Cursor{Epoch: epoch, Seq: seq}
		if c == (Cursor{}) { // journaled by ForgetCursors
			delete(n.cursors, string(f[0]))
			delete(n.saved, string(f[0]))
			break
		}
		n.cursors[string(f[0])] = c
		n.saved[string(f[0])] = c
	case "S":
		seq, err := strconv.ParseUint(string(rest), 10, 64)
		if err != nil {
			return fmt.Errorf("%w: %q", ErrBadEntry, entry)
		}
		n.seq = max(n.seq, seq)
	default:
		return fmt.Errorf("%w: %q", ErrBadEntry, entry)
	}
	return nil
}

// seqRestartGap is how far the change sequence jumps at every start. A crash
// can lose records that neighbors already read (sent before they reached
// disk, or lost with the page cache on power loss); numbering new records
// above anything the old process could have issued keeps a neighbor's cursor
// from skipping them.
const seqRestartGap = 1 << 32

// FinishRestore ends a rebuild: it drops superseded records and moves the
// change sequence past anything issued before the restart. It journals the
// new starting point; the caller must commit it before serving, or a second
// crash could start a run in the same block again.
func (n *Node) FinishRestore() {
	n.mu.Lock()
	defer n.mu.Unlock()
	live := n.changes[:0]
	for _, r := range n.changes {
		if !r.replaced {
			live = append(live, r)
		}
	}
	sort.SliceStable(live, func(i, j int) bool { return live[i].Seq < live[j].Seq })
	n.changes, n.stale = live, 0
	n.seq = (n.seq/seqRestartGap + 1) * seqRestartGap
	n.runStart = n.seq
	n.entry = appendSeqEntry(n.entry[:0], n.seq)
	n.journal.Append(n.entry)
}

// ForgetCursors drops the node's cursors into its neighbors' change feeds,
// and journals that it did, so that each neighbor's next link sends its
// whole feed, as to a new server. A node rebuilt from a journal that lost
// records needs it: cursors journaled after the lost records survive and
// would have every neighbor resume past them.
func (n *Node) ForgetCursors() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for peer := range n.cursors {
		n.entry = appendCursorEntry(n.entry[:0], peer, Cursor{})
		n.journal.Append(n.entry)
	}
	clear(n.cursors)
	clear(n.saved)
}
