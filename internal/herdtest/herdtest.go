// Package herdtest runs a whole herd inside one test process: every server
// on its own 127.0.0.1:0 listener with its own data directory, and an
// httptest stand-in for Google Places. Servers can be stopped, cut off and
// restarted on the same address, and a line client reads replies with
// deadlines.
package herdtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herd-dev/herd/internal/config"
	"github.com/herd-dev/herd/internal/member"
)

// SeedTopology is the seed paper's five-server herd.
var SeedTopology = map[string][]string{
	"Alford":   {"Hamilton", "Welsh"},
	"Ball":     {"Holiday", "Welsh"},
	"Hamilton": {"Alford", "Holiday"},
	"Holiday":  {"Ball", "Hamilton"},
	"Welsh":    {"Alford", "Ball"},
}

// Options shape a test herd. The zero value is the seed herd with the
// Google provider pointed at a stub.
type Options struct {
	Topology map[string][]string
	Secret   string
	// Configure, if set, edits the configuration before servers start.
	Configure func(*config.Config)
	// Dial, if set, replaces how servers reach each other (e.g. through a
	// fault-injecting proxy).
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// LogOutput receives every server's log; nil discards it.
	LogOutput io.Writer
	// Silent names servers of the topology that are not started: their
	// listeners are left for the test (see Herd.Listener), to play a
	// neighbor that accepts connections and never answers.
	Silent []string
}

// Herd is a running test herd.
type Herd struct {
	tb    testing.TB
	opt   Options
	Cfg   *config.Config
	Stub  *PlacesStub
	addrs map[string]string

	mu      sync.Mutex
	running map[string]*running
	silent  map[string]net.Listener
}

type running struct {
	m      *member.Member
	cancel context.CancelFunc
	done   chan error
}

// Start brings up every server of the herd and stops them at the end of the
// test.
func Start(tb testing.TB, opt Options) *Herd {
	tb.Helper()
	if opt.Topology == nil {
		opt.Topology = SeedTopology
	}
	h := &Herd{tb: tb, opt: opt, Stub: NewPlacesStub(tb), addrs: map[string]string{}, running: map[string]*running{}}
	dir := tb.TempDir()
	cfg := &config.Config{LogDir: dir + "/logs", DataDir: dir + "/data"}
	listeners := map[string]net.Listener{}
	for name, nbrs := range opt.Topology {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		listeners[name] = ln
		h.addrs[name] = ln.Addr().String()
		cfg.Servers = append(cfg.Servers, config.Server{Name: name, Addr: h.addrs[name], Neighbors: nbrs})
	}
	cfg.Places.Provider = config.ProviderGoogle
	cfg.Places.Google.URL = h.Stub.URL()
	cfg.Peers.Heartbeat = config.Duration(100 * time.Millisecond)
	cfg.Peers.DeadAfter = config.Duration(time.Second)
	if opt.Configure != nil {
		opt.Configure(cfg)
	}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		tb.Fatal(err)
	}
	h.Cfg = cfg
	h.silent = map[string]net.Listener{}
	for name, ln := range listeners {
		if slices.Contains(opt.Silent, name) {
			h.silent[name] = ln
			tb.Cleanup(func() { ln.Close() })
			continue
		}
		h.serve(name, ln)
	}
	tb.Cleanup(h.StopAll)
	return h
}

func (h *Herd) serve(name string, ln net.Listener) {
	h.tb.Helper()
	out := h.opt.LogOutput
	if out == nil {
		out = io.Discard
	}
	env := map[string]string{config.EnvPeerSecret: h.opt.Secret, config.EnvPlacesAPIKey: StubKey}
	m, err := member.Open(context.Background(), h.Cfg, name, member.Overrides{
		LogOutput: out,
		Dial:      h.opt.Dial,
		Env:       func(k string) string { return env[k] },
	})
	if err != nil {
		ln.Close()
		h.tb.Fatalf("open %s: %v", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{m: m, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- m.Serve(ctx, ln) }()
	h.mu.Lock()
	h.running[name] = r
	h.mu.Unlock()
}

// Listener returns the listener of a server named in Options.Silent.
func (h *Herd) Listener(name string) net.Listener { return h.silent[name] }

// Addr returns a server's address.
func (h *Herd) Addr(name string) string { return h.addrs[name] }

// Member returns a running server.
func (h *Herd) Member(name string) *member.Member {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r, ok := h.running[name]; ok {
		return r.m
	}
	h.tb.Fatalf("%s is not running", name)
	return nil
}

// Stop shuts a server down gracefully, as SIGTERM does.
func (h *Herd) Stop(name string) {
	h.tb.Helper()
	h.mu.Lock()
	r, ok := h.running[name]
	delete(h.running, name)
	h.mu.Unlock()
	if !ok {
		return
	}
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			h.tb.Errorf("%s: serve: %v", name, err)
		}
	case <-time.After(15 * time.Second):
		h.tb.Errorf("%s did not stop within 15s", name)
	}
	if err := r.m.Close(); err != nil {
		h.tb.Errorf("%s: close: %v", name, err)
	}
}

// Restart starts a stopped server again on its old address and data.
func (h *Herd) Restart(name string) {
	h.tb.Helper()
	var ln net.Listener
	var err error
	deadline := time.Now().Add(5 * time.Second)
	for ln, err = net.Listen("tcp", h.addrs[name]); err != nil && time.Now().Before(deadline); ln, err = net.Listen("tcp", h.addrs[name]) {
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		h.tb.Fatalf("restart %s: %v", name, err)
	}
	h.serve(name, ln)
}

// StopAll stops every running server.
func (h *Herd) StopAll() {
	h.mu.Lock()
	names := make([]string, 0, len(h.running))
	for n := range h.running {
		names = append(names, n)
	}
	h.mu.Unlock()
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Go(func() { h.Stop(n) })
	}
	wg.Wait()
}

// WaitQuiet waits until every running server's neighbors have acknowledged
// its whole change feed: nothing is in flight anywhere.
func (h *Herd) WaitQuiet(timeout time.Duration) {
	h.tb.Helper()
	Eventually(h.tb, timeout, func() error {
		h.mu.Lock()
		defer h.mu.Unlock()
		for name, r := range h.running {
			head := r.m.Node.Head()
			for _, l := range r.m.Server.Links() {
				if _, up := h.running[l.Peer]; up && (!l.OutUp || l.Acked != head) {
					return fmt.Errorf("%s's link to %s: up %v, acknowledged %d of %d", name, l.Peer, l.OutUp, l.Acked, head)
				}
			}
		}
		return nil
	})
}

// Eventually calls fn until it returns nil or the timeout passes, and then
// fails the test with fn's last error.
func Eventually(tb testing.TB, timeout time.Duration, fn func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("not within %v: %v", timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Client is a line client for one server.
type Client struct {
	tb   testing.TB
	Conn net.Conn
	r    *bufio.Reader
}

// Dial connects a client to a server.
func (h *Herd) Dial(name string) *Client {
	h.tb.Helper()
	return DialAddr(h.tb, h.addrs[name])
}

// DialAddr connects a client to an address.
func DialAddr(tb testing.TB, addr string) *Client {
	tb.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return &Client{tb: tb, Conn: c, r: bufio.NewReader(c)}
}

// Send writes raw bytes.
func (c *Client) Send(s string) {
	c.tb.Helper()
	c.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c.Conn, s); err != nil {
		c.tb.Fatal(err)
	}
}

// Line reads one line, without its newline, within 5 seconds.
func (c *Client) Line() string {
	c.tb.Helper()
	l, err := c.ReadLine(5 * time.Second)
	if err != nil {
		c.tb.Fatal(err)
	}
	return l
}

// ReadLine reads one line within timeout.
func (c *Client) ReadLine(timeout time.Duration) (string, error) {
	c.Conn.SetReadDeadline(time.Now().Add(timeout))
	l, err := c.r.ReadString('\n')
	if err != nil {
		return l, err
	}
	return strings.TrimSuffix(l, "\n"), nil
}

// Ask sends one line and returns the first reply line.
func (c *Client) Ask(line string) string {
	c.tb.Helper()
	c.Send(line + "\n")
	return c.Line()
}

// WhatsAt asks WHATSAT and returns the AT line and the JSON body, or the
// one-line reply and "" when it is not an AT line.
func (c *Client) WhatsAt(client string, radiusKm, limit int) (first, body string) {
	c.tb.Helper()
	first = c.Ask(fmt.Sprintf("WHATSAT %s %d %d", client, radiusKm, limit))
	if !strings.HasPrefix(first, "AT ") {
		return first, ""
	}
	return first, c.UntilBlank()
}

// UntilBlank reads lines up to the first empty one and returns them joined.
func (c *Client) UntilBlank() string {
	c.tb.Helper()
	var lines []string
	for {
		l := c.Line()
		if l == "" {
			return strings.Join(lines, "\n")
		}
		lines = append(lines, l)
	}
}

// LookupAT asks a server what it knows of client without failing the test:
// the AT line, or an error saying what came instead.
func LookupAT(addr, client string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := fmt.Fprintf(c, "WHATSAT %s 1 1\n", client); err != nil {
		return "", err
	}
	l, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	l = strings.TrimSuffix(l, "\n")
	if !strings.HasPrefix(l, "AT ") {
		return "", errors.New(l)
	}
	return l, nil
}

// SyncBuffer collects what servers write (their logs, say) for a test to
// read while they go on writing.
type SyncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// StubKey is the API key the test herd's servers send to the stub.
const StubKey = "test-key"

// PlacesStub stands in for the legacy Nearby Search API.
type PlacesStub struct {
	srv *httptest.Server

	mu      sync.Mutex
	queries []map[string]string
	delay   time.Duration
}

// NewPlacesStub starts a stub that answers 20 results around any point.
func NewPlacesStub(tb testing.TB) *PlacesStub {
	s := &PlacesStub{}
	s.srv = httptest.NewServer(http.HandlerFunc(s.handle))
	tb.Cleanup(s.srv.Close)
	return s
}

// URL is the stub's Nearby Search address.
func (s *PlacesStub) URL() string { return s.srv.URL + "/maps/api/place/nearbysearch/json" }

// SetDelay makes every answer wait this long (or until the request is
// cancelled).
func (s *PlacesStub) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Queries returns the query parameters of every request so far.
func (s *PlacesStub) Queries() []map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]string(nil), s.queries...)
}

func (s *PlacesStub) handle(w http.ResponseWriter, r *http.Request) {
	q := map[string]string{}
	for k, v := range r.URL.Query() {
		q[k] = v[0]
	}
	s.mu.Lock()
	s.queries = append(s.queries, q)
	delay := s.delay
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if q["key"] != StubKey {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, "{\n   \"error_message\" : \"The provided API key is invalid.\",\n   \"html_attributions\" : [],\n   \"results\" : [],\n   \"status\" : \"REQUEST_DENIED\"\n}\n")
		return
	}
	var b strings.Builder
	b.WriteString("{\n   \"html_attributions\" : [],\n   \"next_page_token\" : \"stub-token\",\n   \"results\" : [\n")
	for i := range 20 {
		if i > 0 {
			b.WriteString(",\n")
		}
		fmt.Fprintf(&b, "      {\n         \"geometry\" : {\n            \"location\" : {\n               \"lat\" : 34.07,\n               \"lng\" : -118.44\n            }\n         },\n\n\n         \"name\" : \"Place %d\",\n         \"place_id\" : \"stub-%d\",\n         \"x_unknown_field\" : {\"kept\": [1, 2]},\n         \"vicinity\" : \"%s\"\n      }", i, i, q["location"])
	}
	b.WriteString("\n   ],\n   \"status\" : \"OK\"\n}\n\n\n")
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, b.String())
}
