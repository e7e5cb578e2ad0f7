package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herd-dev/herd/internal/config"
	"github.com/herd-dev/herd/internal/member"
)

// localHerd is the seed's five-server herd running in this process, each
// server on its own free loopback port with its own data directory and log
// file, and the offline places provider: the configuration a fresh
// `herd up` runs, moved to free ports and a temporary directory.
type localHerd struct {
	cfg     *config.Config
	names   []string // in configuration order
	env     map[string]string
	traffic *traffic

	mu      sync.Mutex
	running map[string]*localMember
}

type localMember struct {
	m      *member.Member
	cancel context.CancelFunc
	done   chan error
}

// Bounds on starting and stopping a server.
const (
	stopTimeout   = 20 * time.Second
	listenTimeout = 5 * time.Second
	readyTimeout  = time.Minute
)

// startLocalHerd starts the herd with its files under dir. With peerAuth,
// servers share a random HERD_PEER_SECRET, as a production herd should.
func startLocalHerd(ctx context.Context, dir string, peerAuth bool) (*localHerd, error) {
	cfg := config.Default()
	cfg.LogDir = filepath.Join(dir, "logs")
	cfg.DataDir = filepath.Join(dir, "data")
	h := &localHerd{cfg: cfg, env: map[string]string{}, running: map[string]*localMember{}}
	if peerAuth {
		secret := make([]byte, 16)
		rand.Read(secret)
		h.env[config.EnvPeerSecret] = hex.EncodeToString(secret)
	}
	listeners := make([]net.Listener, len(cfg.Servers))
	closeListeners := func() {
		for _, ln := range listeners {
			if ln != nil {
				ln.Close()
			}
		}
	}
	for i := range cfg.Servers {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			closeListeners()
			return nil, fmt.Errorf("bench: %w", err)
		}
		listeners[i] = ln
		cfg.Servers[i].Addr = ln.Addr().String()
		cfg.Servers[i].Admin = "" // the built-in herd's fixed admin ports may be taken
		h.names = append(h.names, cfg.Servers[i].Name)
	}
	if err := cfg.Validate(); err != nil {
		closeListeners()
		return nil, fmt.Errorf("bench: %w", err)
	}
	h.traffic = newTraffic(cfg)
	for i, name := range h.names {
		ln := listeners[i]
		listeners[i] = nil // from here on, serve owns it
		if _, err := h.serve(ctx, name, func() (net.Listener, error) { return ln, nil }); err != nil {
			ln.Close()
			closeListeners()
			h.close()
			return nil, err
		}
	}
	if err := h.waitLinks(ctx); err != nil {
		h.close()
		return nil, err
	}
	return h, nil
}

// serve opens the member called name and serves it on the listener that
// listen returns, as `herd serve` does: the store is recovered before the
// address is bound, so neighbors cannot connect while it recovers. It
// returns how long opening (recovering the store) took. The member's
// goroutines carry the profiler label role=herd.
func (h *localHerd) serve(ctx context.Context, name string, listen func() (net.Listener, error)) (time.Duration, error) {
	start := time.Now()
	m, err := member.Open(ctx, h.cfg, name, member.Overrides{
		Dial: h.traffic.dialer(name),
		Env:  func(k string) string { return h.env[k] },
	})
	if err != nil {
		return 0, fmt.Errorf("bench: open %s: %w", name, err)
	}
	opened := time.Since(start)
	ln, err := listen()
	if err != nil {
		m.Close()
		return 0, fmt.Errorf("bench: %s: %w", name, err)
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	lm := &localMember{m: m, cancel: cancel, done: make(chan error, 1)}
	go pprof.Do(sctx, pprof.Labels("role", "herd"), func(sctx context.Context) { // ends when stop cancels sctx
		lm.done <- m.Serve(sctx, ln)
	})
	h.mu.Lock()
	h.running[name] = lm
	h.mu.Unlock()
	return opened, nil
}

// addrs returns the servers' addresses in configuration order.
func (h *localHerd) addrs() []string {
	out := make([]string, len(h.cfg.Servers))
	for i, s := range h.cfg.Servers {
		out[i] = s.Addr
	}
	return out
}

// addr returns the address of the server called name.
func (h *localHerd) addr(name string) string {
	s, _ := h.cfg.Server(name)
	return s.Addr
}

// member returns a running server, or nil.
func (h *localHerd) member(name string) *member.Member {
	h.mu.Lock()
	defer h.mu.Unlock()
	if lm, ok := h.running[name]; ok {
		return lm.m
	}
	return nil
}

// members returns the running servers in configuration order.
func (h *localHerd) members() []*member.Member {
	var out []*member.Member
	for _, n := range h.names {
		if m := h.member(n); m != nil {
			out = append(out, m)
		}
	}
	return out
}

// stop shuts a server down gracefully, as SIGTERM does, and closes its
// store.
func (h *localHerd) stop(name string) error {
	h.mu.Lock()
	lm, ok := h.running[name]
	delete(h.running, name)
	h.mu.Unlock()
	if !ok {
		return nil
	}
	lm.cancel()
	var err error
	select {
	case err = <-lm.done:
	case <-time.After(stopTimeout):
		err = fmt.Errorf("bench: %s did not stop within %v", name, stopTimeout)
	}
	return errors.Join(err, lm.m.Close())
}

// restart starts a stopped server again on its address and data. It
// returns how long opening (recovering the store) took.
func (h *localHerd) restart(ctx context.Context, name string) (time.Duration, error) {
	addr := h.addr(name)
	return h.serve(ctx, name, func() (net.Listener, error) {
		deadline := time.Now().Add(listenTimeout)
		for {
			ln, err := net.Listen("tcp", addr)
			if err == nil || time.Now().After(deadline) {
				return ln, err
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// close stops every server.
func (h *localHerd) close() error {
	var wg sync.WaitGroup
	errs := make([]error, len(h.names))
	for i, n := range h.names {
		wg.Go(func() { errs[i] = h.stop(n) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// states reads the running servers' figures, in configuration order.
func (h *localHerd) states() []serverState {
	var out []serverState
	for _, m := range h.members() {
		out = append(out, serverState{name: m.Name, clients: m.Node.Len(), head: m.Node.Head(), links: m.Server.Links()})
	}
	return out
}

// waitLinks waits until every running server's links to running neighbors
// are up in both directions.
func (h *localHerd) waitLinks(ctx context.Context) error {
	return poll(ctx, readyTimeout, 5*time.Millisecond, func() error { return linksUp(h.states()) })
}

// settle waits until the running servers are quiet (see settled).
func (h *localHerd) settle(ctx context.Context) error {
	return poll(ctx, settleTimeout, 10*time.Millisecond, func() error { return settled(h.states()) })
}

// traffic counts the bytes on every peer connection, by the pair of
// servers it joins.
type traffic struct {
	names map[string]string // address -> server name
	mu    sync.Mutex
	links map[[2]string]*linkBytes // {dialer, dialed}
}

// linkBytes counts one direction pair, as seen by the dialer.
type linkBytes struct {
	sent, received atomic.Uint64
}

func newTraffic(cfg *config.Config) *traffic {
	t := &traffic{names: map[string]string{}, links: map[[2]string]*linkBytes{}}
	for _, s := range cfg.Servers {
		t.names[s.Addr] = s.Name
	}
	return t
}

func (t *traffic) link(from, to string) *linkBytes {
	t.mu.Lock()
	defer t.mu.Unlock()
	lb, ok := t.links[[2]string{from, to}]
	if !ok {
		lb = &linkBytes{}
		t.links[[2]string{from, to}] = lb
	}
	return lb
}

// dialer returns the server from's peer dialer: the server's default,
// counting bytes.
func (t *traffic) dialer(from string) func(ctx context.Context, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 3 * time.Second, KeepAlive: 15 * time.Second}
	return func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: c, b: t.link(from, t.names[addr])}, nil
	}
}

// into returns the bytes server name has received over peer links so far:
// what its dialers wrote to it, and what it read on the links it dialed.
func (t *traffic) into(name string) uint64 { return t.total(name, false) }

// outOf returns the bytes server name has sent over peer links so far.
func (t *traffic) outOf(name string) uint64 { return t.total(name, true) }

// total adds up name's peer traffic in one direction. A link [a, b] is
// dialed by a: a sends what the link wrote and receives what it read.
func (t *traffic) total(name string, sent bool) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var n uint64
	for k, lb := range t.links {
		switch {
		case k[0] == name && sent, k[1] == name && !sent:
			n += lb.sent.Load()
		case k[0] == name, k[1] == name:
			n += lb.received.Load()
		}
	}
	return n
}

// countingConn counts the bytes read and written through a connection.
type countingConn struct {
	net.Conn
	b *linkBytes
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.b.received.Add(uint64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.b.sent.Add(uint64(n))
	return n, err
}
