package faulttest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herd-dev/herd/internal/herdtest"
)

// atLine matches an AT reply: server, skew, client, location, client time.
var atLine = regexp.MustCompile(`^AT (\S+) ([+-]\d+\.\d{9}) (\S+) (\S+) (\S+)$`)

// nowTime is the current time as a client would send it.
func nowTime() string {
	t := time.Now()
	return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond())
}

// ledger records what a burst of IAMATs asked for and what the herd
// acknowledged: for every client, the newest acknowledged AT reply, and
// every later IAMAT whose reply never came (the server may or may not have
// taken it before it died).
type ledger struct {
	base int64 // client times are base.<seq>

	mu    sync.Mutex
	acked map[string]ack
	tried map[string]map[int]string // client -> seq -> location sent
	bad   []string                  // replies that broke the protocol
}

type ack struct {
	seq  int
	line string
}

func newLedger() *ledger {
	return &ledger{base: time.Now().Unix(), acked: map[string]ack{}, tried: map[string]map[int]string{}}
}

// clientTime is the client time of a client's seq-th IAMAT: later seq, later time.
func (l *ledger) clientTime(seq int) string { return fmt.Sprintf("%d.%09d", l.base, seq) }

// seqOf reads seq back from a client time written by clientTime.
func (l *ledger) seqOf(clientTime string) (int, bool) {
	sec, frac, ok := strings.Cut(clientTime, ".")
	if !ok || sec != strconv.FormatInt(l.base, 10) {
		return 0, false
	}
	n, err := strconv.Atoi(frac)
	return n, err == nil
}

// burstLocation is a valid ISO 6709 location that differs with seq.
func burstLocation(seq int) string {
	return fmt.Sprintf("+%02d.%06d-118.%06d", seq%80, seq%1000000, (seq*7)%1000000)
}

func (l *ledger) try(client string, seq int, loc string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tried[client] == nil {
		l.tried[client] = map[int]string{}
	}
	l.tried[client][seq] = loc
}

func (l *ledger) ack(client string, seq int, line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if seq > l.acked[client].seq {
		l.acked[client] = ack{seq, line}
	}
}

func (l *ledger) protocolError(msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.bad) < 10 {
		l.bad = append(l.bad, msg)
	}
}

func (l *ledger) snapshot() (acked map[string]ack, tried map[string]map[int]string, bad []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	tried = map[string]map[int]string{}
	for c, m := range l.tried {
		tried[c] = maps.Clone(m)
	}
	return maps.Clone(l.acked), tried, slices.Clone(l.bad)
}

// burst runs IAMATs from several goroutines against a set of servers, each
// goroutine owning its own clients, and records every reply in a ledger.
// A goroutine whose server fails moves on to the next one.
type burst struct {
	ledger *ledger
	acks   atomic.Int64
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startBurst starts workers goroutines, each with clientsPerWorker clients,
// cycling through addrs. The burst stops at the end of the test at the
// latest.
func startBurst(tb testing.TB, name string, addrs []string, workers, clientsPerWorker int) *burst {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b := &burst{ledger: newLedger(), cancel: cancel}
	for w := range workers {
		clients := make([]string, clientsPerWorker)
		for i := range clients {
			clients[i] = fmt.Sprintf("%s-w%d-c%d", name, w, i)
		}
		b.wg.Go(func() { b.work(ctx, w, addrs, clients) })
	}
	tb.Cleanup(b.stop)
	return b
}

func (b *burst) work(ctx context.Context, w int, addrs []string, clients []string) {
	var (
		conn net.Conn
		br   *bufio.Reader
	)
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	srv := w % len(addrs)
	seqs := make([]int, len(clients))
	dialer := net.Dialer{Timeout: time.Second}
	for i := 0; ctx.Err() == nil; i++ {
		if conn == nil {
			c, err := dialer.DialContext(ctx, "tcp", addrs[srv])
			if err != nil {
				srv = (srv + 1) % len(addrs)
				select { // every server may be down for a moment: do not spin
				case <-ctx.Done():
				case <-time.After(5 * time.Millisecond):
				}
				continue
			}
			conn, br = c, bufio.NewReader(c)
		}
		k := i % len(clients)
		seqs[k]++
		client, seq := clients[k], seqs[k]
		loc, ct := burstLocation(seq), b.ledger.clientTime(seq)
		b.ledger.try(client, seq, loc)
		conn.SetDeadline(time.Now().Add(3 * time.Second))
		_, err := fmt.Fprintf(conn, "IAMAT %s %s %s\n", client, loc, ct)
		var reply string
		if err == nil {
			reply, err = br.ReadString('\n')
		}
		if err == nil {
			reply = strings.TrimSuffix(reply, "\n")
			if m := atLine.FindStringSubmatch(reply); m == nil || m[3] != client || m[4] != loc || m[5] != ct {
				b.ledger.protocolError(fmt.Sprintf("IAMAT %s %s %s: reply %q", client, loc, ct, reply))
			} else {
				b.ledger.ack(client, seq, reply)
				b.acks.Add(1)
			}
		}
		// Move to the next server after a failure, and now and then anyway,
		// so that every server takes updates.
		if err != nil || (i+1)%25 == 0 {
			conn.Close()
			conn = nil
			srv = (srv + 1) % len(addrs)
		}
	}
}

// waitAcks waits until at least n IAMATs have been acknowledged.
func (b *burst) waitAcks(tb testing.TB, n int64, timeout time.Duration) {
	tb.Helper()
	herdtest.Eventually(tb, timeout, func() error {
		if got := b.acks.Load(); got < n {
			return fmt.Errorf("burst: %d IAMATs acknowledged, want %d", got, n)
		}
		return nil
	})
}

// stop ends the burst and waits for its goroutines.
func (b *burst) stop() {
	b.cancel()
	b.wg.Wait()
}

// waitConverged stops the burst and then waits until every server in addrs
// (name -> address) holds, for every client of the burst, the same AT line:
// the newest acknowledged one, or the line of a later IAMAT that was sent but
// never acknowledged (a server may take an update and die before replying).
// An acknowledged update that is missing, or older than acknowledged, fails
// the test once the deadline passes.
func (b *burst) waitConverged(tb testing.TB, addrs map[string]string, timeout time.Duration) {
	tb.Helper()
	b.stop()
	acked, tried, bad := b.ledger.snapshot()
	for _, msg := range bad {
		tb.Errorf("protocol error during the burst: %s", msg)
	}
	if len(acked) == 0 {
		tb.Fatal("the burst got no IAMAT acknowledged")
	}
	deadline := time.Now().Add(timeout)
	names := slices.Sorted(maps.Keys(addrs))
	for _, client := range slices.Sorted(maps.Keys(acked)) {
		want := acked[client]
		herdtest.Eventually(tb, time.Until(deadline), func() error {
			var first string
			for _, name := range names {
				got, err := herdtest.LookupAT(addrs[name], client)
				if err != nil {
					return fmt.Errorf("%s has nothing for %s (%v); want %q", name, client, err, want.line)
				}
				if err := b.ledger.judge(got, want, tried[client]); err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				if first == "" {
					first = got
				} else if got != first {
					return fmt.Errorf("servers disagree on %s: %s has %q, %s has %q", client, names[0], first, name, got)
				}
			}
			return nil
		})
	}
}

// judge checks one server's AT line for a client against the newest
// acknowledged update and the unacknowledged later attempts.
func (l *ledger) judge(got string, want ack, tried map[int]string) error {
	m := atLine.FindStringSubmatch(got)
	if m == nil {
		return fmt.Errorf("stored line %q is not an AT line", got)
	}
	seq, ok := l.seqOf(m[5])
	switch {
	case !ok:
		return fmt.Errorf("stored line %q has a client time the burst never sent", got)
	case seq < want.seq:
		return fmt.Errorf("has %q, older than the acknowledged %q", got, want.line)
	case seq == want.seq && got != want.line:
		return fmt.Errorf("has %q, want the acknowledged %q", got, want.line)
	case seq > want.seq && tried[seq] != m[4]:
		return fmt.Errorf("has %q, newer than acknowledged %q but never sent with that location", got, want.line)
	}
	return nil
}

// waitEverywhere waits until every server in addrs answers WHATSAT for each
// client with exactly the wanted AT line.
func waitEverywhere(tb testing.TB, addrs map[string]string, want map[string]string, timeout time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for _, name := range slices.Sorted(maps.Keys(addrs)) {
		for _, client := range slices.Sorted(maps.Keys(want)) {
			herdtest.Eventually(tb, time.Until(deadline), func() error {
				got, err := herdtest.LookupAT(addrs[name], client)
				if got != want[client] {
					return fmt.Errorf("%s: WHATSAT %s = %q (%v); want %q", name, client, got, err, want[client])
				}
				return nil
			})
		}
	}
}

// herdAddrs returns every server's address in an in-process herd.
func herdAddrs(h *herdtest.Herd) map[string]string {
	out := map[string]string{}
	for _, s := range h.Cfg.Servers {
		out[s.Name] = h.Addr(s.Name)
	}
	return out
}

// readUntilClosed reads from conn until the server closes it or timeout
// passes, and returns what came and how the read ended.
func readUntilClosed(conn net.Conn, timeout time.Duration) ([]byte, error) {
	conn.SetReadDeadline(time.Now().Add(timeout))
	b, err := io.ReadAll(conn)
	if err == nil {
		err = io.EOF
	}
	return b, err
}

// isTimeout reports whether err is a deadline error.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
