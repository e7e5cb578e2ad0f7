package admin_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/herd-dev/herd/internal/admin"
	"github.com/herd-dev/herd/internal/buildinfo"
	"github.com/herd-dev/herd/internal/config"
	"github.com/herd-dev/herd/internal/herdtest"
	"github.com/herd-dev/herd/internal/member"
	"github.com/herd-dev/herd/internal/places"
)

// freeAddr returns a loopback address that nothing listened on a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startHerd runs a test herd in which every server has an admin listener;
// configure may change the configuration after the admin addresses are set.
func startHerd(t testing.TB, topology map[string][]string, configure func(*config.Config)) *herdtest.Herd {
	t.Helper()
	return herdtest.Start(t, herdtest.Options{Topology: topology, Configure: func(c *config.Config) {
		for i := range c.Servers {
			c.Servers[i].Admin = freeAddr(t)
		}
		if configure != nil {
			configure(c)
		}
	}})
}

// adminURL is the base URL of a herd server's admin listener.
func adminURL(t testing.TB, h *herdtest.Herd, name string) string {
	t.Helper()
	sc, ok := h.Cfg.Server(name)
	if !ok || sc.Admin == "" {
		t.Fatalf("%s has no admin address", name)
	}
	return "http://" + sc.Admin
}

// get asks handler for target.
func get(t testing.TB, handler http.Handler, target string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	return rec
}

// fetch asks a live admin listener for url.
func fetch(url string) (status int, body string, err error) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func iamat(client string) string {
	now := time.Now()
	return fmt.Sprintf("IAMAT %s +34.068930-118.445127 %d.%09d", client, now.Unix(), now.Nanosecond())
}

// scrape reads the metrics handler serves.
func scrape(t testing.TB, handler http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	rec := get(t, handler, "/metrics")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("GET /metrics is not Prometheus text: %v", err)
	}
	return fams
}

// value finds the series of metric name with the given label pairs (and
// perhaps others): a counter's or gauge's value, a histogram's sample count.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// metricCheck is one expectation of a scrape.
type metricCheck struct {
	server  string
	metric  string
	labels  []string
	want    float64
	atLeast bool // value >= want rather than ==
}

func (c metricCheck) String() string {
	op := "=="
	if c.atLeast {
		op = ">="
	}
	return fmt.Sprintf("%s: %s%v %s %v", c.server, c.metric, c.labels, op, c.want)
}

// expectMetrics polls the servers' metrics until every check holds.
func expectMetrics(t *testing.T, h *herdtest.Herd, checks []metricCheck) {
	t.Helper()
	herdtest.Eventually(t, 5*time.Second, func() error {
		scrapes := map[string]map[string]*dto.MetricFamily{}
		var failed []string
		for _, c := range checks {
			if scrapes[c.server] == nil {
				scrapes[c.server] = scrape(t, h.Member(c.server).Admin)
			}
			got, ok := value(scrapes[c.server], c.metric, c.labels...)
			switch {
			case !ok:
				failed = append(failed, fmt.Sprintf("%v: no such series", c))
			case c.atLeast && got < c.want, !c.atLeast && got != c.want:
				failed = append(failed, fmt.Sprintf("%v: got %v", c, got))
			}
		}
		if failed != nil {
			return fmt.Errorf("metrics:\n%s", strings.Join(failed, "\n"))
		}
		return nil
	})
}

func TestMetricsMoveAsCommandsArrive(t *testing.T) {
	h := startHerd(t, map[string][]string{"A": {"B"}, "B": nil}, nil)
	expectMetrics(t, h, []metricCheck{
		{server: "A", metric: "herd_commands_total", labels: []string{"kind", "iamat", "outcome", "ok"}, want: 0},
		{server: "A", metric: "herd_clients", want: 0},
		{server: "A", metric: "herd_places_requests_total", labels: []string{"provider", "google", "status", "OK"}, want: 0},
		{server: "A", metric: "herd_places_requests_total", labels: []string{"provider", "google", "status", "UNKNOWN_ERROR"}, want: 0},
		{server: "A", metric: "herd_places_upstream_seconds", labels: []string{"provider", "google"}, want: 0},
		{server: "A", metric: "herd_places_cache_hits_total", labels: []string{"provider", "google"}, want: 0},
		{server: "A", metric: "herd_peer_link_up", labels: []string{"peer", "B", "direction", "out"}, want: 1},
		{server: "A", metric: "herd_peer_link_up", labels: []string{"peer", "B", "direction", "in"}, want: 1},
		{server: "B", metric: "herd_peer_link_up", labels: []string{"peer", "A", "direction", "out"}, want: 1},
	})

	c := h.Dial("A")
	line := iamat("kiwi")
	reply := c.Ask(line)
	if !strings.HasPrefix(reply, "AT A ") {
		t.Fatalf("IAMAT reply %q", reply)
	}
	c.Ask(line) // the same client time again: stale
	if got := c.Ask("HELLO"); got != "? HELLO" {
		t.Fatalf("HELLO answered %q", got)
	}
	if first, _ := c.WhatsAt("kiwi", 10, 3); first != reply {
		t.Fatalf("WHATSAT answered %q", first)
	}

	expectMetrics(t, h, []metricCheck{
		{server: "A", metric: "herd_commands_total", labels: []string{"kind", "iamat", "outcome", "ok"}, want: 1},
		{server: "A", metric: "herd_commands_total", labels: []string{"kind", "iamat", "outcome", "stale"}, want: 1},
		{server: "A", metric: "herd_commands_total", labels: []string{"kind", "invalid", "outcome", "rejected"}, want: 1},
		{server: "A", metric: "herd_commands_total", labels: []string{"kind", "whatsat", "outcome", "ok"}, want: 1},
		{server: "A", metric: "herd_command_duration_seconds", labels: []string{"kind", "iamat"}, want: 2},
		{server: "A", metric: "herd_command_duration_seconds", labels: []string{"kind", "whatsat"}, want: 1},
		{server: "A", metric: "herd_clients", want: 1},
		{server: "B", metric: "herd_clients", want: 1},
		{server: "A", metric: "herd_flood_messages_total", labels: []string{"direction", "out"}, want: 1, atLeast: true},
		{server: "B", metric: "herd_flood_messages_total", labels: []string{"direction", "in"}, want: 1, atLeast: true},
		{server: "B", metric: "herd_flood_duplicates_total", want: 0},
		{server: "A", metric: "herd_catchup_records_total", labels: []string{"direction", "sent"}, want: 0, atLeast: true},
		{server: "A", metric: "herd_catchup_records_total", labels: []string{"direction", "received"}, want: 0, atLeast: true},
		{server: "A", metric: "herd_peer_send_backlog", labels: []string{"peer", "B"}, want: 0},
		{server: "A", metric: "herd_peer_reconnects_total", labels: []string{"peer", "B"}, want: 0, atLeast: true},
		{server: "A", metric: "herd_places_requests_total", labels: []string{"provider", "google", "status", "OK"}, want: 1},
		{server: "A", metric: "herd_places_upstream_seconds", labels: []string{"provider", "google"}, want: 1},
		{server: "A", metric: "herd_store_bytes", want: 1, atLeast: true},
		{server: "A", metric: "herd_store_fsyncs_total", want: 0, atLeast: true},
		{server: "A", metric: "herd_store_fsync_seconds_total", want: 0, atLeast: true},
		{server: "A", metric: "herd_connections_open", want: 2, atLeast: true}, // our client and B's link
		{server: "A", metric: "herd_connections_refused_total", want: 0},
		{server: "A", metric: "go_goroutines", want: 1, atLeast: true},
		{server: "A", metric: "herd_peer_updates_total", labels: []string{"peer", "B", "direction", "out"}, want: 1},
		{server: "B", metric: "herd_peer_updates_total", labels: []string{"peer", "A", "direction", "in"}, want: 1},
		{server: "A", metric: "herd_peer_bytes_total", labels: []string{"peer", "B", "direction", "out"}, want: 80, atLeast: true},
		{server: "B", metric: "herd_peer_bytes_total", labels: []string{"peer", "A", "direction", "in"}, want: 80, atLeast: true},
		{server: "B", metric: "herd_peer_last_update_age_seconds", labels: []string{"peer", "A"}, want: 0, atLeast: true},
		{server: "B", metric: "herd_propagation_seconds", labels: []string{"peer", "A"}, want: 1},
	})
}

func TestMetricsText(t *testing.T) {
	h := startHerd(t, map[string][]string{"A": nil}, nil)
	rec := get(t, h.Member("A").Admin, "/metrics")
	text := rec.Body.String()

	// herd_build_info{goversion="go1.26.8",revision="...",version="..."} 1
	build := buildinfo.Get()
	fams := scrape(t, h.Member("A").Admin)
	if got, ok := value(fams, "herd_build_info", "version", build.Version, "revision", build.Revision, "goversion", build.GoVersion); !ok || got != 1 {
		t.Errorf("herd_build_info{version=%q,revision=%q,goversion=%q} = %v (found %v), want 1", build.Version, build.Revision, build.GoVersion, got, ok)
	}

	// Bucket bounds print as they are written: le="3e-05", never
	// le="2.9999999999999997e-05".
	les := regexp.MustCompile(`herd_command_duration_seconds_bucket\{kind="iamat",le="([^"]+)"\}`).FindAllStringSubmatch(text, -1)
	if len(les) < 10 {
		t.Fatalf("found %d buckets of herd_command_duration_seconds{kind=iamat}:\n%s", len(les), text)
	}
	for _, le := range les {
		if le[1] == "+Inf" {
			continue
		}
		mantissa, _, _ := strings.Cut(le[1], "e")
		if digits := strings.Trim(strings.ReplaceAll(mantissa, ".", ""), "0"); len(digits) > 1 {
			t.Errorf("bucket bound le=%q has float noise; want one significant digit", le[1])
		}
	}
}

func TestHealthAndReadiness(t *testing.T) {
	dir := t.TempDir()
	lnA, lnB := listen(t), listen(t)
	cfg := &config.Config{LogDir: dir + "/logs", DataDir: dir + "/data", Servers: []config.Server{
		{Name: "A", Addr: lnA.Addr().String(), Neighbors: []string{"B"}},
		{Name: "B", Addr: lnB.Addr().String()},
	}}
	cfg.Peers.Heartbeat = config.Duration(100 * time.Millisecond)
	cfg.Peers.DeadAfter = config.Duration(time.Second)
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	adminLn := listen(t)
	base := "http://" + adminLn.Addr().String()
	a := open(t, cfg, "A", member.Overrides{AdminListener: adminLn})
	if a.Admin == nil {
		t.Fatal("a member given an AdminListener has no admin interface")
	}

	if rec := get(t, a.Admin, "/readyz"); rec.Code != http.StatusServiceUnavailable || !strings.HasPrefix(rec.Body.String(), "not ready: ") {
		t.Errorf("/readyz before Serve: %d %q, want 503 not ready", rec.Code, rec.Body)
	}
	stopA := serve(t, a, lnA)
	expect := func(path string, code int, text string) {
		t.Helper()
		herdtest.Eventually(t, 5*time.Second, func() error {
			got, body, err := fetch(base + path)
			if err != nil {
				return err
			}
			if got != code || !strings.Contains(body, text) {
				return fmt.Errorf("GET %s: %d %q, want %d %q", path, got, body, code, text)
			}
			return nil
		})
	}
	expect("/healthz", http.StatusOK, "ok")
	expect("/readyz", http.StatusServiceUnavailable, "no peer link is up (0 of 1 neighbors)")

	b := open(t, cfg, "B", member.Overrides{})
	if b.Admin != nil {
		t.Error("a member without an admin address has an admin interface")
	}
	stopB := serve(t, b, lnB)
	expect("/readyz", http.StatusOK, "ready")

	stopB()
	expect("/readyz", http.StatusServiceUnavailable, "no peer link is up")
	expect("/healthz", http.StatusOK, "ok")

	// A journal that fails its writes makes the server not ready: its
	// acknowledgements are no longer durable.
	expect("/metrics", http.StatusOK, "herd_store_failed 0")
	herdtest.BreakJournal(t, filepath.Join(cfg.DataDir, "A"))
	c, err := net.Dial("tcp", lnA.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "IAMAT kiwi +1+1 %d\n", time.Now().Unix())
	if reply, err := bufio.NewReader(c).ReadString('\n'); err != nil {
		t.Fatalf("IAMAT with a broken journal: %v", err)
	} else {
		t.Logf("IAMAT with a broken journal: %q", reply)
	}
	expect("/readyz", http.StatusServiceUnavailable, "journal writes fail")
	expect("/metrics", http.StatusOK, "herd_store_failed 1")
	expect("/healthz", http.StatusOK, "ok")

	stopA()
	if _, _, err := fetch(base + "/healthz"); err == nil {
		t.Error("the admin listener still answers after Serve returned")
	}
}

func TestServeFailsWhenTheAdminAddressIsTaken(t *testing.T) {
	dir := t.TempDir()
	taken, ln := listen(t), listen(t)
	cfg := &config.Config{LogDir: dir + "/logs", DataDir: dir + "/data", Servers: []config.Server{
		{Name: "A", Addr: ln.Addr().String(), Admin: taken.Addr().String()},
	}}
	cfg.ApplyDefaults()
	m := open(t, cfg, "A", member.Overrides{})
	err := m.Serve(t.Context(), ln)
	if err == nil || !strings.Contains(err.Error(), "admin") {
		t.Fatalf("Serve = %v, want an admin listen error", err)
	}
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(time.Second))
	if _, aerr := ln.Accept(); !errors.Is(aerr, net.ErrClosed) {
		t.Errorf("Accept after Serve failed: %v; want the client listener closed", aerr)
	}
}

func TestPprofOnlyWhenConfigured(t *testing.T) {
	for _, pprof := range []bool{false, true} {
		t.Run(fmt.Sprint("admin_pprof=", pprof), func(t *testing.T) {
			dir := t.TempDir()
			cfg := &config.Config{LogDir: dir + "/logs", DataDir: dir + "/data", AdminPprof: pprof, Servers: []config.Server{
				{Name: "A", Addr: "127.0.0.1:1", Admin: "127.0.0.1:2"},
			}}
			cfg.ApplyDefaults()
			m := open(t, cfg, "A", member.Overrides{})
			want := http.StatusNotFound
			if pprof {
				want = http.StatusOK
			}
			for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline"} {
				if rec := get(t, m.Admin, path); rec.Code != want {
					t.Errorf("GET %s: %d, want %d", path, rec.Code, want)
				}
			}
		})
	}
}

func TestStatusJSON(t *testing.T) {
	h := startHerd(t, map[string][]string{"A": {"B"}, "B": nil}, nil)
	hostile := `<img/src/onerror=alert(1)>`
	c := h.Dial("B")
	c.Ask(iamat("kiwi"))
	reply := c.Ask(iamat(hostile))
	herdtest.Eventually(t, 5*time.Second, func() error {
		if _, err := herdtest.LookupAT(h.Addr("A"), hostile); err != nil {
			return err
		}
		return nil
	})
	a := h.Member("A").Admin

	rec := get(t, a, "/api/status")
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET /api/status: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	if strings.Contains(rec.Body.String(), "<img") {
		t.Error("the JSON holds a raw <: want it escaped")
	}
	var shape map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &shape); err != nil {
		t.Fatal(err)
	}
	keys := func(v any) []string { return slices.Sorted(maps.Keys(v.(map[string]any))) }
	for _, tc := range []struct {
		what string
		got  []string
		want string
	}{
		{"status", keys(shape), "addr clients counters head_seq links locations name ready recent time"},
		{"counters", keys(shape["counters"]), "catchup_received catchup_sent conns_open conns_refused flood_dup flood_in flood_out iamat injected invalid places_errors whatsat"},
		{"link", keys(shape["links"].([]any)[0]), "acked_seq addr behind bytes_in bytes_out in_up last_update_in out_up peer reconnects sent_seq since updates_in updates_out"},
		{"update", keys(shape["recent"].([]any)[0]), "client from line seq"},
	} {
		if got := strings.Join(tc.got, " "); got != tc.want {
			t.Errorf("%s fields: %s\nwant %s", tc.what, got, tc.want)
		}
	}

	var st admin.Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if st.Name != "A" || st.Addr != h.Addr("A") || st.Clients != 2 || st.Head == 0 || time.Since(st.Time) > time.Minute {
		t.Errorf("status = %+v", st)
	}
	if len(st.Links) != 1 || st.Links[0].Peer != "B" {
		t.Errorf("links = %+v", st.Links)
	}
	if len(st.Recent) != 2 || st.Recent[0].Seq != st.Head || st.Recent[0].Client != hostile || st.Recent[0].Line != reply || st.Recent[0].From != "B" || st.Recent[1].Client != "kiwi" {
		t.Errorf("recent = %+v", st.Recent)
	}
	if len(st.Locations) != 2 || st.Locations[0] != [2]float64{34.06893, -118.445127} {
		t.Errorf("locations = %v", st.Locations)
	}
	if st.Counters.FloodIn != 2 {
		t.Errorf("counters.flood_in = %d, want 2", st.Counters.FloodIn)
	}

	for _, tc := range []struct {
		query             string
		code              int
		recent, locations int
	}{
		{"?locations=0", http.StatusOK, 2, 0},
		{"?recent=1&locations=1", http.StatusOK, 1, 1},
		{"?recent=2000", http.StatusOK, 2, 2},
		{"?recent=2001", http.StatusBadRequest, 0, 0},
		{"?locations=-1", http.StatusBadRequest, 0, 0},
		{"?recent=x", http.StatusBadRequest, 0, 0},
	} {
		rec := get(t, a, "/api/status"+tc.query)
		if rec.Code != tc.code {
			t.Errorf("GET /api/status%s: %d, want %d", tc.query, rec.Code, tc.code)
			continue
		}
		if tc.code != http.StatusOK {
			continue
		}
		var st admin.Status
		if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
			t.Fatal(err)
		}
		if len(st.Recent) != tc.recent || len(st.Locations) != tc.locations {
			t.Errorf("GET /api/status%s: %d recent, %d locations; want %d, %d", tc.query, len(st.Recent), len(st.Locations), tc.recent, tc.locations)
		}
	}
}

func TestHerdJSON(t *testing.T) {
	h := startHerd(t, map[string][]string{"A": {"B", "C"}, "B": nil, "C": nil}, func(c *config.Config) {
		for i := range c.Servers {
			if c.Servers[i].Name == "C" {
				c.Servers[i].Admin = ""
			}
		}
	})
	var hd map[string]admin.HerdMember
	read := func() error {
		_, body, err := fetch(adminURL(t, h, "A") + "/api/herd")
		if err != nil {
			return err
		}
		var all admin.Herd
		if err := json.Unmarshal([]byte(body), &all); err != nil {
			return err
		}
		if all.Self != "A" || len(all.Servers) != 3 {
			return fmt.Errorf("herd = %+v", all)
		}
		hd = map[string]admin.HerdMember{}
		for _, m := range all.Servers {
			hd[m.Name] = m
		}
		return nil
	}
	herdtest.Eventually(t, 5*time.Second, func() error {
		if err := read(); err != nil {
			return err
		}
		if a, b := hd["A"], hd["B"]; a.State != admin.StateUp || b.State != admin.StateUp || a.Status == nil || b.Status == nil || !b.Status.Ready {
			return fmt.Errorf("A and B not both up and ready: %+v %+v", a, b)
		}
		return nil
	})
	if c := hd["C"]; c.State != admin.StateUnknown || c.Status != nil || c.Admin != "" {
		t.Errorf("C, without an admin address: %+v", c)
	}
	if got := hd["A"].Neighbors; !slices.Equal(got, []string{"B", "C"}) {
		t.Errorf("A's neighbors = %v", got)
	}
	if got := hd["C"].Neighbors; !slices.Equal(got, []string{"A"}) {
		t.Errorf("C's neighbors = %v", got)
	}
	if got := hd["B"].Status.Locations; len(got) != 0 {
		t.Errorf("B's status holds locations %v; /api/herd should not ask other servers for them", got)
	}

	h.Stop("B")
	herdtest.Eventually(t, 5*time.Second, func() error {
		if err := read(); err != nil {
			return err
		}
		if b := hd["B"]; b.State != admin.StateDown || b.Error == "" || b.Status != nil {
			return fmt.Errorf("B after it stopped: %+v", hd["B"])
		}
		return nil
	})
}

func TestStatusPage(t *testing.T) {
	h := startHerd(t, map[string][]string{"A": nil}, nil)
	a := h.Member("A").Admin
	for _, tc := range []struct {
		path, contentType, contains string
	}{
		{"/", "text/html; charset=utf-8", `<script src="static/app.js" defer></script>`},
		{"/static/app.js", "text/javascript; charset=utf-8", "fetch('api/herd'"},
		{"/static/style.css", "text/css; charset=utf-8", "#topology"},
	} {
		rec := get(t, a, tc.path)
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != tc.contentType || !strings.Contains(rec.Body.String(), tc.contains) {
			t.Errorf("GET %s: %d %q, want 200 %q holding %q", tc.path, rec.Code, rec.Header().Get("Content-Type"), tc.contentType, tc.contains)
		}
		if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("GET %s: Content-Security-Policy %q", tc.path, csp)
		}
	}
	if rec := get(t, a, "/nothing"); rec.Code != http.StatusNotFound {
		t.Errorf("GET /nothing: %d, want 404", rec.Code)
	}
	// The page draws untrusted names and ids: it must never parse them as HTML.
	js := get(t, a, "/static/app.js").Body.String()
	for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
		if strings.Contains(js, sink) {
			t.Errorf("app.js uses %s", sink)
		}
	}
}

// listen opens a loopback listener that the test closes if nothing else does.
func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// stubPlaces answers every lookup with no results.
type stubPlaces struct{}

func (stubPlaces) Nearby(context.Context, places.Query) ([]byte, error) {
	return []byte(`{"html_attributions":[],"results":[],"status":"ZERO_RESULTS"}`), nil
}

// open opens member name of cfg, with no log, no secrets and stub places.
func open(t testing.TB, cfg *config.Config, name string, o member.Overrides) *member.Member {
	t.Helper()
	o.LogOutput = io.Discard
	o.Places = stubPlaces{}
	o.Env = func(string) string { return "" }
	m, err := member.Open(t.Context(), cfg, name, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// serve runs m on ln and returns a function that stops it and checks that
// Serve ended cleanly; the test calls it at the end if nothing else does.
func serve(t testing.TB, m *member.Member, ln net.Listener) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx, ln) }()
	stopped := false
	stop = func() {
		t.Helper()
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: Serve: %v", m.Name, err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("%s did not stop within 15s", m.Name)
		}
	}
	t.Cleanup(stop)
	return stop
}
