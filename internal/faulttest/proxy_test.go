package faulttest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"

	"github.com/herd-dev/herd/internal/config"
	"github.com/herd-dev/herd/internal/herdtest"
	"github.com/herd-dev/herd/internal/peer"
)

// dirLink is one server's outbound peer link to a neighbor.
type dirLink struct{ from, to string }

func (l dirLink) String() string { return l.from + "->" + l.to }

// mesh puts a Toxiproxy proxy on every directed peer link of an in-process
// herd. herdtest's Dial hook only says which address is dialed, so a mesh
// connection is opened on its first write: the HELLO written there names the
// dialing server, and with it the link's proxy.
type mesh struct {
	tb    testing.TB
	api   *toxiproxy.ApiServer
	ready chan struct{} // closed by attach; the maps below are fixed then

	names   map[string]string // server address -> name
	proxies map[dirLink]*toxiproxy.Proxy
	listen  map[dirLink]string // proxy address (read here, never from the Proxy: it rewrites it on Start)
}

// newMesh returns a mesh with no proxies yet. Pass its Dial to herdtest and
// call attach once the herd has started. It must be created before the herd,
// so that its cleanup runs after the herd has stopped.
func newMesh(tb testing.TB) *mesh {
	m := &mesh{
		tb:      tb,
		api:     toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop()),
		ready:   make(chan struct{}),
		names:   map[string]string{},
		proxies: map[dirLink]*toxiproxy.Proxy{},
		listen:  map[dirLink]string{},
	}
	tb.Cleanup(func() {
		for _, p := range m.proxies {
			p.Stop()
		}
	})
	return m
}

// startMeshHerd starts an in-process herd whose peer links all go through
// a mesh.
func startMeshHerd(tb testing.TB, opt herdtest.Options) (*mesh, *herdtest.Herd) {
	tb.Helper()
	m := newMesh(tb)
	opt.Dial = m.Dial
	h := herdtest.Start(tb, opt)
	m.attach(h)
	return m, h
}

// attach creates a proxy for every directed link of h and lets dials through.
func (m *mesh) attach(h *herdtest.Herd) {
	m.tb.Helper()
	for from, nbrs := range h.Cfg.Links() {
		m.names[h.Addr(from)] = from
		for _, to := range nbrs {
			l := dirLink{from, to}
			p := toxiproxy.NewProxy(m.api, l.String(), "127.0.0.1:0", h.Addr(to))
			if err := m.api.Collection.Add(p, true); err != nil {
				m.tb.Fatalf("proxy %s: %v", l, err)
			}
			m.proxies[l] = p
			m.listen[l] = p.Listen
		}
	}
	close(m.ready)
}

// Dial is the herd's peer dialer.
func (m *mesh) Dial(ctx context.Context, addr string) (net.Conn, error) {
	select {
	case <-m.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	to, ok := m.names[addr]
	if !ok {
		return nil, fmt.Errorf("mesh: no server listens on %s", addr)
	}
	return &helloConn{m: m, to: to}, nil
}

// links returns every directed link, sorted.
func (m *mesh) links() []dirLink {
	ls := slices.Collect(maps.Keys(m.proxies))
	slices.SortFunc(ls, func(a, b dirLink) int { return strings.Compare(a.String(), b.String()) })
	return ls
}

// around returns the directed links from and to server.
func (m *mesh) around(server string) []dirLink {
	var out []dirLink
	for _, l := range m.links() {
		if l.from == server || l.to == server {
			out = append(out, l)
		}
	}
	return out
}

// addToxic adds a toxic to a link. stream is "upstream" (dialer to
// acceptor: HELLO, AUTH and the change feed) or "downstream" (WELCOME and
// acknowledgements).
func (m *mesh) addToxic(l dirLink, name, typ, stream string, toxicity float64, attrs any) {
	m.tb.Helper()
	body, err := json.Marshal(map[string]any{"name": name, "type": typ, "stream": stream, "toxicity": toxicity, "attributes": attrs})
	if err != nil {
		m.tb.Fatal(err)
	}
	if _, err := m.proxies[l].Toxics.AddToxicJson(bytes.NewReader(body)); err != nil {
		m.tb.Fatalf("add toxic %s to %s: %v", name, l, err)
	}
}

// removeToxics removes every toxic from a link.
func (m *mesh) removeToxics(l dirLink) {
	m.proxies[l].Toxics.ResetToxics(context.Background())
}

// helloConn is a peer connection dialed on its first write (see mesh).
type helloConn struct {
	m  *mesh
	to string

	mu     sync.Mutex
	conn   net.Conn
	closed bool
	rd, wd time.Time
}

var loopback = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}

func (c *helloConn) connect(first []byte) (net.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, net.ErrClosed
	}
	if c.conn != nil {
		return c.conn, nil
	}
	line, _, _ := bytes.Cut(first, []byte("\n"))
	h, err := peer.ParseHello(line)
	if err != nil || h.To != c.to {
		return nil, fmt.Errorf("mesh: first write to %s is not its HELLO: %q", c.to, line)
	}
	l := dirLink{h.From, c.to}
	addr, ok := c.m.listen[l]
	if !ok {
		return nil, fmt.Errorf("mesh: no proxy for %s", l)
	}
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil, err
	}
	conn.SetReadDeadline(c.rd)
	conn.SetWriteDeadline(c.wd)
	c.conn = conn
	return conn, nil
}

func (c *helloConn) current() net.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn
}

func (c *helloConn) Write(p []byte) (int, error) {
	conn, err := c.connect(p)
	if err != nil {
		return 0, err
	}
	return conn.Write(p)
}

func (c *helloConn) Read(p []byte) (int, error) {
	conn := c.current()
	if conn == nil {
		return 0, fmt.Errorf("mesh: read from %s before HELLO", c.to)
	}
	return conn.Read(p)
}

func (c *helloConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.conn != nil {
		return c.conn.Close()
	}
	return nil
}

func (c *helloConn) LocalAddr() net.Addr {
	if conn := c.current(); conn != nil {
		return conn.LocalAddr()
	}
	return loopback
}

func (c *helloConn) RemoteAddr() net.Addr {
	if conn := c.current(); conn != nil {
		return conn.RemoteAddr()
	}
	return loopback
}

func (c *helloConn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

func (c *helloConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rd = t
	if c.conn != nil {
		return c.conn.SetReadDeadline(t)
	}
	return nil
}

func (c *helloConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wd = t
	if c.conn != nil {
		return c.conn.SetWriteDeadline(t)
	}
	return nil
}

// waitLinks waits until every link of every running server of h is up (or,
// with up false, down) in both directions.
func waitLinks(tb testing.TB, h *herdtest.Herd, servers []string, up bool, timeout time.Duration) {
	tb.Helper()
	herdtest.Eventually(tb, timeout, func() error {
		for _, name := range servers {
			for _, l := range h.Member(name).Server.Links() {
				if l.OutUp != up || l.InUp != up {
					return fmt.Errorf("%s's link to %s: out_up %v, in_up %v; want both %v (last error %q)", name, l.Peer, l.OutUp, l.InUp, up, l.LastError)
				}
			}
		}
		return nil
	})
}

func serverNames(h *herdtest.Herd) []string {
	return slices.Sorted(maps.Keys(herdAddrs(h)))
}

func TestLatency_EveryUpdateReachesEveryServer(t *testing.T) {
	m, h := startMeshHerd(t, herdtest.Options{})
	names := serverNames(h)
	for _, l := range m.links() {
		m.addToxic(l, "lag_up", "latency", "upstream", 1, map[string]int{"latency": 100, "jitter": 40})
		m.addToxic(l, "lag_down", "latency", "downstream", 1, map[string]int{"latency": 100, "jitter": 40})
	}
	waitLinks(t, h, names, true, 10*time.Second)

	// Five clients per server, and one client that moves from server to
	// server: the last (newest) of its IAMATs must win everywhere.
	want := map[string]string{}
	for i, name := range names {
		c := h.Dial(name)
		for j := range 5 {
			client := fmt.Sprintf("lag-%s-%d", name, j)
			want[client] = c.Ask(fmt.Sprintf("IAMAT %s +34.068930-118.445127 %s", client, nowTime()))
		}
		want["nomad"] = c.Ask(fmt.Sprintf("IAMAT nomad +%d.5-118.25 %d.5", 10+i, 1700000000+i))
	}
	for client, reply := range want {
		if m := atLine.FindStringSubmatch(reply); m == nil || m[3] != client {
			t.Fatalf("IAMAT for %s answered %q; want an AT line", client, reply)
		}
	}
	waitEverywhere(t, herdAddrs(h), want, 15*time.Second)

	// WHATSAT answers stay whole and correct through the lag: the stored AT
	// line, then a Nearby Search body cut to the bound, then a blank line.
	for _, name := range names {
		c := h.Dial(name)
		for _, client := range []string{"nomad", "lag-" + names[0] + "-0"} {
			first, body := c.WhatsAt(client, 10, 3)
			if first != want[client] {
				t.Errorf("%s: WHATSAT %s first line = %q; want %q", name, client, first, want[client])
			}
			var obj struct {
				Status  string            `json:"status"`
				Results []json.RawMessage `json:"results"`
			}
			if err := json.Unmarshal([]byte(body), &obj); err != nil || obj.Status != "OK" || len(obj.Results) != 3 {
				t.Errorf("%s: WHATSAT %s body: status %q, %d results, err %v; want OK with 3\n%s", name, client, obj.Status, len(obj.Results), err, body)
			}
		}
	}

	// 100 ms of lag is far below peers.dead_after (1s): no link was dropped.
	for _, name := range names {
		for _, l := range h.Member(name).Server.Links() {
			if l.Reconnects != 1 {
				t.Errorf("%s's link to %s connected %d times under latency; want 1 (last error %q)", name, l.Peer, l.Reconnects, l.LastError)
			}
		}
	}
}

func TestResets_EveryAcknowledgedUpdateArrives(t *testing.T) {
	// reopened is the proof, for the cut-after-some-bytes faults, that
	// live links were cut again and again while the burst went on.
	reopened := func(h *herdtest.Herd, names []string) error {
		if got := linkReopens(h, names); got < 10 {
			return fmt.Errorf("links re-opened %d times under the fault; want at least 10", got)
		}
		return nil
	}
	tests := []struct {
		name string
		// harm starts the fault; it returns a function that heals it.
		harm func(t *testing.T, m *mesh, b *burst) (heal func())
		// hit reports whether the fault has hit live links; the burst
		// goes on until it does.
		hit func(h *herdtest.Herd, names []string) error
	}{
		{
			// The dialer's stream (HELLO, AUTH, the change feed) is cut
			// after 2 KiB on every connection, mid-line.
			name: "limit_data upstream",
			harm: func(t *testing.T, m *mesh, _ *burst) func() {
				for _, l := range m.links() {
					m.addToxic(l, "cut", "limit_data", "upstream", 1, map[string]int{"bytes": 2048})
				}
				return func() { healAll(m) }
			},
			hit: reopened,
		},
		{
			// The acceptor's stream (WELCOME, acknowledgements) is cut
			// after 300 bytes: links die between batches and mid-ack.
			name: "limit_data downstream",
			harm: func(t *testing.T, m *mesh, _ *burst) func() {
				for _, l := range m.links() {
					m.addToxic(l, "cut", "limit_data", "downstream", 1, map[string]int{"bytes": 300})
				}
				return func() { healAll(m) }
			},
			hit: reopened,
		},
		{
			// Every live link's next bytes are dropped and its connection
			// closed 50 ms later; every new connection is reset (RST)
			// 50 ms after its HELLO, until the fault heals.
			name: "reset_peer",
			harm: func(t *testing.T, m *mesh, _ *burst) func() {
				for _, l := range m.links() {
					m.addToxic(l, "rst", "reset_peer", "upstream", 1, map[string]int{"timeout": 50})
				}
				return func() { healAll(m) }
			},
			hit: func(h *herdtest.Herd, names []string) error {
				for _, name := range names {
					for _, l := range h.Member(name).Server.Links() {
						if l.OutUp {
							return fmt.Errorf("%s's link to %s is still up under reset_peer", name, l.Peer)
						}
					}
				}
				return nil
			},
		},
		{
			// One proxy after another is stopped (every connection through
			// it closed) and started again as the burst goes on.
			name: "proxy restarts",
			harm: func(t *testing.T, m *mesh, b *burst) func() {
				ctx, cancel := context.WithCancel(context.Background())
				var wg sync.WaitGroup
				wg.Go(func() {
					links := m.links()
					tick := time.NewTicker(5 * time.Millisecond)
					defer tick.Stop()
					for k := 0; ; {
						select {
						case <-ctx.Done():
							return
						case <-tick.C:
						}
						if b.acks.Load() < int64(k+1)*25 {
							continue
						}
						p := m.proxies[links[k%len(links)]]
						p.Stop()
						if err := p.Start(); err != nil {
							t.Errorf("restart proxy %s: %v", p.Name, err)
							return
						}
						k++
					}
				})
				return func() { cancel(); wg.Wait() }
			},
			hit: reopened,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, h := startMeshHerd(t, herdtest.Options{})
			names := serverNames(h)
			waitLinks(t, h, names, true, 10*time.Second)
			addrs := herdAddrs(h)
			b := startBurst(t, "rst", slices.Collect(maps.Values(addrs)), 4, 10)
			heal := tt.harm(t, m, b)
			t.Cleanup(heal) // if the test stops early; healing twice is harmless
			b.waitAcks(t, 400, 30*time.Second)
			// Keep the burst going until the fault has cut live links.
			herdtest.Eventually(t, 20*time.Second, func() error { return tt.hit(h, names) })
			b.waitAcks(t, b.acks.Load()+200, 30*time.Second)
			b.stop()
			heal()
			b.waitConverged(t, addrs, 20*time.Second)
			waitLinks(t, h, names, true, 10*time.Second)
			waitFloodsEnd(t, h, names, 500*time.Millisecond, 10*time.Second)
			for _, name := range names {
				for _, l := range h.Member(name).Server.Links() {
					if l.Reconnects < 2 {
						t.Errorf("%s's link to %s connected %d times; want the fault to have cut it at least once", name, l.Peer, l.Reconnects)
					}
				}
			}
		})
	}
}

// linkReopens counts how often the servers' outbound links came up again
// after they had been up.
func linkReopens(h *herdtest.Herd, servers []string) int {
	n := 0
	for _, name := range servers {
		for _, l := range h.Member(name).Server.Links() {
			n += max(int(l.Reconnects)-1, 0)
		}
	}
	return n
}

// waitFloodsEnd waits until no server of h has sent or received a flooded
// update for quiet: no update circulates forever.
func waitFloodsEnd(tb testing.TB, h *herdtest.Herd, servers []string, quiet, timeout time.Duration) {
	tb.Helper()
	var last uint64
	var since time.Time
	herdtest.Eventually(tb, timeout, func() error {
		var total uint64
		for _, name := range servers {
			st := h.Member(name).Server.Stats()
			total += st.FloodOut + st.FloodIn
		}
		if total != last || since.IsZero() {
			last, since = total, time.Now()
		}
		if d := time.Since(since); d < quiet {
			return fmt.Errorf("flood counters moved %v ago (now %d); want them still for %v", d.Round(time.Millisecond), total, quiet)
		}
		return nil
	})
}

func healAll(m *mesh) {
	for _, l := range m.links() {
		m.removeToxics(l)
	}
}

func TestPartition_HealsAndConverges(t *testing.T) {
	m, h := startMeshHerd(t, herdtest.Options{})
	names := serverNames(h)
	waitLinks(t, h, names, true, 10*time.Second)
	addrs := herdAddrs(h)

	// Hamilton's neighbors are Alford and Holiday; the other four stay
	// connected through Welsh and Ball.
	const cut = "Hamilton"
	for _, l := range m.around(cut) {
		m.addToxic(l, "hole_up", "timeout", "upstream", 1, map[string]int{"timeout": 0})
		m.addToxic(l, "hole_down", "timeout", "downstream", 1, map[string]int{"timeout": 0})
	}
	ask := func(server, client, loc, clientTime string) string {
		t.Helper()
		reply := h.Dial(server).Ask(fmt.Sprintf("IAMAT %s %s %s", client, loc, clientTime))
		if m := atLine.FindStringSubmatch(reply); m == nil || m[1] != server || m[3] != client {
			t.Fatalf("IAMAT %s at %s = %q; want an AT line from %s", client, server, reply, server)
		}
		return reply
	}
	want := map[string]string{}

	// Updates made at once fall into the black hole: the links still look up.
	want["early-ham"] = ask(cut, "early-ham", "+1.5+1.5", nowTime())
	want["early-alf"] = ask("Alford", "early-alf", "+2.5+2.5", nowTime())

	// The servers notice that the silent links are dead (peers.dead_after).
	herdtest.Eventually(t, 10*time.Second, func() error {
		for _, l := range m.around(cut) {
			for _, st := range h.Member(l.from).Server.Links() {
				if st.Peer == l.to && st.OutUp {
					return fmt.Errorf("%s's link to %s is still up (out_up true) in the partition", l.from, l.to)
				}
			}
		}
		return nil
	})

	// Both sides take updates, some for the same clients: the newest client
	// time must win wherever it was taken.
	ask("Alford", "both-1", "+10+10", "1700000001.5")
	want["both-1"] = ask(cut, "both-1", "+11+11", "1700000002.5") // newer on the cut side
	want["both-2"] = ask("Ball", "both-2", "+20+20", "1700000002.5")
	ask(cut, "both-2", "+21+21", "1700000001.5") // older on the cut side
	ask(cut, "both-3", "+30+30", "1700000005.5")
	want["both-3"] = ask("Holiday", "both-3", "+31+31", "1700000005.75") // newer by a fraction
	for i := range 10 {
		want[fmt.Sprintf("in-%d", i)] = ask(cut, fmt.Sprintf("in-%d", i), "+3+3", nowTime())
		want[fmt.Sprintf("out-%d", i)] = ask(names[i%len(names)], fmt.Sprintf("out-%d", i), "+4+4", nowTime())
	}

	// The partition is real: the other side does not know the cut side's
	// updates, and the other side converges without Hamilton.
	if got, err := herdtest.LookupAT(addrs["Welsh"], "in-0"); err == nil {
		t.Fatalf("during the partition Welsh knows in-0: %q", got)
	}
	outside := map[string]string{}
	for _, n := range names {
		if n != cut {
			outside[n] = addrs[n]
		}
	}
	waitEverywhere(t, outside, map[string]string{"early-alf": want["early-alf"], "both-2": want["both-2"]}, 10*time.Second)

	for _, l := range m.around(cut) {
		m.removeToxics(l)
	}
	waitEverywhere(t, addrs, want, 15*time.Second)
	waitLinks(t, h, names, true, 10*time.Second)
	waitFloodsEnd(t, h, names, 500*time.Millisecond, 10*time.Second)
}

// A slow link is not a dead one. With peers.dead_after at 1s, a link of
// 32 KB/s carries a 60 KiB record (a long client id, within the default
// limits.max_line_bytes) in about two seconds; it must get there, and so
// must every update behind it, however many times the link is re-opened.
func TestSlowLink_LargeRecordAndEverythingBehindItCross(t *testing.T) {
	m, h := startMeshHerd(t, herdtest.Options{Topology: pair, Configure: func(c *config.Config) { c.Limits.MaxClientIDBytes = 64 << 10 }})
	waitLinks(t, h, []string{"Front", "Back"}, true, 10*time.Second)
	for _, l := range m.links() {
		m.addToxic(l, "slow_up", "bandwidth", "upstream", 1, map[string]int{"rate": 32})
		m.addToxic(l, "slow_down", "bandwidth", "downstream", 1, map[string]int{"rate": 32})
	}
	c := h.Dial("Front")
	id := strings.Repeat("b", 60<<10)
	want := map[string]string{id: c.Ask(fmt.Sprintf("IAMAT %s +1+1 %s", id, nowTime()))}
	for i := range 5 {
		client := fmt.Sprintf("behind-%d", i)
		want[client] = c.Ask(fmt.Sprintf("IAMAT %s +1+1 %s", client, nowTime()))
	}
	// Back's node is asked directly: WHATSAT over TCP is not slowed, but it
	// would be the same answer.
	back := h.Member("Back").Node
	herdtest.Eventually(t, 15*time.Second, func() error {
		have := 0
		for client, line := range want {
			if rec, ok := back.Lookup([]byte(client)); ok && rec.Line == line {
				have++
			}
		}
		if have < len(want) {
			l := h.Member("Front").Server.Links()[0]
			return fmt.Errorf("BUG: Back has %d of Front's %d updates over a 32 KB/s link (Front's link to Back connected %d times, last error %q)", have, len(want), l.Reconnects, l.LastError)
		}
		return nil
	})
}
