// Package server is the network edge of a herd server: it accepts client and
// peer connections on one TCP address, runs the client protocol against a
// herd.Node, asks the places provider for WHATSAT, and keeps one outbound
// link to every neighbor that streams the node's change feed.
//
// The files, edge to core:
//   - server.go: Serve, the accept loop, admission, shutdown;
//   - conn.go: an accepted connection: reading lines, sending whole replies;
//   - client.go: the client commands, against the node and places;
//   - outbound.go: this server's link to each neighbor, streaming the
//     change feed (feedSender) and reading acknowledgements;
//   - inbound.go: a neighbor's link to this server, applying its feed
//     (feedReceiver) and acknowledging it;
//   - link.go: what the server knows of each neighbor's links.
//
// Goroutines, and how each one ends:
//   - Serve's accept loop (a plain goroutine that Serve waits for): ends
//     when ctx is cancelled, which closes the listener.
//   - one per accepted connection: ends when the client closes, on an I/O
//     error or deadline, or when shutdown expires its read deadline.
//   - one per neighbor, redialing its outbound link: ends when ctx is
//     cancelled, which closes the link's connection.
//   - one acknowledgement reader per outbound link: ends when the link's
//     connection closes.
//   - one acknowledgement writer per inbound link: ends with the link.
//
// All but the accept loop start through Server.goSafe, which refuses once
// shutdown has begun; Serve waits for all of them before it returns.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/herd-dev/herd/internal/herd"
	"github.com/herd-dev/herd/internal/logthrottle"
	"github.com/herd-dev/herd/internal/peer"
	"github.com/herd-dev/herd/internal/places"
)

// Store is the durable store behind the node: a server commits it before
// it acknowledges an update, and presents its epoch to neighbors.
type Store interface {
	// Commit returns once every entry the node journaled so far is written
	// to the operating system (and fsynced, if so configured).
	Commit() error
	// Epoch identifies the data directory to neighbors.
	Epoch() uint64
	// RenewEpoch gives the data directory a new epoch, unless it no longer
	// has the epoch used, and returns the current one. Neighbors keep
	// their cursors per epoch, so under a new one each of them reads the
	// whole change feed.
	RenewEpoch(used uint64) (uint64, error)
	// Err is the journal's lasting failure, or nil: once a write or an
	// fsync has failed, nothing more becomes durable.
	Err() error
}

// Options configures a Server. Name, Node and Places are required.
type Options struct {
	Name string
	Node *herd.Node
	// Neighbors maps each neighbor's name to its address. Links are dialed
	// to these addresses and inbound peers must be among them.
	Neighbors map[string]string
	Places    places.Provider
	// PlacesMayBlock says that a lookup can take long (a remote API): the
	// replies before a WHATSAT are then sent before its lookup starts, and
	// the lookup is given PlacesTimeout. A lookup that cannot block (the
	// offline data) gets no deadline, which would only cost a timer.
	PlacesMayBlock bool
	// Store is committed before a client sees the reply to an IAMAT that
	// changed the node. Nil means no durability (and epoch 0).
	Store Store
	// Secret, when not empty, is the herd's shared peer secret.
	Secret []byte
	// TLS, when not nil, secures peer links: the server presents its
	// certificate and verifies its neighbors' against the CA.
	TLS *tls.Config

	PlacesTimeout  time.Duration // default 10s
	MaxLineBytes   int           // default 64 KiB
	IdleTimeout    time.Duration // default 10 min
	MaxConnections int           // default 10000
	// MaxConnectionsPerIP caps the client connections from one address;
	// default 1000. Connections past it must open a peer link.
	MaxConnectionsPerIP int
	WriteTimeout        time.Duration // a client that reads nothing this long is dropped; default 30s
	// LongLineMemory bounds the bytes that lines still arriving past a
	// connection's read buffer hold, all connections together; a line
	// that would pass it is cut there. Default 64 MiB.
	LongLineMemory int
	Heartbeat      time.Duration // default 1s
	DeadAfter      time.Duration // default 5s

	Logger *slog.Logger
	// Metrics, if not nil, receives per-command measurements.
	Metrics Metrics
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Dial opens peer connections; nil means a net.Dialer.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
}

func (o *Options) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.PlacesTimeout, 10*time.Second)
	def(&o.IdleTimeout, 10*time.Minute)
	def(&o.WriteTimeout, 30*time.Second)
	def(&o.Heartbeat, time.Second)
	def(&o.DeadAfter, 5*time.Second)
	if o.MaxLineBytes <= 0 {
		o.MaxLineBytes = 64 << 10
	}
	if o.LongLineMemory <= 0 {
		o.LongLineMemory = 64 << 20
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = 10000
	}
	if o.MaxConnectionsPerIP <= 0 {
		o.MaxConnectionsPerIP = 1000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Metrics == nil {
		o.Metrics = noMetrics{}
	}
	if o.Store == nil {
		o.Store = memoryStore{}
	}
	if o.Dial == nil {
		d := &net.Dialer{Timeout: 3 * time.Second, KeepAlive: 15 * time.Second}
		o.Dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
}

// memoryStore is the Store of a server without durability.
type memoryStore struct{}

func (memoryStore) Commit() error { return nil }
func (memoryStore) Err() error    { return nil }
func (memoryStore) Epoch() uint64 { return 0 }
func (memoryStore) RenewEpoch(uint64) (uint64, error) {
	return 0, errors.New("server: no store to renew")
}

// Server serves one herd member.
type Server struct {
	opt  Options
	node *herd.Node
	log  *slog.Logger

	// links has an entry per neighbor; it does not change after New.
	links    map[string]*link
	acceptor *peer.Acceptor

	mu       sync.Mutex
	stopping bool        // guarded by mu, so goSafe cannot race shutdown
	stopped  atomic.Bool // the same, for the connection loops to poll
	conns    map[net.Conn]struct{}
	wg       sync.WaitGroup

	admission *admission
	stats     counters
	// longLines is what lines still arriving past their connection's read
	// buffer hold, in bytes: at most LongLineMemory.
	longLines atomic.Int64

	// Warnings that could come with every connection or update, logged at
	// most once a minute each.
	refusedWarnings, tableFullWarnings, notDurableWarnings, longLineWarnings, commitErrors logthrottle.Throttle

	serving atomic.Bool
}

// New returns a server; Serve runs it.
func New(opt Options) (*Server, error) {
	if opt.Name == "" || opt.Node == nil || opt.Places == nil {
		return nil, errors.New("server: Name, Node and Places are required")
	}
	opt.setDefaults()
	s := &Server{
		opt:       opt,
		node:      opt.Node,
		log:       opt.Logger,
		conns:     make(map[net.Conn]struct{}),
		links:     make(map[string]*link),
		admission: newAdmission(opt.MaxConnections, opt.MaxConnectionsPerIP),
	}
	for name, addr := range opt.Neighbors {
		s.links[name] = &link{peer: name, addr: addr, propagation: opt.Metrics.Propagation(name)}
	}
	s.acceptor = peer.NewAcceptor(opt.Name, opt.Secret, func(name string) bool { return s.links[name] != nil })
	return s, nil
}

// NotReady returns why the server should not be sent clients yet, or ""
// when it should: it is accepting connections, and, unless it has no
// neighbors, it streams its updates to at least one neighbor and receives
// at least one neighbor's, so that what clients tell it reaches the herd and
// what it answers is not cut off from the herd.
func (s *Server) NotReady() string {
	if !s.serving.Load() {
		return "not accepting connections"
	}
	if len(s.links) == 0 {
		return ""
	}
	out, in := 0, 0
	for _, l := range s.links {
		if l.outUp.Load() {
			out++
		}
		if l.inUp.Load() {
			in++
		}
	}
	switch {
	case out == 0 && in == 0:
		return fmt.Sprintf("no peer link is up (0 of %d neighbors)", len(s.links))
	case out == 0:
		return fmt.Sprintf("no link to a neighbor is up (0 of %d), so updates taken here do not spread", len(s.links))
	case in == 0:
		return fmt.Sprintf("no neighbor's link to this server is up (0 of %d), so nothing from the herd arrives", len(s.links))
	}
	return ""
}

// Name returns the server's name.
func (s *Server) Name() string { return s.opt.Name }

// Stats returns the server's counters.
func (s *Server) Stats() Counters { return s.stats.snapshot() }

// Links returns a copy of every link's status, sorted by neighbor.
func (s *Server) Links() []LinkStatus {
	head := s.node.Head()
	out := make([]LinkStatus, 0, len(s.links))
	for _, l := range s.links {
		out = append(out, l.status(head))
	}
	slices.SortFunc(out, func(a, b LinkStatus) int { return strings.Compare(a.Peer, b.Peer) })
	return out
}

// goSafe starts fn on a new goroutine tracked by the server's WaitGroup,
// unless shutdown has begun.
func (s *Server) goSafe(fn func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn()
	}()
	return true
}

// Serve accepts connections on ln and dials the neighbors until ctx is
// cancelled. Then it stops accepting, lets each connection finish the
// command it is on, closes every connection and link, commits the journal,
// and returns once every goroutine it started has ended; connections still
// busy after a 5 s grace period are closed (a places lookup under way may
// still finish first, within places.timeout).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.log.Info("serving", "addr", ln.Addr().String(), "neighbors", len(s.opt.Neighbors),
		"peer_auth", len(s.opt.Secret) > 0, "peer_tls", s.opt.TLS != nil)
	s.serving.Store(true)
	defer s.serving.Store(false)
	for _, l := range s.links {
		s.goSafe(func() { s.runLink(ctx, l) })
	}

	acceptDone := make(chan error, 1)
	go func() { acceptDone <- s.acceptLoop(ctx, ln) }()
	var err error
	select {
	case <-ctx.Done():
		ln.Close()
		<-acceptDone
	case err = <-acceptDone:
		ln.Close()
		cancel()
	}
	s.shutdown()
	return err
}

func (s *Server) acceptLoop(ctx context.Context, ln net.Listener) error {
	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isResourceShortage(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "err", err, "in", backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("server: accept: %w", err)
		}
		backoff = 0
		p, closed, refused := s.admission.admit(conn)
		if closed != nil {
			s.refuse(closed)
		}
		if refused {
			s.refuse(conn)
			continue
		}
		if !s.track(conn) || !s.goSafe(func() {
			defer s.admission.release(p)
			defer s.untrack(conn)
			s.serveConn(ctx, conn, p)
		}) {
			s.admission.release(p)
			s.untrack(conn)
			return nil
		}
	}
}

// refuse counts a connection refused for want of room (it is closed
// already), and says so in the log at most once a minute.
func (s *Server) refuse(conn net.Conn) {
	s.stats.ConnsRefused.Add(1)
	if ok, suppressed := s.refusedWarnings.Allow(time.Now()); ok {
		s.log.Warn("connection refused: too many connections (limits.max_connections, limits.max_connections_per_ip)",
			"remote", conn.RemoteAddr().String(), "max", s.opt.MaxConnections, "max_per_ip", s.opt.MaxConnectionsPerIP,
			"refused_since_last_warning", suppressed)
	}
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		c.Close()
		return false
	}
	s.conns[c] = struct{}{}
	s.stats.ConnsOpen.Add(1)
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[c]; ok {
		delete(s.conns, c)
		s.stats.ConnsOpen.Add(-1)
	}
	c.Close()
}

// isResourceShortage reports whether accept failed for want of file
// descriptors, buffers or memory: conditions that pass.
func isResourceShortage(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

// shutdownGrace bounds how long shutdown waits for connections to finish.
const shutdownGrace = 5 * time.Second

func (s *Server) shutdown() {
	s.mu.Lock()
	s.stopping = true
	s.stopped.Store(true)
	// Wake connections blocked in a read so they see shutdown; one in the
	// middle of a command finishes it and its reply is flushed.
	for c := range s.conns {
		c.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(shutdownGrace):
		s.log.Warn("shutdown: connections did not finish in time; closing them")
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		<-done
	}
	s.commit()
	s.log.Info("stopped")
}

// commit makes what the node journaled durable before a reply leaves, and
// reports whether it did. A failure leaves the update in memory and
// flooding, but not durable here; it is logged once a minute at most, since
// on a full disk every update fails alike.
func (s *Server) commit() bool {
	err := s.opt.Store.Commit()
	if err != nil {
		if ok, suppressed := s.commitErrors.Allow(time.Now()); ok {
			s.log.Error("journal commit failed: updates are not durable on this server", "err", err, "failed_since_last_error", suppressed)
		}
	}
	return err == nil
}
