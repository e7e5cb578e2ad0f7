package admin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/herd-dev/herd/internal/server"
)

// healthTimeout bounds the self-check behind GET /healthz, well within the
// one second a Kubernetes probe waits by default.
const healthTimeout = 500 * time.Millisecond

// liveness is the state of the checks behind GET /healthz.
type liveness struct {
	// checks lets requests that arrive during a check share its result.
	checks singleflight.Group
	// tableSince is when the node probe still waiting for the client
	// table's lock started; nil when none waits. A node whose lock is never
	// released strands one probe, not one per request.
	tableSince atomic.Pointer[time.Time]
}

// alive checks, within healthTimeout, that the server still makes
// progress: that the client table's lock can be taken (no command or link
// holds it for good) and that the client listener accepts a connection and
// answers a line on it (the accept loop and connection handling run). It
// returns why not, or nil.
func (s *Server) alive() error {
	_, err, _ := s.live.checks.Do("alive", func() (any, error) {
		ctx, cancel := context.WithTimeout(context.Background(), healthTimeout)
		defer cancel()
		tableDone := make(chan error, 1)
		go func() { tableDone <- s.tableAlive(ctx) }()
		return nil, errors.Join(<-tableDone, s.listenerAlive(ctx))
	})
	return err
}

// tableAlive takes the client table's lock once, waiting until ctx ends.
func (s *Server) tableAlive(ctx context.Context) error {
	start := time.Now()
	if !s.live.tableSince.CompareAndSwap(nil, &start) {
		if since := s.live.tableSince.Load(); since != nil {
			return fmt.Errorf("the client table has been locked for %v", time.Since(*since).Round(time.Millisecond))
		}
		return nil // the probe that was waiting has just finished
	}
	taken := make(chan struct{})
	go func() {
		s.opt.Node.Len() // takes the lock
		s.live.tableSince.Store(nil)
		close(taken)
	}()
	select {
	case <-taken:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("the client table stayed locked for the whole check (%v)", healthTimeout)
	}
}

// listenerAlive sends a probe line to the client listener and waits for an
// answer until ctx ends. A server that closes the probe's connection at
// once (because it is full) has still accepted it, and counts as alive.
func (s *Server) listenerAlive(ctx context.Context) error {
	addr := probeAddr(s.opt.Addr)
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("the client listener at %s does not take connections: %w", addr, rootCause(err))
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	}
	if _, err := io.WriteString(conn, server.ProbeLine+"\n"); err != nil {
		return fmt.Errorf("the client listener at %s took a connection but not a line: %w", addr, rootCause(err))
	}
	reply, err := bufio.NewReader(conn).ReadString('\n')
	switch {
	case err == nil && reply == "? "+server.ProbeLine+"\n", errors.Is(err, io.EOF) && reply == "":
		return nil
	case err != nil && (ctx.Err() != nil || os.IsTimeout(err)):
		return fmt.Errorf("the client listener at %s did not answer a line within %v", addr, healthTimeout)
	case err != nil:
		return fmt.Errorf("the client listener at %s did not answer a line: %w", addr, rootCause(err))
	}
	return fmt.Errorf("the client listener at %s answered %q, not a herd server's reply", addr, reply)
}

// probeAddr is where a server reaches its own client listener: its address,
// with an unspecified host (0.0.0.0, ::, none) replaced by localhost.
func probeAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		return net.JoinHostPort("localhost", port)
	}
	return addr
}
