package herd

import "testing"

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
