package herd

import (
	"strings"
	"testing"

	"github.com/herd-dev/herd/internal/wire"
)

// ForgetCursors must drop every cursor, so neighbors send their whole feeds,
// and journal that: a node rebuilt from the journal has no cursor either,
// and the next cursor saved is journaled again.
func TestNode_ForgetCursors(t *testing.T) {
	j := &memJournal{}
	a := NewNode("Alford", j)
	a.OfferFrom("Welsh", Cursor{Epoch: 9, Seq: 41}, nil)
	a.OfferFrom("Hamilton", Cursor{Epoch: 5, Seq: 12}, nil)
	a.SaveCursors()
	a.ForgetCursors()
	for _, peer := range []string{"Welsh", "Hamilton"} {
		if c := a.Cursor(peer); c != (Cursor{}) {
			t.Errorf("after ForgetCursors, cursor for %s = %+v; want none", peer, c)
		}
	}

	restored := func() *Node {
		b := NewNode("Alford", nil)
		for _, e := range j.entries {
			if err := b.Restore(e); err != nil {
				t.Fatal(err)
			}
		}
		return b
	}
	b := restored()
	for _, peer := range []string{"Welsh", "Hamilton"} {
		if c := b.Cursor(peer); c != (Cursor{}) {
			t.Errorf("rebuilt from the journal, cursor for %s = %+v; want none", peer, c)
		}
	}
	if st := b.Freeze(nil); len(st.Cursors) != 0 {
		t.Errorf("a snapshot after a rebuild holds cursors %v; want none", st.Cursors)
	}

	a.OfferFrom("Welsh", Cursor{Epoch: 9, Seq: 3}, nil)
	a.SaveCursors()
	if c := restored().Cursor("Welsh"); c != (Cursor{Epoch: 9, Seq: 3}) {
		t.Errorf("cursor saved after ForgetCursors restores as %+v; want {9 3}", c)
	}
}

// Records with a location or time longer than a client may now send, which
// earlier versions took, still restore from the journal and still come in
// from neighbors: only a client's own IAMAT is held to the caps.
func TestRestore_TakesLongFieldsEarlierVersionsStored(t *testing.T) {
	long := "AT Welsh +0.500000000 old +34." + strings.Repeat("0", 80) + "-118 " + strings.Repeat("0", 40) + "1700000000.5"
	m, err := wire.Parse([]byte(long))
	if err != nil {
		t.Fatalf("Parse of an AT line with long fields: %v", err)
	}
	j := &memJournal{}
	a := NewNode("Alford", j)
	if stored := a.OfferFrom("Welsh", Cursor{Epoch: 1, Seq: 1}, []*Record{NewRecord([]byte(long), &m)}); stored != 1 {
		t.Fatalf("a neighbor's record with long fields: %d stored; want 1", stored)
	}
	b := NewNode("Alford", nil)
	for _, e := range j.entries {
		if err := b.Restore(e); err != nil {
			t.Fatalf("Restore: %v", err)
		}
	}
	if r, ok := b.Lookup([]byte("old")); !ok || r.Line != long {
		t.Errorf("restored record: %v %q; want the long line", ok, r.Line)
	}
}
