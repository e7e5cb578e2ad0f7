package faulttest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herd-dev/herd/internal/config"
	"github.com/herd-dev/herd/internal/herdtest"
	"github.com/herd-dev/herd/internal/member"
)

// A server whose disk damaged a snapshot or a journal segment has lost the
// records after the bad frame, while the cursors into its neighbors' feeds
// journaled later survived. Every client must come back on it from its
// neighbors, and stay after another restart; the damaged file is set aside
// whole, not truncated.
func TestDamagedStore_RefilledFromNeighbors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		file   string // glob of the file to damage, in the victim's data directory
		damage func([]byte) []byte
	}{
		{"snapshot cut in half", "snap-*.log", func(b []byte) []byte { return b[:len(b)/2] }},
		{"snapshot cut in half between two records", "snap-*.log", cutBetweenRecords},
		{"snapshot byte flipped in the middle", "snap-*.log", func(b []byte) []byte { b[len(b)/2] ^= 0x20; return b }},
		{"segment byte flipped in the middle", "seg-*.log", func(b []byte) []byte { b[len(b)/2] ^= 0x20; return b }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := herdtest.Start(t, herdtest.Options{})
			const victim = "Alford"
			names := serverNames(h)
			want := map[string]string{}
			for _, name := range names {
				addReplies(want, loadIAMATs(t, h.Addr(name), "first-"+name, "+1+1", 400))
			}
			waitHeld(t, h, victim, want)
			if err := h.Member(victim).Store.Compact(); err != nil {
				t.Fatal(err)
			}
			for _, name := range names {
				addReplies(want, loadIAMATs(t, h.Addr(name), "first-"+name, "+2+2", 50)) // moves
				addReplies(want, loadIAMATs(t, h.Addr(name), "second-"+name, "+3+3", 100))
			}
			waitHeld(t, h, victim, want)
			// What the background loop does every 2 s: the cursors, now
			// past every record, are journaled after the snapshot.
			h.Member(victim).Node.SaveCursors()
			if err := h.Member(victim).Store.Commit(); err != nil {
				t.Fatal(err)
			}
			h.Crash(victim)

			dir := filepath.Join(h.Cfg.DataDir, victim)
			path := onlyMatch(t, dir, tc.file)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			damaged := tc.damage(data)
			if err := os.WriteFile(path, damaged, 0o644); err != nil {
				t.Fatal(err)
			}

			h.Restart(victim)
			waitHeld(t, h, victim, want)
			aside, err := os.ReadFile(path + ".damaged")
			if err != nil || !bytes.Equal(aside, damaged) {
				t.Errorf("the damaged %s was not set aside whole (%v)", filepath.Base(path), err)
			}

			h.Stop(victim)
			h.Restart(victim)
			if missing := missingOn(h, victim, want); len(missing) > 0 {
				t.Errorf("after a second restart %s misses %d of %d clients, e.g. %s", victim, len(missing), len(want), missing[0])
			}
		})
	}
}

// cutBetweenRecords cuts a store file (frames of [u32 length][u32
// checksum][payload]) at the start of its middle frame, so every frame
// left is whole and valid.
func cutBetweenRecords(b []byte) []byte {
	var starts []int
	for off := 0; off+8 <= len(b); off += 8 + int(binary.LittleEndian.Uint32(b[off:])) {
		starts = append(starts, off)
	}
	return b[:starts[len(starts)/2]]
}

// loadIAMATs sends n IAMATs at loc for clients prefix-0 to prefix-(n-1) on
// one connection, pipelined, and returns each client's AT reply.
func loadIAMATs(t *testing.T, addr, prefix, loc string, n int) map[string]string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	var req bytes.Buffer
	for i := range n {
		fmt.Fprintf(&req, "IAMAT %s-%d %s %s\n", prefix, i, loc, nowTime())
	}
	go conn.Write(req.Bytes()) // replies are read meanwhile
	replies := map[string]string{}
	r := bufio.NewReader(conn)
	for i := range n {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reply %d of %d from %s: %v", i+1, n, addr, err)
		}
		m := atLine.FindStringSubmatch(strings.TrimSuffix(line, "\n"))
		if m == nil {
			t.Fatalf("reply %q is not an AT line", line)
		}
		replies[m[3]] = m[0]
	}
	return replies
}

func addReplies(dst, src map[string]string) {
	for client, line := range src {
		dst[client] = line
	}
}

// missingOn returns the clients whose wanted AT line server name does not
// hold.
func missingOn(h *herdtest.Herd, name string, want map[string]string) []string {
	node := h.Member(name).Node
	var missing []string
	for client, line := range want {
		if r, ok := node.Lookup([]byte(client)); !ok || r.Line != line {
			missing = append(missing, client)
		}
	}
	return missing
}

// waitHeld waits until server name holds every wanted AT line.
func waitHeld(t *testing.T, h *herdtest.Herd, name string, want map[string]string) {
	t.Helper()
	herdtest.Eventually(t, 15*time.Second, func() error {
		if missing := missingOn(h, name, want); len(missing) > 0 {
			return fmt.Errorf("%s misses %d of %d clients, e.g. %s", name, len(missing), len(want), missing[0])
		}
		return nil
	})
}

// onlyMatch returns the path of dir's only file matching pattern.
func onlyMatch(t *testing.T, dir, pattern string) string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil || len(matches) != 1 {
		t.Fatalf("files %s in %s: %v (%v); want one", pattern, dir, matches, err)
	}
	return matches[0]
}

// A server whose data directory is deleted under it cannot make anything
// durable again: it must say so on /readyz and in herd_store_failed, so that
// clients are sent elsewhere.
func TestDeletedDataDir_NotReady(t *testing.T) {
	dir := t.TempDir()
	cfg := &config.Config{LogDir: filepath.Join(dir, "logs"), DataDir: filepath.Join(dir, "data"),
		Servers: []config.Server{{Name: "S", Addr: "127.0.0.1:1"}}}
	cfg.ApplyDefaults()
	adminLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m, err := member.Open(context.Background(), cfg, "S", member.Overrides{Places: noPlaces{}, LogOutput: io.Discard, AdminListener: adminLn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- m.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-served })

	get := func(path string) (int, string, error) {
		resp, err := http.Get("http://" + adminLn.Addr().String() + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), err
	}
	herdtest.Eventually(t, 10*time.Second, func() error {
		if code, body, err := get("/readyz"); code != http.StatusOK {
			return fmt.Errorf("/readyz = %d %q (%v) before the directory is deleted; want 200", code, body, err)
		}
		return nil
	})
	askIAMATs(herdtest.DialAddr(t, ln.Addr().String()), "before", "+1+1", 3)

	if err := os.RemoveAll(filepath.Join(cfg.DataDir, "S")); err != nil {
		t.Fatal(err)
	}
	herdtest.Eventually(t, 10*time.Second, func() error {
		code, body, err := get("/readyz")
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "deleted") {
			return fmt.Errorf("/readyz = %d %q (%v) after the data directory was deleted; want 503 saying why", code, body, err)
		}
		return nil
	})
	if _, body, err := get("/metrics"); err != nil || !strings.Contains(body, "\nherd_store_failed 1\n") {
		t.Errorf("/metrics has no herd_store_failed 1 after the data directory was deleted (%v)", err)
	}
}
