package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/herd-dev/herd/internal/config"
	"github.com/herd-dev/herd/internal/server"
)

// Limits of GET /api/status.
const (
	// DefaultRecent is how many recent updates a status lists.
	DefaultRecent = 20
	// MaxLocations is the most client locations a status samples.
	MaxLocations = 2000
)

// Status is what GET /api/status returns: one server's state, for scripts
// and for the status page. Its JSON fields:
//
//   - name, addr: the server's name and its client and peer address.
//   - time: when the status was taken (RFC 3339, UTC).
//   - ready: what GET /readyz answers: listening, journal writes working,
//     and at least one peer link up or no neighbors at all.
//   - clients: how many clients the server knows a location for.
//   - head_seq: the server's latest change sequence number.
//   - counters: running totals since the server started (server.Counters).
//   - links: one entry per neighbor, sorted by name (server.LinkStatus:
//     peer, addr, out_up, in_up, since, reconnects, sent_seq, acked_seq,
//     behind, last_error).
//   - recent: the most recently changed clients, newest first (see Update);
//     DefaultRecent of them, or ?recent=N (0 to MaxLocations).
//   - locations: [lat, lng] pairs of the most recently changed clients, up
//     to MaxLocations, or ?locations=N (0 to MaxLocations).
//
// Client ids are bytes, not text: ids that are not UTF-8 have their invalid
// bytes replaced by U+FFFD here (the AT line in recent is the exact one
// otherwise).
type Status struct {
	Name      string              `json:"name"`
	Addr      string              `json:"addr"`
	Time      time.Time           `json:"time"`
	Ready     bool                `json:"ready"`
	Clients   int                 `json:"clients"`
	Head      uint64              `json:"head_seq"`
	Counters  server.Counters     `json:"counters"`
	Links     []server.LinkStatus `json:"links"`
	Recent    []Update            `json:"recent"`
	Locations [][2]float64        `json:"locations"`
}

// Update is one recently changed client.
type Update struct {
	Seq    uint64 `json:"seq"`    // the server's change sequence number for it
	Client string `json:"client"` // the client id
	Line   string `json:"line"`   // the AT line, as the server that took the IAMAT made it
	From   string `json:"from"`   // the neighbor it came from; "" if this server took it
}

// status takes the server's status with at most recent updates and
// locations locations.
func (s *Server) status(recent, locations int) Status {
	st := Status{
		Name:     s.opt.Name,
		Addr:     s.opt.Addr,
		Time:     time.Now().UTC(),
		Ready:    s.notReady() == "",
		Clients:  s.opt.Node.Len(),
		Head:     s.opt.Node.Head(),
		Links:    s.opt.Server.Links(),
		Counters: s.opt.Server.Stats(),
	}
	recs := s.opt.Node.Recent(nil, max(recent, locations))
	st.Recent = make([]Update, 0, min(recent, len(recs)))
	for _, r := range recs[:min(recent, len(recs))] {
		st.Recent = append(st.Recent, Update{Seq: r.Seq, Client: r.Client(), Line: r.Line, From: s.opt.Node.From(r)})
	}
	st.Locations = make([][2]float64, 0, min(locations, len(recs)))
	for _, r := range recs[:min(locations, len(recs))] {
		loc := r.Location()
		st.Locations = append(st.Locations, [2]float64{loc.Lat, loc.Lng})
	}
	return st
}

// handleStatus serves GET /api/status.
func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	recent, err := countParam(r, "recent", DefaultRecent)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	locations, err := countParam(r, "locations", MaxLocations)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	writeJSON(w, s.status(recent, locations))
}

// countParam reads the query parameter name: an integer from 0 to
// MaxLocations, or def when it is absent.
func countParam(r *http.Request, name string, def int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > MaxLocations {
		return 0, fmt.Errorf("admin: %s must be an integer from 0 to %d", name, MaxLocations)
	}
	return n, nil
}

// Herd is what GET /api/herd returns: the herd as this server sees it.
//
//   - self: this server's name.
//   - time: when the answer was put together (RFC 3339, UTC).
//   - servers: every server of the configuration, in its order (see HerdMember).
type Herd struct {
	Self    string       `json:"self"`
	Time    time.Time    `json:"time"`
	Servers []HerdMember `json:"servers"`
}

// HerdMember is one server of the herd in GET /api/herd.
//
//   - name: the server's name.
//   - admin: where its admin listener is reached ("" when it has none): its
//     configured admin address, with an unspecified host (0.0.0.0:12550,
//     :12550) replaced by the host of its addr (see config.Server.AdminReach).
//   - neighbors: its neighbors, links made undirected as in the configuration.
//   - state: "up" when its status was read; "down" when its admin listener
//     could not be read; "wrong_server" when another server answered there;
//     "unknown" when it has no admin address.
//   - error: why it is down or wrong, in words for the status page.
//   - status: its GET /api/status (without locations for other servers),
//     present when state is "up".
type HerdMember struct {
	Name      string   `json:"name"`
	Admin     string   `json:"admin"`
	Neighbors []string `json:"neighbors"`
	State     string   `json:"state"`
	Error     string   `json:"error,omitempty"`
	Status    *Status  `json:"status,omitempty"`
}

// HerdMember states.
const (
	StateUp          = "up"
	StateDown        = "down"
	StateWrongServer = "wrong_server"
	StateUnknown     = "unknown"
)

// peerTimeout bounds reading another server's status for GET /api/herd,
// well within the status page's polling interval.
const peerTimeout = 750 * time.Millisecond

// maxStatusBytes bounds another server's status answer.
const maxStatusBytes = 4 << 20

// handleHerd serves GET /api/herd.
func (s *Server) handleHerd(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), peerTimeout)
	defer cancel()
	h := Herd{Self: s.opt.Name, Time: time.Now().UTC(), Servers: make([]HerdMember, len(s.opt.Config.Servers))}
	links := s.opt.Config.Links()
	var wg sync.WaitGroup
	for i, sc := range s.opt.Config.Servers {
		m := &h.Servers[i]
		*m = HerdMember{Name: sc.Name, Admin: sc.AdminReach(), Neighbors: links[sc.Name]}
		if m.Neighbors == nil {
			m.Neighbors = []string{}
		}
		switch {
		case sc.Name == s.opt.Name:
			st := s.status(DefaultRecent, MaxLocations)
			m.State, m.Status = StateUp, &st
		case m.Admin == "":
			m.State = StateUnknown
		default:
			wg.Go(func() { m.State, m.Status, m.Error = s.fetchStatus(ctx, sc.Name, m.Admin) })
		}
	}
	wg.Wait()
	writeJSON(w, h)
}

// fetchStatus reads server name's status, without locations, from its admin
// listener at addr. When it cannot, it says why in words an operator reads
// on the status page.
func (s *Server) fetchStatus(ctx context.Context, name, addr string) (state string, st *Status, why string) {
	u := url.URL{Scheme: "http", Host: addr, Path: "/api/status", RawQuery: "locations=0"}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return StateDown, nil, fmt.Sprintf("%s is not an address: %v", addr, err)
	}
	s.authorize(req)
	resp, err := s.client.Do(req)
	if err != nil {
		return StateDown, nil, unreachable(addr, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return StateDown, nil, fmt.Sprintf("%s refused this server's admin token (is %s the same on both?)", addr, config.EnvAdminToken)
	case resp.StatusCode != http.StatusOK:
		return StateDown, nil, fmt.Sprintf("%s answered HTTP %s", addr, resp.Status)
	}
	st = new(Status)
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxStatusBytes)).Decode(st); err != nil || st.Name == "" {
		return StateDown, nil, fmt.Sprintf("%s answered, but not with a herd server's status", addr)
	}
	if st.Name != name {
		return StateWrongServer, nil, fmt.Sprintf("%s is %s's admin listener, not %s's: check the admin addresses in the configuration", addr, st.Name, name)
	}
	return StateUp, st, ""
}

// unreachable says in words why addr could not be asked for a status.
func unreachable(addr string, err error) string {
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, context.DeadlineExceeded) || os.IsTimeout(err):
		return fmt.Sprintf("%s did not answer within %v", addr, peerTimeout)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("nothing listens on %s: the server is not running, or its admin listener is elsewhere", addr)
	case errors.As(err, &dnsErr):
		return fmt.Sprintf("cannot find the host of %s: %s", addr, dnsErr.Err)
	case errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH):
		return fmt.Sprintf("no route to %s", addr)
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Sprintf("%s closed the connection without answering", addr)
	}
	return fmt.Sprintf("cannot read a status from %s: %v", addr, rootCause(err))
}

// rootCause returns the innermost error that err wraps, which says what
// went wrong without the layers that repeat the request.
func rootCause(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}

// writeJSON sends v as an uncached JSON answer.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	enc.Encode(v) // the client went away, or v cannot fail to encode
}
