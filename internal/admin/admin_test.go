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
	"sync"
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
		{server: "A", metric: "herd_log_dropped_lines_total", want: 0},
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
	// Before Serve, connections to A's client address wait in the kernel's
	// queue and nothing reads them: a hung accept loop looks the same.
	if rec := get(t, a.Admin, "/healthz"); rec.Code != http.StatusServiceUnavailable ||
		!strings.Contains(rec.Body.String(), "the client listener at "+lnA.Addr().String()+" did not answer a line within 500ms") {
		t.Errorf("/healthz before Serve: %d %q, want 503 and the client listener not answering", rec.Code, rec.Body)
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
	// The self-check's line is a probe, not an invalid client command.
	expect("/metrics", http.StatusOK, `herd_commands_total{kind="invalid",outcome="rejected"} 0`)
	expect("/readyz", http.StatusServiceUnavailable, "no peer link is up (0 of 1 neighbors)")

	// A node whose lock is held for good (a stuck command or link) is not
	// alive either, and a second check does not wait for the lock again.
	held := make(chan struct{})
	release := sync.OnceFunc(func() { close(held) })
	t.Cleanup(release) // even if the test fails first: A cannot stop while its lock is held
	frozen := make(chan struct{})
	go a.Node.Freeze(func() {
		close(frozen)
		<-held
	})
	<-frozen
	expect("/healthz", http.StatusServiceUnavailable, "not alive: the client table stayed locked for the whole check (500ms)")
	expect("/healthz", http.StatusServiceUnavailable, "not alive: the client table has been locked for")
	release()
	expect("/healthz", http.StatusOK, "ok")

	b := open(t, cfg, "B", member.Overrides{})
	if b.Admin != nil {
		t.Error("a member without an admin address has an admin interface")
	}
	stopB := serve(t, b, lnB)
	expect("/readyz", http.StatusOK, "ready")

	stopB()
	expect("/readyz", http.StatusServiceUnavailable, "no peer link is up")
	expect("/healthz", http.StatusOK, "ok")

	// A journal that fails its writes makes the server not ready, and it
	// acknowledges no update: the one whose commit failed gets no reply
	// (its connection is closed), or "? line" if a background write found
	// the failure first, and later ones get "? line".
	expect("/metrics", http.StatusOK, "herd_store_failed 0")
	herdtest.BreakJournal(t, filepath.Join(cfg.DataDir, "A"))
	ask := func(line string) (string, error) {
		c, err := net.Dial("tcp", lnA.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "%s\n", line)
		return bufio.NewReader(c).ReadString('\n')
	}
	first := fmt.Sprintf("IAMAT kiwi +1+1 %d", time.Now().Unix())
	if reply, err := ask(first); err != io.EOF && reply != "? "+first+"\n" {
		t.Errorf("IAMAT whose commit fails: %q, %v; want no reply", reply, err)
	}
	expect("/readyz", http.StatusServiceUnavailable, "journal writes fail")
	expect("/metrics", http.StatusOK, "herd_store_failed 1")
	later := fmt.Sprintf("IAMAT kiwi2 +1+1 %d", time.Now().Unix())
	if reply, err := ask(later); reply != "? "+later+"\n" {
		t.Errorf("IAMAT after the journal failed: %q, %v; want %q", reply, err, "? "+later)
	}
	if _, body, err := fetch(base + "/metrics"); err != nil || !regexp.MustCompile(`herd_commands_total\{kind="iamat",outcome="not_durable"\} [12]\n`).MatchString(body) {
		t.Errorf("herd_commands_total for IAMATs refused as not durable is not 1 or 2 (%v)", err)
	}
	herdtest.Eventually(t, 5*time.Second, func() error {
		if _, body, err := fetch(base + "/metrics"); err != nil || strings.Contains(body, "herd_store_dropped_entries_total 0\n") {
			return fmt.Errorf("herd_store_dropped_entries_total is 0 after updates past the failure (%v)", err)
		}
		return nil
	})
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

// open opens member name of cfg, with no log, stub places, and no secrets
// unless o.Env gives some.
func open(t testing.TB, cfg *config.Config, name string, o member.Overrides) *member.Member {
	t.Helper()
	o.LogOutput = io.Discard
	o.Places = stubPlaces{}
	if o.Env == nil {
		o.Env = func(string) string { return "" }
	}
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

// fakeAdmin answers GET /api/status as server name would, on ln.
func fakeAdmin(t *testing.T, ln net.Listener, name string) {
	t.Helper()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(admin.Status{Name: name})
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// listenPair listens on the same free port on 127.0.0.1 and 127.0.0.2.
func listenPair(t *testing.T) (one, two net.Listener) {
	t.Helper()
	for range 20 {
		two = listen(t)
		two.Close()
		_, port, _ := net.SplitHostPort(two.Addr().String())
		var err1, err2 error
		two, err2 = net.Listen("tcp", "127.0.0.2:"+port)
		one, err1 = net.Listen("tcp", "127.0.0.1:"+port)
		if err1 == nil && err2 == nil {
			t.Cleanup(func() { one.Close(); two.Close() })
			return one, two
		}
		for _, ln := range []net.Listener{one, two} {
			if ln != nil {
				ln.Close()
			}
		}
	}
	t.Fatal("no port free on both 127.0.0.1 and 127.0.0.2")
	return nil, nil
}

func TestHerdReadsEachServerAtItsOwnHost(t *testing.T) {
	// As in the deploy files, B's admin binds every interface: it is
	// reached at B's addr host, 127.0.0.2. The same port on 127.0.0.1 is
	// A's own, as on one host of a real herd, so asking 0.0.0.0 reaches A.
	onA, onB := listenPair(t)
	fakeAdmin(t, onA, "A")
	fakeAdmin(t, onB, "B")
	_, port, _ := net.SplitHostPort(onB.Addr().String())

	impostor := listen(t) // C's configured admin address, where B answers
	fakeAdmin(t, impostor, "B")
	closed := listen(t) // D's: nothing listens there
	closed.Close()
	hung := listen(t) // E's: accepts, never answers

	dir := t.TempDir()
	cfg := &config.Config{LogDir: dir + "/logs", DataDir: dir + "/data", Servers: []config.Server{
		{Name: "A", Addr: "127.0.0.1:1", Neighbors: []string{"B", "C", "D", "E", "F"}},
		{Name: "B", Addr: "127.0.0.2:1", Admin: "0.0.0.0:" + port},
		{Name: "C", Addr: "127.0.0.1:1", Admin: impostor.Addr().String()},
		{Name: "D", Addr: "127.0.0.1:1", Admin: closed.Addr().String()},
		{Name: "E", Addr: "127.0.0.1:1", Admin: hung.Addr().String()},
		{Name: "F", Addr: "127.0.0.1:1"},
	}}
	cfg.ApplyDefaults()
	a := open(t, cfg, "A", member.Overrides{AdminListener: listen(t)})

	rec := get(t, a.Admin, "/api/herd")
	var h admin.Herd
	if err := json.Unmarshal(rec.Body.Bytes(), &h); err != nil {
		t.Fatalf("GET /api/herd: %v\n%s", err, rec.Body)
	}
	got := map[string]admin.HerdMember{}
	for _, m := range h.Servers {
		got[m.Name] = m
	}
	for _, tc := range []struct {
		name, admin, state, error string
	}{
		{"B", "127.0.0.2:" + port, admin.StateUp, ""},
		{"C", impostor.Addr().String(), admin.StateWrongServer, impostor.Addr().String() + " is B's admin listener, not C's"},
		{"D", closed.Addr().String(), admin.StateDown, "nothing listens on " + closed.Addr().String()},
		{"E", hung.Addr().String(), admin.StateDown, hung.Addr().String() + " did not answer within 750ms"},
		{"F", "", admin.StateUnknown, ""},
	} {
		m := got[tc.name]
		if m.Admin != tc.admin || m.State != tc.state || !strings.HasPrefix(m.Error, tc.error) || (tc.error == "") != (m.Error == "") {
			t.Errorf("%s: admin %q, state %q, error %q; want %q, %q, an error starting %q", tc.name, m.Admin, m.State, m.Error, tc.admin, tc.state, tc.error)
		}
		if (m.Status != nil) != (tc.state == admin.StateUp) {
			t.Errorf("%s: state %s with status %+v", tc.name, m.State, m.Status)
		}
	}
}

func TestAdminToken(t *testing.T) {
	const token, metricsToken = "admin-token-0123456789", "metrics-token-0123456789"
	basic := func(user, password string) string {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		r.SetBasicAuth(user, password)
		return r.Header.Get("Authorization")
	}
	type check struct {
		path, auth string // path may start with a method other than GET: "POST /healthz"
		code       int
	}
	for _, tc := range []struct {
		name   string
		env    map[string]string
		checks []check
	}{
		{"no token: everything open", nil, []check{
			{"/api/status", "", http.StatusOK},
			{"/", "", http.StatusOK},
			{"/metrics", "", http.StatusOK},
			{"POST /readyz", "", http.StatusMethodNotAllowed},
		}},
		{"admin token", map[string]string{config.EnvAdminToken: token}, []check{
			{"POST /healthz", "", http.StatusMethodNotAllowed},
			{"PUT /metrics", "", http.StatusMethodNotAllowed},
			{"/healthz", "", http.StatusServiceUnavailable}, // open, and not serving
			{"/readyz", "", http.StatusServiceUnavailable},
			{"/metrics", "", http.StatusOK},
			{"/api/status", "", http.StatusUnauthorized},
			{"/api/herd", "", http.StatusUnauthorized},
			{"/api/monitor", "", http.StatusUnauthorized},
			{"/", "", http.StatusUnauthorized},
			{"/static/app.js", "", http.StatusUnauthorized},
			{"/debug/pprof/", "", http.StatusUnauthorized},
			{"/no/such/page", "", http.StatusUnauthorized},
			{"/api/status", "Bearer wrong-token-0123456789", http.StatusUnauthorized},
			{"/api/status", "Bearer " + token[:len(token)-1], http.StatusUnauthorized},
			{"/api/status", "Bearer " + token, http.StatusOK},
			{"/api/status", "bearer " + token, http.StatusOK},
			{"/", basic("anyone", token), http.StatusOK},
			{"/static/app.js", basic("", token), http.StatusOK},
			{"/", basic(token, "wrong"), http.StatusUnauthorized},
			{"/debug/pprof/", "Bearer " + token, http.StatusOK},
			{"/no/such/page", "Bearer " + token, http.StatusNotFound},
		}},
		{"admin and metrics tokens", map[string]string{config.EnvAdminToken: token, config.EnvMetricsToken: metricsToken}, []check{
			{"/readyz", "", http.StatusServiceUnavailable},
			{"/metrics", "", http.StatusUnauthorized},
			{"/metrics", "Bearer " + metricsToken, http.StatusOK},
			{"/metrics", "Bearer " + token, http.StatusOK},
			{"/api/status", "Bearer " + metricsToken, http.StatusUnauthorized},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := &config.Config{LogDir: dir + "/logs", DataDir: dir + "/data", AdminPprof: true, Servers: []config.Server{
				{Name: "A", Addr: listen(t).Addr().String(), Admin: "127.0.0.1:1"},
			}}
			cfg.ApplyDefaults()
			m := open(t, cfg, "A", member.Overrides{Env: func(k string) string { return tc.env[k] }})
			for _, c := range tc.checks {
				method, path, ok := strings.Cut(c.path, " ")
				if !ok {
					method, path = http.MethodGet, c.path
				}
				req := httptest.NewRequest(method, path, nil)
				if c.auth != "" {
					req.Header.Set("Authorization", c.auth)
				}
				rec := httptest.NewRecorder()
				m.Admin.ServeHTTP(rec, req)
				if rec.Code != c.code {
					t.Errorf("%s %s with %q: %d, want %d", method, path, c.auth, rec.Code, c.code)
				}
				if rec.Code == http.StatusUnauthorized && !strings.Contains(strings.Join(rec.Header().Values("WWW-Authenticate"), ","), "Basic") {
					t.Errorf("GET %s: 401 without a Basic challenge, so a browser would not ask for the token", c.path)
				}
			}
		})
	}
}

func TestShortAdminTokenRefused(t *testing.T) {
	dir := t.TempDir()
	cfg := &config.Config{LogDir: dir + "/logs", DataDir: dir + "/data", Servers: []config.Server{
		{Name: "A", Addr: "127.0.0.1:1", Admin: "127.0.0.1:2"},
	}}
	cfg.ApplyDefaults()
	for _, env := range []string{config.EnvAdminToken, config.EnvMetricsToken} {
		_, err := member.Open(t.Context(), cfg, "A", member.Overrides{
			LogOutput: io.Discard, Places: stubPlaces{},
			Env: func(k string) string {
				if k == env {
					return "short"
				}
				return ""
			},
		})
		if err == nil || !strings.Contains(err.Error(), env+" is 5 bytes; use at least 16") {
			t.Errorf("Open with a 5-byte %s: %v, want it refused", env, err)
		}
	}
}

func TestHerdSharesTheAdminToken(t *testing.T) {
	const token = "shared-admin-token-0123456789"
	dir := t.TempDir()
	lnA, lnB := listen(t), listen(t)
	cfg := &config.Config{LogDir: dir + "/logs", DataDir: dir + "/data", Servers: []config.Server{
		{Name: "A", Addr: lnA.Addr().String(), Neighbors: []string{"B"}, Admin: freeAddr(t)},
		{Name: "B", Addr: lnB.Addr().String(), Admin: freeAddr(t)},
	}}
	cfg.ApplyDefaults()
	for _, tc := range []struct {
		tokenB, state, error string
	}{
		{token, admin.StateUp, ""},
		{"another-token-0123456789", admin.StateDown, "refused this server's admin token"},
	} {
		env := func(tok string) func(string) string {
			return func(k string) string {
				if k == config.EnvAdminToken {
					return tok
				}
				return ""
			}
		}
		a := open(t, cfg, "A", member.Overrides{Env: env(token)})
		b := open(t, cfg, "B", member.Overrides{Env: env(tc.tokenB)})
		stopA, stopB := serve(t, a, lnA), serve(t, b, lnB)
		herdtest.Eventually(t, 5*time.Second, func() error {
			req, _ := http.NewRequest(http.MethodGet, "http://"+cfg.Servers[0].Admin+"/api/herd", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			var h admin.Herd
			if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
				return err
			}
			if m := h.Servers[1]; m.State != tc.state || !strings.Contains(m.Error, tc.error) {
				return fmt.Errorf("B with token %q: %s %q, want %s %q", tc.tokenB, m.State, m.Error, tc.state, tc.error)
			}
			return nil
		})
		stopA()
		stopB()
		a.Close()
		b.Close()
		lnA, lnB = listen(t), listen(t)
		cfg.Servers[0].Addr, cfg.Servers[1].Addr = lnA.Addr().String(), lnB.Addr().String()
	}
}
