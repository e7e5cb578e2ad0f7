package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/herd-dev/herd/internal/herd"
	"github.com/herd-dev/herd/internal/wire"
)

// take stores an IAMAT from client at node, with a client time of sec.
func take(t testing.TB, node *herd.Node, client string, sec int) {
	t.Helper()
	m, err := wire.Parse(fmt.Appendf(nil, "IAMAT %s +34.068930-118.445127 %d.5", client, sec))
	if err != nil {
		t.Fatal(err)
	}
	node.IAMAT(wire.UnixTime(time.Now().UnixNano()), &m)
}

// sseEvent is one Server-Sent Event.
type sseEvent struct{ name, id, data string }

// openMonitor starts GET /api/monitor on a server of node alone, with the
// Last-Event-ID header if lastID is not empty, and returns its events.
func openMonitor(t *testing.T, node *herd.Node, lastID string) <-chan sseEvent {
	t.Helper()
	s := &Server{opt: Options{Name: "A", Node: node}, monitors: make(chan struct{}, maxMonitors)}
	srv := httptest.NewServer(http.HandlerFunc(s.handleMonitor))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("GET /api/monitor: %s, %s", resp.Status, ct)
	}
	events := make(chan sseEvent, 100_000)
	go func() {
		defer resp.Body.Close()
		defer close(events)
		var ev sseEvent
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			field, value, _ := strings.Cut(sc.Text(), ": ")
			switch field {
			case "event":
				ev.name = value
			case "id":
				ev.id = value
			case "data":
				ev.data = value
			case "":
				if ev.name != "" {
					events <- ev
				}
				ev = sseEvent{}
			}
		}
	}()
	return events
}

// next returns the next event, failing the test after a few seconds.
func next(t *testing.T, events <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatal("the stream ended")
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
	}
	return sseEvent{}
}

func decode[T any](t *testing.T, ev sseEvent) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(ev.data), &v); err != nil {
		t.Fatalf("%s event data %q: %v", ev.name, ev.data, err)
	}
	return v
}

func TestMonitorStreamsNewUpdatesOnly(t *testing.T) {
	node := herd.NewNode("A", nil)
	take(t, node, "before", 1)
	events := openMonitor(t, node, "")
	start := next(t, events)
	if st := decode[MonitorStart](t, start); start.name != "start" || st.Server != "A" || st.Head != node.Head() {
		t.Fatalf("first event %+v, want start at head %d", start, node.Head())
	}
	for i := range 3 {
		take(t, node, fmt.Sprintf("kiwi%d", i), 2)
	}
	take(t, node, "kiwi0", 1) // older than the stored one: not stored, not streamed
	for i := range 3 {
		ev := next(t, events)
		u := decode[Update](t, ev)
		want := fmt.Sprintf("kiwi%d", i)
		if ev.name != "update" || u.Client != want || ev.id != fmt.Sprint(u.Seq) || !strings.HasPrefix(u.Line, "AT A ") || u.From != "" {
			t.Errorf("event %d: %+v (%+v), want the update of %s", i, ev, u, want)
		}
	}
	take(t, node, "last", 3)
	if u := decode[Update](t, next(t, events)); u.Client != "last" {
		t.Errorf("after the stale IAMAT the stream sent %+v, want the update of last", u)
	}
}

func TestMonitorResumesOrSkipsAhead(t *testing.T) {
	node := herd.NewNode("A", nil)
	for i := range monitorMaxBehind + 100 {
		take(t, node, fmt.Sprint("c", i), 1)
	}
	head := node.Head()

	events := openMonitor(t, node, fmt.Sprint(head-2))
	next(t, events) // start
	for _, want := range []uint64{head - 1, head} {
		if ev := next(t, events); ev.name != "update" || ev.id != fmt.Sprint(want) {
			t.Errorf("resumed stream sent %+v, want the update with id %d", ev, want)
		}
	}

	events = openMonitor(t, node, fmt.Sprint(head-monitorMaxBehind-50))
	next(t, events) // start
	ev := next(t, events)
	if sk := decode[MonitorSkipped](t, ev); ev.name != "skipped" || sk.To != head || sk.From != head-monitorMaxBehind-50 {
		t.Errorf("a stream too far behind sent %+v, want skipped to %d", ev, head)
	}
	take(t, node, "after", 2)
	if u := decode[Update](t, next(t, events)); u.Client != "after" {
		t.Errorf("after skipping, the stream sent %+v; want the next update", u)
	}
}

func TestMonitorLimit(t *testing.T) {
	s := &Server{opt: Options{Name: "A", Node: herd.NewNode("A", nil)}, monitors: make(chan struct{}, maxMonitors)}
	for range maxMonitors {
		s.monitors <- struct{}{}
	}
	rec := httptest.NewRecorder()
	s.handleMonitor(rec, httptest.NewRequest(http.MethodGet, "/api/monitor", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("monitor %d: %d, want 503", maxMonitors+1, rec.Code)
	}
}
