package faulttest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/herd-dev/herd/internal/config"
	"github.com/herd-dev/herd/internal/herdtest"
	"github.com/herd-dev/herd/internal/peer"
	"github.com/herd-dev/herd/internal/server"
)

// pair is the smallest herd with a peer link: Front takes the hostile
// clients, Back shows what Front floods.
var pair = map[string][]string{"Front": {"Back"}, "Back": {"Front"}}

// startPair starts the pair and waits until its link is up, so that the
// inbound peer connection already counts in Front's ConnsOpen.
func startPair(t *testing.T, opt herdtest.Options) *herdtest.Herd {
	t.Helper()
	opt.Topology = pair
	h := herdtest.Start(t, opt)
	waitLinks(t, h, []string{"Front", "Back"}, true, 10*time.Second)
	return h
}

// askTimed sends an IAMAT for client and returns how long the AT reply took.
func askTimed(t *testing.T, c *herdtest.Client, client string) time.Duration {
	t.Helper()
	start := time.Now()
	reply := c.Ask(fmt.Sprintf("IAMAT %s +34.068930-118.445127 %s", client, nowTime()))
	took := time.Since(start)
	if m := atLine.FindStringSubmatch(reply); m == nil || m[3] != client {
		t.Fatalf("IAMAT %s = %q; want an AT line", client, reply)
	}
	return took
}

// maxOtherLatency is how long an IAMAT from a well-behaved client may take
// while a hostile client is busy with the same server. It is loose enough
// for a race build on two shared cores, and far below what a client
// blocked by the hostile one would wait: the idle or write timeout.
const maxOtherLatency = time.Second

func TestHugeLine_TruncatedAndOthersServedMeanwhile(t *testing.T) {
	h := startPair(t, herdtest.Options{})
	maxLine := h.Cfg.Limits.MaxLineBytes
	hostile := h.Dial("Front")
	const size = 4 << 20 // with no newline
	done := make(chan error, 1)
	go func() {
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		hostile.Conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := hostile.Conn.Write(chunk); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()

	other := h.Dial("Front")
	var (
		worst    time.Duration
		n        int
		sendErr  error
		finished bool
		during   = 0 // IAMATs answered while the hostile client was still sending
	)
	for ; !finished || n < 20; n++ {
		select {
		case sendErr = <-done:
			finished = true
		default:
			during++
		}
		worst = max(worst, askTimed(t, other, fmt.Sprintf("calm-%d", n)))
	}
	if worst > maxOtherLatency {
		t.Errorf("while a client sent a 4 MiB line, the slowest of %d IAMATs from another client took %v; want at most %v", n, worst, maxOtherLatency)
	}
	t.Logf("%d IAMATs from another client, %d of them during the 4 MiB send, slowest %v", n, during, worst)

	if sendErr != nil {
		t.Logf("the server cut the hostile client off while it sent: %v", sendErr)
		return
	}
	// End the line: the client gets "? " and the line's first bytes, or
	// is disconnected.
	hostile.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := hostile.Conn.Write([]byte("\n")); err != nil {
		t.Logf("the server cut the hostile client off: %v", err)
		return
	}
	reply, err := hostile.ReadLine(10 * time.Second)
	if err != nil {
		if isTimeout(err) {
			t.Fatalf("no reply to a 4 MiB line and no disconnection within 10s (read %d bytes)", len(reply))
		}
		t.Logf("the server disconnected the hostile client: %v", err)
		return
	}
	if want := "? " + strings.Repeat("x", maxLine); reply != want {
		t.Errorf("reply to a 4 MiB line: %d bytes starting %.20q; want \"? \" and the first %d bytes of the line", len(reply), reply, maxLine)
	}
	// The connection is still usable.
	askTimed(t, hostile, "hostile-after")
}

func TestOddBytesInClientIDs_CopiedVerbatim(t *testing.T) {
	h := startPair(t, herdtest.Options{})
	front := h.Dial("Front")
	for _, id := range []string{
		"nul\x00inside",
		"\x00",
		"\xff\xfe\xfd",                 // not UTF-8
		"half\xe2\x82",                 // a cut UTF-8 sequence
		"nel\xc2\x85nbsp\xc2\xa0",      // Unicode spaces, not protocol white space
		"latin1\xa0nbsp\x85nel",        // the same as single bytes
		"sep\x1cfs\x1dgs\x1ers\x1fus",  // separators Python's split() would cut at
		"ctl\x01\x07\x1b[31m\x7fdel",   // control bytes and an escape sequence
		"🦘" + strings.Repeat("é", 100), // long UTF-8
	} {
		t.Run(fmt.Sprintf("%q", id), func(t *testing.T) {
			loc, ct := "+34.068930-118.445127", nowTime()
			reply := front.Ask(fmt.Sprintf("IAMAT %s %s %s", id, loc, ct))
			m := atLine.FindStringSubmatch(reply)
			if m == nil || m[1] != "Front" || m[3] != id || m[4] != loc || m[5] != ct {
				t.Fatalf("IAMAT reply = %q; want AT Front <skew> %q %s %s", reply, id, loc, ct)
			}
			for _, name := range []string{"Front", "Back"} {
				herdtest.Eventually(t, 5*time.Second, func() error {
					got, err := herdtest.LookupAT(h.Addr(name), id)
					if got != reply {
						return fmt.Errorf("%s: WHATSAT = %q (%v); want %q", name, got, err, reply)
					}
					return nil
				})
			}
		})
	}
}

func TestAbruptConnects_ThenNormalServiceAndNoLeak(t *testing.T) {
	h := startPair(t, herdtest.Options{})
	srv := h.Member("Front").Server
	baseConns := srv.Stats().ConnsOpen
	baseGoroutines := runtime.NumGoroutine()
	addr := h.Addr("Front")

	const total, workers = 3000, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < total; i += workers {
				conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					errs <- fmt.Errorf("connection %d: %w", i, err)
					return
				}
				tc := conn.(*net.TCPConn)
				switch i % 5 {
				case 0: // connect and leave
				case 1: // leave mid-line
					fmt.Fprintf(conn, "IAMAT abrupt-%d +1+1 ", i)
				case 2: // reset mid-line
					fmt.Fprintf(conn, "WHATSAT abrupt-%d 1", i)
					tc.SetLinger(0)
				case 3: // a whole command, gone before the reply
					fmt.Fprintf(conn, "IAMAT gone-%d +1+1 1.5\n", i)
					tc.SetLinger(0)
				case 4: // half a peer HELLO
					fmt.Fprintf(conn, "HERD-HELLO 1 Back Front")
				}
				conn.Close()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// Normal service, on both servers, at normal speed.
	for _, name := range []string{"Front", "Back"} {
		c := h.Dial(name)
		if took := askTimed(t, c, "after-storm-"+name); took > maxOtherLatency {
			t.Errorf("%s: IAMAT after %d abrupt connections took %v; want at most %v", name, total, took, maxOtherLatency)
		}
		c.Conn.Close()
	}
	for _, name := range []string{"Front", "Back"} {
		herdtest.Eventually(t, 5*time.Second, func() error {
			if _, err := herdtest.LookupAT(h.Addr(name), "after-storm-Front"); err != nil {
				return fmt.Errorf("%s: %v", name, err)
			}
			return nil
		})
	}
	// Every connection is gone again: the counter, and the goroutines.
	herdtest.Eventually(t, 10*time.Second, func() error {
		if got := srv.Stats().ConnsOpen; got > baseConns {
			return fmt.Errorf("Front has %d connections open after the storm; want %d as before", got, baseConns)
		}
		if got := runtime.NumGoroutine(); got > baseGoroutines+10 {
			return fmt.Errorf("%d goroutines after the storm; want about %d as before", got, baseGoroutines)
		}
		return nil
	})
	// The peer link never noticed.
	for _, name := range []string{"Front", "Back"} {
		for _, l := range h.Member(name).Server.Links() {
			if !l.OutUp || !l.InUp || l.Reconnects != 1 {
				t.Errorf("%s's link to %s after the storm: out_up %v in_up %v, connected %d times; want up, once", name, l.Peer, l.OutUp, l.InUp, l.Reconnects)
			}
		}
	}
}

func TestNonReader_DroppedAfterWriteTimeout(t *testing.T) {
	for _, tc := range []struct {
		name   string
		places func(*config.Config)
	}{
		{"remote places", func(c *config.Config) {
			c.Places.CacheTTL = config.Duration(time.Minute) // the stub is asked once
		}},
		// Answers of 20 places are larger than the connection's write
		// buffer, so they are written past it.
		{"offline places", func(c *config.Config) { c.Places.Provider = config.ProviderOffline }},
	} {
		t.Run(tc.name, func(t *testing.T) { testNonReaderDropped(t, tc.places) })
	}
}

func testNonReaderDropped(t *testing.T, places func(*config.Config)) {
	// Long enough that a bystander held up by the non-reader (which would
	// wait out this timeout) is told apart from one slowed by a loaded
	// machine.
	const writeTimeout = time.Second
	var logs herdtest.SyncBuffer
	h := startPair(t, herdtest.Options{
		LogOutput: &logs,
		Configure: func(c *config.Config) {
			c.Limits.WriteTimeout = config.Duration(writeTimeout)
			places(c)
		},
	})
	srv := h.Member("Front").Server
	baseConns := srv.Stats().ConnsOpen
	first := h.Dial("Front")
	askTimed(t, first, "target")
	first.Conn.Close()

	// A client that sends many WHATSATs (20 places each) and reads nothing.
	conn, err := net.DialTimeout("tcp", h.Addr("Front"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	sendDone := make(chan struct{})
	go func() {
		defer close(sendDone)
		batch := []byte(strings.Repeat("WHATSAT target 50 20\n", 100))
		conn.SetWriteDeadline(time.Now().Add(20 * time.Second))
		for range 50 {
			if _, err := conn.Write(batch); err != nil {
				return // the server stopped reading, then dropped us
			}
		}
	}()

	// Other clients are served at normal speed until the non-reader is
	// dropped.
	other := h.Dial("Front")
	var worst time.Duration
	start := time.Now()
	herdtest.Eventually(t, 15*time.Second, func() error {
		worst = max(worst, askTimed(t, other, "bystander"))
		if first, _ := other.WhatsAt("target", 10, 2); !strings.HasPrefix(first, "AT Front ") {
			return fmt.Errorf("bystander's WHATSAT = %q", first)
		}
		if !strings.Contains(logs.String(), "client dropped: cannot write") {
			return errors.New("the client that reads nothing is still connected")
		}
		return nil
	})
	t.Logf("non-reader dropped after %v; slowest bystander IAMAT %v", time.Since(start), worst)
	if worst >= writeTimeout/2 {
		t.Errorf("a bystander's IAMAT took %v while a client read nothing; want well under the write timeout, %v", worst, writeTimeout)
	}
	if line := logLine(logs.String(), "client dropped: cannot write"); !strings.Contains(line, "i/o timeout") {
		t.Errorf("the drop was not a write timeout: %s", line)
	}
	herdtest.Eventually(t, 5*time.Second, func() error {
		// other is still open.
		if got := srv.Stats().ConnsOpen; got != baseConns+1 {
			return fmt.Errorf("Front has %d connections open; want %d (peer links and the bystander)", got, baseConns+1)
		}
		return nil
	})
	conn.Close()
	<-sendDone
}

// TestSlowReader_KeptWhileItReads checks that the write timeout measures
// how long a client has read nothing, not how long the kernel takes to
// drain a large send queue into a client that reads steadily but slowly.
func TestSlowReader_KeptWhileItReads(t *testing.T) {
	// Far above the reader's 10 ms pace, and well below the 1.7 s the
	// whole reply stream takes to read.
	const writeTimeout = time.Second
	var logs herdtest.SyncBuffer
	h := startPair(t, herdtest.Options{
		LogOutput: &logs,
		Configure: func(c *config.Config) {
			c.Limits.WriteTimeout = config.Duration(writeTimeout)
			c.Places.Provider = config.ProviderOffline
		},
	})
	askTimed(t, h.Dial("Front"), "target")

	// A small receive window, set before connecting as a phone's would be.
	d := net.Dialer{Timeout: time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10) })
		return nil
	}}
	conn, err := d.Dial("tcp", h.Addr("Front"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// About 9 KB each (20 places), 5.4 MB in all: more than the 4 MB to
	// which Linux lets a send buffer grow.
	const asked = 600
	go conn.Write([]byte(strings.Repeat("WHATSAT target 50 20\n", asked)))

	// Read up to 32 KiB every 10 ms, about 3 MB/s: never silent for
	// anywhere near the write timeout.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	buf := make([]byte, 32<<10)
	var replies int
	var last []byte // the tail of the previous read, for a "}\n\n" across reads
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	for replies < asked {
		<-tick.C
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("after %d of %d replies: %v (dropped while reading steadily?)\n%s", replies, asked, err,
				logLine(logs.String(), "client dropped"))
		}
		seen := append(last, buf[:n]...)
		replies += bytes.Count(seen, []byte("}\n\n")) - bytes.Count(last, []byte("}\n\n"))
		last = append([]byte(nil), seen[max(0, len(seen)-2):]...)
	}
}

// logLine returns the first log line holding s.
func logLine(logs, s string) string {
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

func TestMaxConnections_RefusedCleanly(t *testing.T) {
	const limit = 4
	h := startPair(t, herdtest.Options{Configure: func(c *config.Config) { c.Limits.MaxConnections = limit }})
	srv := h.Member("Front").Server
	free := limit - int(srv.Stats().ConnsOpen) // Back's inbound link holds a slot
	if free < 1 {
		t.Fatalf("Front has %d connections open before any client; want fewer than %d", srv.Stats().ConnsOpen, limit)
	}
	var kept []*herdtest.Client
	for i := range free {
		c := h.Dial("Front")
		askTimed(t, c, fmt.Sprintf("kept-%d", i))
		kept = append(kept, c)
	}

	refusedBefore := srv.Stats().ConnsRefused
	const extra = 3
	for i := range extra {
		conn, err := net.DialTimeout("tcp", h.Addr("Front"), time.Second)
		if err != nil {
			t.Fatalf("connection %d past the limit: dial: %v; want accepted and closed", i, err)
		}
		got, err := readUntilClosed(conn, 5*time.Second)
		conn.Close()
		if !errors.Is(err, io.EOF) || len(got) != 0 {
			t.Errorf("connection %d past the limit: read %q, %v; want an orderly close (EOF) with no bytes", i, got, err)
		}
	}
	herdtest.Eventually(t, 2*time.Second, func() error {
		if got := srv.Stats().ConnsRefused - refusedBefore; got != extra {
			return fmt.Errorf("ConnsRefused grew by %d; want %d", got, extra)
		}
		return nil
	})

	// A full server still answers the probe of herd status and of its own
	// health check, so it is not taken for a dead one.
	probe, err := net.DialTimeout("tcp", h.Addr("Front"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	probe.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(probe, "%s\n", server.ProbeLine)
	if reply, err := bufio.NewReader(probe).ReadString('\n'); reply != "? "+server.ProbeLine+"\n" {
		t.Errorf("a probe past the limit got %q, %v; want \"? %s\"", reply, err, server.ProbeLine)
	}
	probe.Close()

	// The clients inside the limit are still served, and a slot freed is
	// a slot for the next client.
	for i, c := range kept {
		askTimed(t, c, fmt.Sprintf("kept-%d", i))
	}
	kept[0].Conn.Close()
	herdtest.Eventually(t, 5*time.Second, func() error {
		conn, err := net.DialTimeout("tcp", h.Addr("Front"), time.Second)
		if err != nil {
			return err
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(2 * time.Second))
		fmt.Fprintf(conn, "IAMAT latecomer +1+1 %s\n", nowTime())
		reply, err := bufio.NewReader(conn).ReadString('\n')
		if !strings.HasPrefix(reply, "AT Front ") {
			return fmt.Errorf("after a client left, a new one got %q, %v; want an AT line", reply, err)
		}
		return nil
	})
}

// Peer links arrive through the same listener as clients. When clients
// hold every connection slot at the moment a neighbor comes back, the
// neighbor's link must still get in: otherwise the neighbor's updates stop
// flowing for as long as the clients stay (up to limits.idle_timeout each,
// renewed at will by a hostile client).
func TestMaxConnections_ClientsCannotLockOutPeers(t *testing.T) {
	const limit = 3
	h, srv := frontFullOfClients(t, limit)
	h.Restart("Back")
	reply := h.Dial("Back").Ask("IAMAT from-back +1+1 " + nowTime())
	// Front's slots are all taken, so ask its node rather than over TCP.
	herdtest.Eventually(t, 3*time.Second, func() error {
		if rec, ok := h.Member("Front").Node.Lookup([]byte("from-back")); !ok || rec.Line != reply {
			return fmt.Errorf("BUG: Back's update %q has not reached Front, whose %d connection slots are held by clients (%d connections refused)", reply, limit, srv.Stats().ConnsRefused)
		}
		return nil
	})
}

// The same, against a hostile client: besides holding every client slot,
// it keeps opening connections that say nothing, and opens a new one as soon
// as the server closes one. A neighbor coming back must still get its link.
func TestMaxConnections_SilentConnectionsCannotLockOutPeers(t *testing.T) {
	const limit = 3
	h, srv := frontFullOfClients(t, limit)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for range 16 {
		wg.Go(func() {
			var d net.Dialer
			for ctx.Err() == nil {
				conn, err := d.DialContext(ctx, "tcp", h.Addr("Front"))
				if err != nil {
					continue
				}
				stop := context.AfterFunc(ctx, func() { conn.Close() })
				start := time.Now()
				readUntilClosed(conn, time.Minute) // silent until the server gives up
				stop()
				conn.Close()
				if time.Since(start) < 10*time.Millisecond { // refused at once: do not spin
					select {
					case <-ctx.Done():
					case <-time.After(time.Millisecond):
					}
				}
			}
		})
	}
	refused := srv.Stats().ConnsRefused
	herdtest.Eventually(t, 5*time.Second, func() error {
		if srv.Stats().ConnsRefused == refused {
			return errors.New("Front has refused none of the silent connections yet")
		}
		return nil
	})

	h.Restart("Back")
	reply := h.Dial("Back").Ask("IAMAT from-back +1+1 " + nowTime())
	herdtest.Eventually(t, 5*time.Second, func() error {
		if rec, ok := h.Member("Front").Node.Lookup([]byte("from-back")); !ok || rec.Line != reply {
			return fmt.Errorf("BUG: Back's update %q has not reached Front, whose connection slots are held by clients and silent connections (%d refused)", reply, srv.Stats().ConnsRefused)
		}
		return nil
	})
}

// One address cannot take every connection: past
// limits.max_connections_per_ip its connections are refused (they may only
// open a peer link), while another address is served as usual and the
// refusals are logged once, not once each.
func TestMaxConnectionsPerIP_OneAddressCannotTakeThemAll(t *testing.T) {
	const perIP = 5
	var logs herdtest.SyncBuffer
	h := startPair(t, herdtest.Options{LogOutput: &logs, Configure: func(c *config.Config) { c.Limits.MaxConnectionsPerIP = perIP }})
	srv := h.Member("Front").Server
	dialFrom := func(ip byte) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, ip)}, Timeout: time.Second}
		conn, err := d.Dial("tcp", h.Addr("Front"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	ask := func(conn net.Conn, client string) (string, error) {
		conn.SetDeadline(time.Now().Add(3 * time.Second))
		fmt.Fprintf(conn, "IAMAT %s +1+1 %s\n", client, nowTime())
		return bufio.NewReader(conn).ReadString('\n')
	}
	for i := range perIP {
		if reply, err := ask(dialFrom(2), fmt.Sprintf("hog-%d", i)); !strings.HasPrefix(reply, "AT Front ") {
			t.Fatalf("connection %d from 127.0.0.2 (within the cap): %q, %v", i, reply, err)
		}
	}
	refused := srv.Stats().ConnsRefused
	for i := range 20 {
		if reply, err := ask(dialFrom(2), fmt.Sprintf("over-%d", i)); err == nil {
			t.Fatalf("connection %d past the cap from 127.0.0.2 was answered %q; want it closed", perIP+i, reply)
		}
	}
	if got := srv.Stats().ConnsRefused - refused; got != 20 {
		t.Errorf("%d connections counted as refused; want 20", got)
	}
	if reply, err := ask(dialFrom(3), "other-address"); !strings.HasPrefix(reply, "AT Front ") {
		t.Errorf("a client from 127.0.0.3 got %q, %v; want an AT line", reply, err)
	}
	if n := strings.Count(logs.String(), "connection refused"); n != 1 {
		t.Errorf("%d log lines about refused connections; want 1 (at most one a minute)", n)
	}
}

// What one client can make every server store is bounded: long client ids
// and times far ahead of the clock are refused where they arrive, so they
// never reach the herd, and a location cannot be pinned for good.
func TestClientLimits_RefusedUpdatesNeverSpread(t *testing.T) {
	h := startPair(t, herdtest.Options{})
	c := h.Dial("Front")
	longID := strings.Repeat("k", 60<<10) // within max_line_bytes, past max_client_id_bytes
	pinned := "IAMAT pinned +34.068930-118.445127 32503680000.0"
	for _, line := range []string{
		"IAMAT " + longID + " +34.068930-118.445127 " + nowTime(),
		pinned,
	} {
		if reply := c.Ask(line); reply != "? "+line {
			t.Errorf("reply to %q = %q; want \"? line\"", line[:40], reply[:min(len(reply), 60)])
		}
	}
	genuine := c.Ask("IAMAT pinned +1+1 " + nowTime())
	if !strings.HasPrefix(genuine, "AT Front ") {
		t.Fatalf("a genuine update after the pinning attempt: %q", genuine)
	}
	herdtest.Eventually(t, 3*time.Second, func() error {
		if got, err := herdtest.LookupAT(h.Addr("Back"), "pinned"); got != genuine {
			return fmt.Errorf("Back has %q, %v; want %q", got, err, genuine)
		}
		return nil
	})
	for _, name := range []string{"Front", "Back"} {
		if n := h.Member(name).Node.Len(); n != 1 {
			t.Errorf("%s stores %d clients; want 1", name, n)
		}
	}
}

func TestIdleTimeout_ClosesSilentConnectionsOnly(t *testing.T) {
	const idle = 300 * time.Millisecond
	h := startPair(t, herdtest.Options{Configure: func(c *config.Config) { c.Limits.IdleTimeout = config.Duration(idle) }})
	srv := h.Member("Front").Server
	baseConns := srv.Stats().ConnsOpen

	tests := []struct {
		name  string
		greet func(c *herdtest.Client)
	}{
		{"never says anything", func(*herdtest.Client) {}},
		{"silent after a reply", func(c *herdtest.Client) { askTimed(t, c, "idler") }},
	}
	var wg sync.WaitGroup
	for _, tt := range tests {
		c := h.Dial("Front")
		tt.greet(c)
		start := time.Now()
		wg.Go(func() {
			got, err := readUntilClosed(c.Conn, 5*time.Second)
			took := time.Since(start)
			if !errors.Is(err, io.EOF) || len(got) != 0 {
				t.Errorf("%s: read %q, %v; want the server to close the connection", tt.name, got, err)
			}
			if took < idle-50*time.Millisecond || took > idle+2*time.Second {
				t.Errorf("%s: closed after %v; want about %v", tt.name, took, idle)
			}
		})
	}

	// A client that speaks more often than the idle timeout keeps its
	// connection for several times as long.
	busy := h.Dial("Front")
	tick := time.NewTicker(idle / 3)
	for i := range 12 {
		<-tick.C
		askTimed(t, busy, fmt.Sprintf("busy-%d", i))
	}
	tick.Stop()
	wg.Wait()

	// Peer links have their own heartbeats: the idle timeout never cut them.
	for _, name := range []string{"Front", "Back"} {
		for _, l := range h.Member(name).Server.Links() {
			if !l.OutUp || !l.InUp || l.Reconnects != 1 {
				t.Errorf("%s's link to %s: out_up %v in_up %v, connected %d times; want up, once", name, l.Peer, l.OutUp, l.InUp, l.Reconnects)
			}
		}
	}
	herdtest.Eventually(t, 2*time.Second, func() error {
		if got := srv.Stats().ConnsOpen; got != baseConns+1 {
			return fmt.Errorf("Front has %d connections open; want %d (peer links and the busy client)", got, baseConns+1)
		}
		return nil
	})
}

// A client that trickles a line a byte at a time, each byte just inside the
// idle timeout, is still closed once its line has taken longer than the
// idle timeout: slowloris cannot hold a connection forever.
func TestIdleTimeout_BoundsHowLongALineMayTake(t *testing.T) {
	const idle = 300 * time.Millisecond
	h := startPair(t, herdtest.Options{Configure: func(c *config.Config) { c.Limits.IdleTimeout = config.Duration(idle) }})
	c := h.Dial("Front")
	start := time.Now()
	tick := time.NewTicker(idle / 3)
	defer tick.Stop()
	for i := 0; time.Since(start) < 10*idle; i++ {
		<-tick.C
		c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := c.Conn.Write([]byte{"IAMAT slow-loris "[i%17]}); err != nil {
			break // closed by the server
		}
		c.Conn.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := c.Conn.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
			break
		}
	}
	if took := time.Since(start); took > 3*idle {
		t.Errorf("BUG: a connection trickling a byte every %v was kept for %v; want it closed about %v after its line began", idle/3, took, idle)
	}
}

// The bound on a line is per line: a client that pipelines without a pause
// for longer than the idle timeout, its lines split across packets, keeps
// its connection.
func TestIdleTimeout_SteadyPipelinerKept(t *testing.T) {
	const idle = 400 * time.Millisecond
	h := startPair(t, herdtest.Options{Configure: func(c *config.Config) { c.Limits.IdleTimeout = config.Duration(idle) }})
	c := h.Dial("Front")
	c.Send("FOO\nFO")
	start := time.Now()
	for i := 0; time.Since(start) < 3*idle; i++ {
		if reply, err := c.ReadLine(time.Second); reply != "? FOO" {
			t.Fatalf("BUG: after %v of steady traffic, reply %d = %q, %v; want \"? FOO\" (the connection must stay open)", time.Since(start), i, reply, err)
		}
		time.Sleep(idle / 4) // the client's pace
		c.Send("O\nFO")
	}
}

// A line after an accepted HELLO that is not the neighbor's AUTH is a
// client's command, and the rules for a client's last line hold: a line
// cut off by a timeout is never taken, and one ended by a half-close gets
// its reply.
func TestHelloThenClientLine_LastLineRules(t *testing.T) {
	h := startPair(t, herdtest.Options{}) // no peer secret: anyone's HELLO is accepted
	hello := func() string {
		first, _, _ := strings.Cut(string(peer.NewDialer(nil, "Back", "Front", 1, 0).Start()), "\n")
		return first + "\n"
	}

	cut, err := net.Dial("tcp", h.Addr("Front"))
	if err != nil {
		t.Fatal(err)
	}
	defer cut.Close()
	fmt.Fprintf(cut, "%sIAMAT cut-off +1+1 %s", hello(), nowTime()) // no newline, no half-close
	got, _ := readUntilClosed(cut, 10*time.Second)
	if strings.Contains(string(got), "AT Front") {
		t.Errorf("BUG: a line cut off by the timeout was answered: %q", got)
	}
	if _, ok := h.Member("Front").Node.Lookup([]byte("cut-off")); ok {
		t.Error("BUG: Front stored an IAMAT whose line never ended")
	}

	closed, err := net.Dial("tcp", h.Addr("Front"))
	if err != nil {
		t.Fatal(err)
	}
	defer closed.Close()
	fmt.Fprintf(closed, "%sIAMAT half-closed +1+1 %s", hello(), nowTime())
	closed.(*net.TCPConn).CloseWrite()
	got, err = readUntilClosed(closed, 10*time.Second)
	if !strings.Contains(string(got), "\nAT Front ") {
		t.Errorf("BUG: the half-closed last line got %q, %v; want WELCOME, then its AT reply", got, err)
	}
}

// Connections are long-lived: a client may say nothing for longer than
// limits.write_timeout (which is about a client that does not read) and
// then ask for something with a long answer. The answer must come whole.
func TestQuietClient_AnsweredAfterLongerThanWriteTimeout(t *testing.T) {
	const writeTimeout = 200 * time.Millisecond
	h := startPair(t, herdtest.Options{Configure: func(c *config.Config) {
		c.Limits.WriteTimeout = config.Duration(writeTimeout)
	}})
	tests := []struct {
		name string
		// ask sends its commands and reads every reply.
		ask func(t *testing.T, c *herdtest.Client)
	}{
		{"WHATSAT with a reply over 4 KiB", func(t *testing.T, c *herdtest.Client) {
			c.Send("WHATSAT quiet 50 20\n")
			var body strings.Builder
			for {
				l, err := c.ReadLine(5 * time.Second)
				if err != nil {
					t.Fatalf("BUG: WHATSAT after a quiet spell longer than write_timeout: read %d bytes, then %v; want the AT line, the places and a blank line", body.Len(), err)
				}
				if l == "" {
					break
				}
				body.WriteString(l + "\n")
			}
			if got := body.String(); !strings.HasPrefix(got, "AT Front ") || len(got) < 4<<10 {
				t.Fatalf("WHATSAT after a quiet spell = %d bytes starting %.40q; want the AT line and over 4 KiB of places", len(got), got)
			}
		}},
		{"100 pipelined IAMATs", func(t *testing.T, c *herdtest.Client) {
			var b strings.Builder
			for i := range 100 {
				fmt.Fprintf(&b, "IAMAT quiet-%d +1+1 %s\n", i, nowTime())
			}
			c.Send(b.String())
			for i := range 100 {
				l, err := c.ReadLine(5 * time.Second)
				if err != nil || !strings.HasPrefix(l, "AT Front ") {
					t.Fatalf("BUG: after a quiet spell longer than write_timeout, reply %d of 100 pipelined IAMATs: %q, %v; want an AT line", i, l, err)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := herdtest.DialAddr(t, h.Addr("Front"))
			askTimed(t, c, "quiet")
			// The scenario itself: a long-lived client says nothing for a
			// while (longer than write_timeout, well under idle_timeout).
			time.Sleep(3 * writeTimeout)
			tt.ask(t, c)
			askTimed(t, c, "quiet-after")
		})
	}
}

// A line with no newline is a command only when the client ends its
// sending side after it (SPEC.md, "Lines"). When the connection ends any
// other way (the idle timeout fires, the client's connection is reset, the
// server shuts down) the unterminated bytes are a fragment of a command the
// client had not finished sending: "IAMAT c +1+1 17000000" may be the start
// of "... 1700000000.5". Taking it would store, flood and acknowledge a
// location at a client time the client never sent.
func TestUnterminatedLine_CommandOnlyAfterHalfClose(t *testing.T) {
	const idle = 200 * time.Millisecond
	h := startPair(t, herdtest.Options{Configure: func(c *config.Config) { c.Limits.IdleTimeout = config.Duration(idle) }})
	srv := func() *server.Server { return h.Member("Front").Server }
	baseConns := srv().Stats().ConnsOpen
	waitClosed := func(t *testing.T) {
		t.Helper()
		herdtest.Eventually(t, 5*time.Second, func() error {
			if got := srv().Stats().ConnsOpen; got != baseConns {
				return fmt.Errorf("Front has %d connections open; want %d", got, baseConns)
			}
			return nil
		})
	}
	tests := []struct {
		name   string
		stored bool // the spec's case: the fragment is the client's last line
		end    func(t *testing.T, c *herdtest.Client)
	}{
		{"half-close", true, func(t *testing.T, c *herdtest.Client) {
			c.Conn.(*net.TCPConn).CloseWrite()
			if got, err := readUntilClosed(c.Conn, 5*time.Second); !strings.HasPrefix(string(got), "AT Front ") {
				t.Errorf("after a half-close, the last line without newline got %q, %v; want its AT reply", got, err)
			}
		}},
		{"idle timeout", false, func(t *testing.T, c *herdtest.Client) {
			readUntilClosed(c.Conn, 5*time.Second)
		}},
		{"connection reset", false, func(t *testing.T, c *herdtest.Client) {
			c.Conn.(*net.TCPConn).SetLinger(0)
			c.Conn.Close()
			waitClosed(t)
		}},
		{"graceful shutdown", false, func(t *testing.T, c *herdtest.Client) {
			h.Stop("Front")
			h.Restart("Front")
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := fmt.Sprintf("fragment-%d", i)
			c := herdtest.DialAddr(t, h.Addr("Front"))
			c.Send(fmt.Sprintf("IAMAT %s +1+1 17000000", client))
			// The server has read the fragment before the connection ends.
			herdtest.Eventually(t, 5*time.Second, func() error {
				if srv().Stats().ConnsOpen <= baseConns {
					return errors.New("Front has not accepted the connection yet")
				}
				return nil
			})
			tt.end(t, c)
			waitClosed(t)
			rec, ok := h.Member("Front").Node.Lookup([]byte(client))
			switch {
			case tt.stored && !ok:
				t.Errorf("Front did not take the last line of a half-closed connection")
			case !tt.stored && ok:
				t.Errorf("BUG: after %s, Front took the unterminated fragment as a command and stored %q", tt.name, rec.Line)
			}
		})
	}
}

// frontFullOfClients starts a pair with Back stopped and every one of
// Front's limit connection slots held by a client.
func frontFullOfClients(t *testing.T, limit int) (*herdtest.Herd, *server.Server) {
	t.Helper()
	h := startPair(t, herdtest.Options{Configure: func(c *config.Config) { c.Limits.MaxConnections = limit }})
	srv := h.Member("Front").Server
	h.Stop("Back")
	herdtest.Eventually(t, 5*time.Second, func() error {
		if got := srv.Stats().ConnsOpen; got != 0 {
			return fmt.Errorf("Front has %d connections open after Back stopped; want 0", got)
		}
		return nil
	})
	for i := range limit {
		askTimed(t, h.Dial("Front"), fmt.Sprintf("hog-%d", i))
	}
	return h, srv
}

// Every line in and out is logged, peer links' too: the records a server
// floods are in its log as sent, and in its neighbor's as received.
func TestFloodedLines_LoggedAtBothEnds(t *testing.T) {
	var logs herdtest.SyncBuffer
	h := startPair(t, herdtest.Options{LogOutput: &logs})
	reply := h.Dial("Front").Ask(fmt.Sprintf("IAMAT logged-kiwi +34.068930-118.445127 %s", nowTime()))
	herdtest.Eventually(t, 10*time.Second, func() error {
		for _, want := range [][]string{
			{"server=Front", "msg=out", "peer=Back", "HERD-AT", reply},
			{"server=Back", "msg=in", "peer=Front", "HERD-AT", reply},
		} {
			if !hasLogLine(logs.String(), want...) {
				return fmt.Errorf("no log line holds all of %q", want)
			}
		}
		return nil
	})
}

// hasLogLine reports whether one line of logs holds every part.
func hasLogLine(logs string, parts ...string) bool {
	holdsAll := func(line string) bool {
		for _, p := range parts {
			if !strings.Contains(line, p) {
				return false
			}
		}
		return true
	}
	for l := range strings.SplitSeq(logs, "\n") {
		if holdsAll(l) {
			return true
		}
	}
	return false
}

// A busy link's records are split so that no log line passes the limits
// of log collectors (Docker's 16 KiB), and each says what became of the
// updates it carried.
func TestPeerLogRecords_ShortAndSayWhatWasStored(t *testing.T) {
	var logs herdtest.SyncBuffer
	h := startPair(t, herdtest.Options{LogOutput: &logs})
	c := h.Dial("Front")
	var pipelined strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&pipelined, "IAMAT busy-%04d-%s +34.068930-118.445127 %s\n", i, strings.Repeat("x", 40), nowTime())
	}
	c.Send(pipelined.String())
	for range 2000 {
		c.Line()
	}
	herdtest.Eventually(t, 10*time.Second, func() error {
		if n := h.Member("Back").Node.Len(); n != 2000 {
			return fmt.Errorf("Back has %d of 2000 clients", n)
		}
		return nil
	})
	h.StopAll() // flush every log record
	longest, stored := 0, 0
	for l := range strings.SplitSeq(logs.String(), "\n") {
		longest = max(longest, len(l))
		if strings.Contains(l, "server=Back") && strings.Contains(l, "msg=in") && strings.Contains(l, "peer=Front") {
			var n int
			if _, err := fmt.Sscanf(l[strings.Index(l, " stored=")+1:], "stored=%d", &n); err == nil {
				stored += n
			}
		}
	}
	if longest > 8<<10 {
		t.Errorf("the longest log line is %d bytes; want at most 8 KiB", longest)
	}
	if stored != 2000 {
		t.Errorf("Back's records of Front's lines say %d updates were stored; want 2000", stored)
	}
}

// An idle herd logs next to nothing at the default level: heartbeats and
// acknowledgements are debug.
func TestIdleHerd_LogsLittle(t *testing.T) {
	var logs herdtest.SyncBuffer
	h := herdtest.Start(t, herdtest.Options{LogOutput: &logs}) // heartbeats every 100 ms
	waitLinks(t, h, []string{"Alford", "Ball", "Hamilton", "Holiday", "Welsh"}, true, 10*time.Second)
	h.Dial("Alford").Ask("IAMAT settle +1+1 " + nowTime())
	// Once the update has reached every server and its duplicates have
	// died out, the herd is idle.
	names := []string{"Alford", "Ball", "Hamilton", "Holiday", "Welsh"}
	herdtest.Eventually(t, 5*time.Second, func() error {
		dups := uint64(0)
		for _, name := range names {
			if _, ok := h.Member(name).Node.Lookup([]byte("settle")); !ok {
				return fmt.Errorf("%s has not got the update", name)
			}
			dups += h.Member(name).Server.Stats().FloodDup
		}
		if dups < 2 { // on the seed's ring, two servers receive it twice
			return fmt.Errorf("%d duplicates so far", dups)
		}
		return nil
	})
	before := len(logs.String())
	const quiet = 2 * time.Second
	time.Sleep(quiet) // the quiet spell being measured
	perServer := float64(len(logs.String())-before) / quiet.Seconds() / 5
	t.Logf("an idle herd logs %.1f bytes a second per server with heartbeats every 100 ms", perServer)
	if perServer > 100 {
		t.Errorf("an idle herd logs %.0f bytes a second per server; want under 100", perServer)
	}
}

// TestSmallLineLimit_NeighborsStillAuthenticate covers a client line limit
// shorter than a neighbor's HELLO with its proof (about 170 bytes): the
// handshake has a limit of its own, so the links still come up.
func TestSmallLineLimit_NeighborsStillAuthenticate(t *testing.T) {
	h := herdtest.Start(t, herdtest.Options{
		Topology:  pair,
		Secret:    "0123456789abcdef0123",
		Configure: func(c *config.Config) { c.Limits.MaxLineBytes = 100 },
	})
	waitLinks(t, h, []string{"Front", "Back"}, true, 10*time.Second)
}
