package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/herd-dev/herd/internal/herd"
)

// Limits of GET /api/monitor.
const (
	// maxMonitors bounds the streams open at once on one server; each
	// costs a goroutine and a wake-up per change.
	maxMonitors = 32
	// monitorBatch is the most records read from the change feed at once.
	monitorBatch = 512
	// monitorMaxBehind is how far (in sequence numbers) a stream may fall
	// behind the server's head before it skips to the head: a stream never
	// makes the server do more than it can send.
	monitorMaxBehind = 10_000
	// monitorWriteTimeout drops a subscriber that does not read: a write
	// that waits this long ends its stream.
	monitorWriteTimeout = 10 * time.Second
	// monitorKeepAlive is how often an idle stream sends a comment, so
	// that proxies and the subscriber see it is alive.
	monitorKeepAlive = 15 * time.Second
)

// MonitorStart is the data of a stream's first event, "start".
type MonitorStart struct {
	Server string `json:"server"` // the server streaming
	Head   uint64 `json:"head"`   // the sequence number the stream starts after
}

// MonitorSkipped is the data of a "skipped" event: the stream fell too far
// behind and jumped from one sequence number to another, leaving out the
// updates between.
type MonitorSkipped struct {
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
}

// handleMonitor serves GET /api/monitor: the updates the server stores,
// as Server-Sent Events, from the moment of the request on.
//
//	event: start    data: MonitorStart
//	event: update   data: Update (id: its sequence number)
//	event: skipped  data: MonitorSkipped
//
// It reads the server's change feed with a cursor, like a peer link, so a
// stream queues nothing: a slow subscriber sees each changed client once,
// with its newest location; one that falls monitorMaxBehind behind skips to
// the head; one that stops reading is dropped after monitorWriteTimeout. A
// reconnecting EventSource resumes after its Last-Event-ID (skipping ahead
// the same way). At most maxMonitors streams run at once.
func (s *Server) handleMonitor(w http.ResponseWriter, r *http.Request) {
	select {
	case s.monitors <- struct{}{}:
		defer func() { <-s.monitors }()
	default:
		http.Error(w, fmt.Sprintf("admin: %d monitors are open already; try again later", maxMonitors), http.StatusServiceUnavailable)
		return
	}
	node := s.opt.Node
	changed, stop := node.Watch() // before reading the head, so no change is missed
	defer stop()
	after := node.Head()
	if last, err := strconv.ParseUint(r.Header.Get("Last-Event-ID"), 10, 64); err == nil && last <= after {
		after = last // and the loop skips ahead if that is too far behind
	}

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // tells nginx not to hold events back
	stream := &eventStream{w: w, rc: http.NewResponseController(w)}
	if stream.begin() != nil {
		return
	}
	stream.event("start", "", MonitorStart{Server: s.opt.Name, Head: after})
	if stream.flush() != nil {
		return
	}

	keepAlive := time.NewTicker(monitorKeepAlive)
	defer keepAlive.Stop()
	var recs []*herd.Record
	for {
		var skipped *MonitorSkipped
		if head := node.Head(); head-after > monitorMaxBehind {
			skipped = &MonitorSkipped{From: after, To: head}
			after = head
		}
		var next uint64
		recs, next = node.Changes(recs[:0], after, monitorBatch, "")
		if skipped != nil || next != after {
			if stream.begin() != nil {
				return
			}
			if skipped != nil {
				stream.event("skipped", "", skipped)
			}
			for _, rec := range recs {
				stream.event("update", strconv.FormatUint(rec.Seq, 10),
					Update{Seq: rec.Seq, Client: rec.Client(), Line: rec.Line, From: node.From(rec)})
			}
			after = next
			if stream.flush() != nil {
				return
			}
			if len(recs) == monitorBatch {
				continue // there may be more to read
			}
		}
		select {
		case <-r.Context().Done():
			return
		case <-changed:
		case <-keepAlive.C:
			if stream.begin() != nil {
				return
			}
			stream.comment("keep-alive")
			if stream.flush() != nil {
				return
			}
		}
	}
}

// eventStream writes Server-Sent Events.
type eventStream struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

// event writes an event whose data is v as JSON (which holds no newline).
func (e *eventStream) event(name, id string, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("admin: encode %s event: %v", name, err)) // only strings and numbers: cannot fail
	}
	fmt.Fprintf(e.w, "event: %s\n", name)
	if id != "" {
		fmt.Fprintf(e.w, "id: %s\n", id)
	}
	fmt.Fprintf(e.w, "data: %s\n\n", data)
}

// comment writes a line that subscribers ignore.
func (e *eventStream) comment(text string) { fmt.Fprintf(e.w, ": %s\n\n", text) }

// begin starts a burst of writes, giving the subscriber
// monitorWriteTimeout to take them.
func (e *eventStream) begin() error {
	if err := e.rc.SetWriteDeadline(time.Now().Add(monitorWriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

// flush sends what was written since begin.
func (e *eventStream) flush() error { return e.rc.Flush() }
