package faulttest

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/herd-dev/herd/internal/config"
	"github.com/herd-dev/herd/internal/herd"
	"github.com/herd-dev/herd/internal/herdtest"
	"github.com/herd-dev/herd/internal/member"
	"github.com/herd-dev/herd/internal/wire"
)

// A server whose data directory is lost comes back with a new epoch and an
// empty table. Its neighbors must notice and send it everything, its own
// earlier updates included, and must take its new updates although its
// change sequence starts again.
func TestWipedDataDir_RefilledFromNeighbors(t *testing.T) {
	h := herdtest.Start(t, herdtest.Options{})
	names := serverNames(h)
	addrs := herdAddrs(h)
	const victim = "Alford"
	want := map[string]string{}
	for i, name := range names {
		c := h.Dial(name)
		for j := range 4 {
			client := fmt.Sprintf("wipe-%d-%d", i, j)
			want[client] = c.Ask(fmt.Sprintf("IAMAT %s +1+1 %s", client, nowTime()))
		}
	}
	waitEverywhere(t, addrs, want, 10*time.Second)

	epoch := h.Member(victim).Store.Epoch()
	h.Stop(victim)
	if err := os.RemoveAll(filepath.Join(h.Cfg.DataDir, victim)); err != nil {
		t.Fatal(err)
	}
	h.Restart(victim)
	if got := h.Member(victim).Store.Epoch(); got == epoch {
		t.Fatalf("%s kept epoch %d after its data directory was wiped; want a new one", victim, got)
	}
	waitEverywhere(t, map[string]string{victim: addrs[victim]}, want, 10*time.Second)

	fresh := askIAMATs(h.Dial(victim), "after-wipe", "+2+2", 4)
	waitEverywhere(t, addrs, fresh, 10*time.Second)
	waitFloodsEnd(t, h, names, 500*time.Millisecond, 10*time.Second)
}

// A server whose journal segments are lost while META keeps its epoch
// (deleted by hand, or a data directory restored from an old backup)
// numbers its new records from a block its neighbors have already read
// past. Its links must notice and send everything, or the neighbors,
// resuming from their cursors, skip its acknowledged updates for good.
func TestLostJournalSegments_NewUpdatesStillFlood(t *testing.T) {
	h := herdtest.Start(t, herdtest.Options{})
	addrs := herdAddrs(h)
	const victim = "Alford"
	before := askIAMATs(h.Dial(victim), "before", "+1+1", 8)
	waitEverywhere(t, addrs, before, 10*time.Second)

	epoch := h.Member(victim).Store.Epoch()
	h.Stop(victim)
	segments, err := filepath.Glob(filepath.Join(h.Cfg.DataDir, victim, "seg-*"))
	if err != nil || len(segments) == 0 {
		t.Fatalf("no journal segments to lose (%v)", err)
	}
	for _, seg := range segments {
		if err := os.Remove(seg); err != nil {
			t.Fatal(err)
		}
	}
	h.Restart(victim)
	// Fewer updates than before, so all of them are numbered below the
	// neighbors' cursors.
	after := askIAMATs(h.Dial(victim), "after", "+2+2", 2)
	waitEverywhere(t, addrs, after, 10*time.Second)
	waitEverywhere(t, map[string]string{victim: addrs[victim]}, before, 10*time.Second)

	// The victim renewed its epoch, so neighbors read its feed from the
	// start whatever happens to a link, and the new epoch outlives a
	// restart.
	renewed := h.Member(victim).Store.Epoch()
	if renewed == epoch {
		t.Fatalf("%s kept epoch %d after its neighbors showed it lost records; want a new one", victim, epoch)
	}
	h.Stop(victim)
	h.Restart(victim)
	if got := h.Member(victim).Store.Epoch(); got != renewed {
		t.Errorf("%s restarted with epoch %d; want the renewed %d", victim, got, renewed)
	}
	later := askIAMATs(h.Dial(victim), "later", "+3+3", 2)
	waitEverywhere(t, addrs, later, 10*time.Second)
}

// askIAMATs sends IAMATs at loc, now, for clients prefix-0 to prefix-(n-1)
// and returns each client's AT reply.
func askIAMATs(c *herdtest.Client, prefix, loc string, n int) map[string]string {
	replies := map[string]string{}
	for j := range n {
		client := fmt.Sprintf("%s-%d", prefix, j)
		replies[client] = c.Ask(fmt.Sprintf("IAMAT %s %s %s", client, loc, nowTime()))
	}
	return replies
}

// copyDir copies the regular files of a flat directory tree.
func copyDir(tb testing.TB, from, to string) {
	tb.Helper()
	err := filepath.WalkDir(from, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), data, 0o644)
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// A run's first records may reach a neighbor before they reach the disk
// (updates flooded in are written by the store's background flush, a few
// milliseconds later), and a SIGKILL in that window loses them while the
// neighbor's cursor has moved past them. The next run must number its
// records above that cursor, or the neighbor, resuming from it, skips them:
// acknowledged updates would never reach it. The crash is modelled by
// restarting from a copy of the data directory taken before the run wrote
// anything.
func TestCrashBeforeFirstFlush_NewRecordsStayAboveNeighborsCursor(t *testing.T) {
	dir := t.TempDir()
	cfg := &config.Config{LogDir: filepath.Join(dir, "logs"), Servers: []config.Server{{Name: "S", Addr: "127.0.0.1:1"}}}
	cfg.ApplyDefaults()
	open := func(dataDir string) *member.Member {
		t.Helper()
		c := *cfg
		c.DataDir = dataDir
		m, err := member.Open(context.Background(), &c, "S", member.Overrides{Places: noPlaces{}, LogOutput: io.Discard})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	record := func(line string) *herd.Record {
		t.Helper()
		m, err := wire.Parse([]byte(line))
		if err != nil {
			t.Fatal(err)
		}
		return herd.NewRecord([]byte(line), &m)
	}

	// An earlier run left a record on disk.
	first := open(filepath.Join(dir, "data"))
	first.Node.Offer(wire.UnixTime(time.Now().UnixNano()), record("AT R2 +0.500000000 old +1+1 1.5"))
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	// This run starts; the disk as a SIGKILL would leave it a moment later.
	run := open(filepath.Join(dir, "data"))
	copyDir(t, filepath.Join(dir, "data"), filepath.Join(dir, "crashed"))
	// Catch-up from neighbor R2 arrives, and the link to neighbor R sends
	// it on at once: R's cursor moves to the head.
	run.Node.OfferFrom("R2", herd.Cursor{Epoch: 7, Seq: 3}, []*herd.Record{
		record("AT R2 +0.500000000 a +1+1 2.5"), record("AT R2 +0.500000000 b +1+1 2.5"), record("AT R2 +0.500000000 c +1+1 2.5"),
	})
	_, cursorR := run.Node.Changes(nil, 0, 100, "")

	// Restart on the crashed disk and acknowledge an IAMAT (journal
	// committed).
	next := open(filepath.Join(dir, "crashed"))
	iamat, err := wire.Parse([]byte("IAMAT acked +1+1 3.5"))
	if err != nil {
		t.Fatal(err)
	}
	if _, stored, err := next.Node.IAMAT(wire.UnixTime(time.Now().UnixNano()), &iamat); !stored || err != nil {
		t.Fatal("IAMAT acked was not stored")
	}
	if err := next.Store.Commit(); err != nil {
		t.Fatal(err)
	}
	// R reconnects and resumes from its cursor.
	recs, _ := next.Node.Changes(nil, cursorR, 100, "")
	for _, r := range recs {
		if r.Client() == "acked" {
			return
		}
	}
	t.Errorf("BUG: after a crash before the run's first flush, the acknowledged update got seq %d, at or below neighbor R's cursor %d from the crashed run: R resuming from its cursor never gets it (the run's starting sequence was not made durable)",
		next.Node.Head(), cursorR)
}
