package faulttest

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herd-dev/herd/internal/herd"
	"github.com/herd-dev/herd/internal/herdtest"
	"github.com/herd-dev/herd/internal/places"
	"github.com/herd-dev/herd/internal/server"
)

// gateJournal is a server.Store whose Commit waits until the test opens
// the gate: while it waits, nothing the server took is durable yet.
type gateJournal struct {
	called chan struct{} // gets a value when Commit is first entered
	open   chan struct{} // closed by release
	once   sync.Once
}

func newGateJournal() *gateJournal {
	return &gateJournal{called: make(chan struct{}, 1), open: make(chan struct{})}
}

func (j *gateJournal) Commit() error {
	select {
	case j.called <- struct{}{}:
	default:
	}
	<-j.open
	return nil
}

func (j *gateJournal) Err() error                        { return nil }
func (j *gateJournal) Epoch() uint64                     { return 1 }
func (j *gateJournal) RenewEpoch(uint64) (uint64, error) { return 1, nil }

func (j *gateJournal) release() { j.once.Do(func() { close(j.open) }) }

type noPlaces struct{}

func (noPlaces) Nearby(context.Context, places.Query) ([]byte, error) {
	return []byte(`{"html_attributions":[],"results":[],"status":"ZERO_RESULTS"}`), nil
}

// startGatedServer runs one server with no neighbors whose journal commits
// only when the test says so.
func startGatedServer(t *testing.T) (addr string, j *gateJournal) {
	t.Helper()
	j = newGateJournal()
	srv, err := server.New(server.Options{Name: "Solo", Node: herd.NewNode("Solo", nil), Places: noPlaces{}, Store: j})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		j.release()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String(), j
}

// The server promises that a client never sees the acknowledgement of an
// update that a crash could take back: the journal is committed before an AT
// reply leaves. Pipelined IAMATs must not change that.
func TestAck_NeverSentBeforeJournalCommit(t *testing.T) {
	for _, n := range []int{1, 20, 100, 1000} {
		t.Run(fmt.Sprintf("%d pipelined IAMATs", n), func(t *testing.T) {
			addr, j := startGatedServer(t)
			c := herdtest.DialAddr(t, addr)
			var b strings.Builder
			for i := range n {
				fmt.Fprintf(&b, "IAMAT gate-%d +1+1 %s\n", i, nowTime())
			}
			c.Send(b.String())
			select {
			case <-j.called:
			case <-time.After(5 * time.Second):
				t.Fatal("the server never committed its journal")
			}
			// Commit is held. Whatever the server sent before calling it is
			// in our socket already.
			if l, err := c.ReadLine(300 * time.Millisecond); err == nil || l != "" {
				t.Errorf("BUG: the client read %q before the journal commit returned; want no reply until the update is durable", l)
			}
			j.release()
			if t.Failed() {
				return
			}
			for i := range n {
				if l := c.Line(); !strings.HasPrefix(l, "AT Solo ") {
					t.Fatalf("reply %d = %q; want an AT line", i, l)
				}
			}
		})
	}
}
