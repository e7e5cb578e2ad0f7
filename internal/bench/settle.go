package bench

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/herd-dev/herd/internal/server"
)

// serverState is what the bench reads from one running server to tell
// whether the herd is connected and quiet: the same figures whether it
// reads them from a member in this process or from a server's admin API.
type serverState struct {
	name    string
	clients int
	head    uint64 // latest change sequence number
	links   []server.LinkStatus
}

// linksUp returns an error naming a link between two of the given servers
// that is not up in both directions; links to servers not given (stopped)
// do not count.
func linksUp(states []serverState) error {
	for _, st := range states {
		for _, l := range st.links {
			if running(states, l.Peer) && !(l.OutUp && l.InUp) {
				return fmt.Errorf("link %s-%s is not up", st.name, l.Peer)
			}
		}
	}
	return nil
}

// settled returns an error unless every given server has had its whole
// change feed acknowledged by the other given servers it links to and all
// hold the same number of clients, so that one measurement does not pay
// for the flooding of the one before.
func settled(states []serverState) error {
	for _, st := range states {
		for _, l := range st.links {
			if running(states, l.Peer) && l.Acked < st.head {
				return fmt.Errorf("%s has %d changes that %s has not acknowledged", st.name, st.head-l.Acked, l.Peer)
			}
		}
	}
	for _, st := range states[min(1, len(states)):] {
		if a, b := states[0].clients, st.clients; a != b {
			return fmt.Errorf("%s holds %d clients, %s %d", states[0].name, a, st.name, b)
		}
	}
	return nil
}

func running(states []serverState, name string) bool {
	return slices.ContainsFunc(states, func(st serverState) bool { return st.name == name })
}

// settleTimeout bounds settle; a herd that needs longer is broken.
const settleTimeout = 2 * time.Minute

// poll calls fn every interval until it returns nil, ctx ends or timeout
// passes; then it returns fn's last error.
func poll(ctx context.Context, timeout, interval time.Duration, fn func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: not within %v: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}
