package admin

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/herd-dev/herd/internal/buildinfo"
	"github.com/herd-dev/herd/internal/durable"
	"github.com/herd-dev/herd/internal/herd"
	"github.com/herd-dev/herd/internal/places"
	"github.com/herd-dev/herd/internal/server"
)

// Metrics holds one server's Prometheus registry and the metrics that are
// counted as events happen: client commands (it implements server.Metrics)
// and places lookups (see Places). Everything else is read from the
// server's own counters at scrape time by the collector that New registers.
// A Metrics belongs to one server: several servers in one process each have
// their own, and nothing is registered globally.
type Metrics struct {
	registry *prometheus.Registry

	commands       *prometheus.CounterVec
	commandSeconds *prometheus.HistogramVec
	// commandCounts and commandLatency are the children of commands and
	// commandSeconds for every kind and outcome the server reports,
	// resolved once so that Command takes no lock. They are never written
	// after NewMetrics.
	commandCounts  map[server.Kind]map[server.Outcome]prometheus.Counter
	commandLatency map[server.Kind]prometheus.Observer

	placesRequests *prometheus.CounterVec
	placesSeconds  *prometheus.HistogramVec
	placesHits     *prometheus.CounterVec

	propagation *prometheus.HistogramVec
}

// latencyBuckets spans 10 µs to 10 s in half-decades: an IAMAT takes
// microseconds (more with fsync=always), a WHATSAT up to the places timeout.
// The bounds are written out, not computed, so that they print as written
// (le="3e-05", not le="2.9999999999999997e-05").
var latencyBuckets = []float64{
	10e-6, 30e-6, 100e-6, 300e-6, 1e-3, 3e-3, 10e-3, 30e-3, 100e-3, 300e-3, 1, 3, 10,
}

// NewMetrics returns an empty per-server registry with the Go runtime and
// process collectors and the event-counted herd metrics.
func NewMetrics() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herd_commands_total",
			Help: "Client commands handled, by kind (iamat, whatsat, at, invalid, probe) and outcome (ok, stale, unknown_client, places_error, rejected, id_too_long, clock_ahead, client_cap, not_durable).",
		}, []string{"kind", "outcome"}),
		commandSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "herd_command_duration_seconds",
			Help:    "Time from reading a client command to its reply being buffered, by kind.",
			Buckets: latencyBuckets,
		}, []string{"kind"}),
		commandCounts:  map[server.Kind]map[server.Outcome]prometheus.Counter{},
		commandLatency: map[server.Kind]prometheus.Observer{},
		placesRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herd_places_requests_total",
			Help: "Places lookups answered, by provider and Nearby Search status (OK, ZERO_RESULTS, INVALID_REQUEST, REQUEST_DENIED, OVER_QUERY_LIMIT, UNKNOWN_ERROR).",
		}, []string{"provider", "status"}),
		placesSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "herd_places_upstream_seconds",
			Help:    "Time a places lookup not answered from the cache took, including waiting for a shared upstream request, by provider.",
			Buckets: latencyBuckets,
		}, []string{"provider"}),
		placesHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herd_places_cache_hits_total",
			Help: "Places lookups answered from the cache, by provider.",
		}, []string{"provider"}),
		propagation: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "herd_propagation_seconds",
			Help:    "Time from an IAMAT at the server that took it until this server stored the update, by the neighbor it came from (catch-up left out; as true as the servers' clocks agree).",
			Buckets: latencyBuckets,
		}, []string{"peer"}),
	}
	for kind, outcomes := range server.Outcomes() {
		m.commandLatency[kind] = m.commandSeconds.WithLabelValues(kind.String())
		m.commandCounts[kind] = map[server.Outcome]prometheus.Counter{}
		for _, o := range outcomes {
			m.commandCounts[kind][o] = m.commands.WithLabelValues(kind.String(), o.String())
		}
	}
	build := buildinfo.Get()
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "herd_build_info",
		Help:        "Always 1; its labels say which build of herd is running.",
		ConstLabels: prometheus.Labels{"version": build.Version, "revision": build.Revision, "goversion": build.GoVersion},
	})
	buildInfo.Set(1)
	m.registry.MustRegister(
		buildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.commands, m.commandSeconds, m.placesRequests, m.placesSeconds, m.placesHits, m.propagation,
	)
	return m
}

// Command implements server.Metrics.
func (m *Metrics) Command(kind server.Kind, outcome server.Outcome, d time.Duration) {
	m.commandCounts[kind][outcome].Inc()
	m.commandLatency[kind].Observe(d.Seconds())
}

// Propagation implements server.Metrics.
func (m *Metrics) Propagation(peer string) func(d time.Duration) {
	h := m.propagation.WithLabelValues(peer)
	return func(d time.Duration) { h.Observe(d.Seconds()) }
}

// Places returns the observer that counts the lookups of the provider
// called name (see places.Instrument). It creates the provider's series at
// zero, so that they are there before the first lookup.
func (m *Metrics) Places(name string) places.Observer {
	o := &placesObserver{
		requests: map[string]prometheus.Counter{},
		seconds:  m.placesSeconds.WithLabelValues(name),
		hits:     m.placesHits.WithLabelValues(name),
	}
	for _, status := range places.Statuses() {
		o.requests[status] = m.placesRequests.WithLabelValues(name, status)
	}
	return o
}

// placesObserver counts one provider's lookups in the series resolved for
// it by Metrics.Places. Its maps are never written after Places.
type placesObserver struct {
	requests map[string]prometheus.Counter // by status
	seconds  prometheus.Observer
	hits     prometheus.Counter
}

// ObserveLookup implements places.Observer.
func (o *placesObserver) ObserveLookup(l places.Lookup) {
	o.requests[l.Status].Inc()
	if l.Cached {
		o.hits.Inc()
		return
	}
	o.seconds.Observe(l.Duration.Seconds())
}

// stateCollector reads a server's running totals at scrape time, so that
// nothing is counted twice.
type stateCollector struct {
	server *server.Server
	node   *herd.Node
	store  *durable.Store
	// logDropped counts log lines dropped; nil when nobody counts them.
	logDropped func() uint64

	clients, linkUp, reconnects, backlog               *prometheus.Desc
	peerUpdates, peerBytes, lastUpdateAge              *prometheus.Desc
	floodMessages, floodDuplicates, catchUp            *prometheus.Desc
	storeBytes, storeFsyncs, storeFsyncSeconds         *prometheus.Desc
	storeFailed, storeDropped, storeCompactionFailures *prometheus.Desc
	connectionsOpen, connectionsRefused                *prometheus.Desc
	logLinesDropped                                    *prometheus.Desc
}

func newStateCollector(s *server.Server, n *herd.Node, st *durable.Store, logDropped func() uint64) *stateCollector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &stateCollector{
		server: s, node: n, store: st, logDropped: logDropped,
		clients: desc("herd_clients", "Clients this server knows a location for."),
		linkUp: desc("herd_peer_link_up",
			"1 when the peer link is authenticated and streaming: direction=out is this server's link to the peer, in is the peer's link to this server.",
			"peer", "direction"),
		reconnects: desc("herd_peer_reconnects_total", "Times this server's link to the peer came up, the first time included.", "peer"),
		backlog: desc("herd_peer_send_backlog",
			"Records this server has stored that the peer has not acknowledged (head minus acknowledged sequence). Links keep a cursor instead of a queue, so this is the herd's send-queue depth; it costs no memory.",
			"peer"),
		peerUpdates:             desc("herd_peer_updates_total", "Updates sent to (direction=out) and received from (in) each neighbor.", "peer", "direction"),
		peerBytes:               desc("herd_peer_bytes_total", "Bytes of change feed sent to (direction=out) and received from (in) each neighbor.", "peer", "direction"),
		lastUpdateAge:           desc("herd_peer_last_update_age_seconds", "Seconds since an update last arrived from the neighbor; absent until one has.", "peer"),
		floodMessages:           desc("herd_flood_messages_total", "Records flooded over peer links: direction=in received, out sent.", "direction"),
		floodDuplicates:         desc("herd_flood_duplicates_total", "Flooded records received that were not newer than the stored ones and were dropped."),
		catchUp:                 desc("herd_catchup_records_total", "Records exchanged to catch a link up after it (re)opened, by direction (sent, received).", "direction"),
		storeBytes:              desc("herd_store_bytes", "Size of the store's snapshot and journal segment files."),
		storeFsyncs:             desc("herd_store_fsyncs_total", "fsync calls on journal segment files."),
		storeFsyncSeconds:       desc("herd_store_fsync_seconds_total", "Time spent in fsync calls on journal segment files."),
		storeFailed:             desc("herd_store_failed", "1 once a journal write or fsync has failed: updates are no longer durable until the server restarts on a working disk."),
		storeDropped:            desc("herd_store_dropped_entries_total", "Journal entries lost to a failed write or appended after one (memory stays flat instead)."),
		storeCompactionFailures: desc("herd_store_compaction_failures_total", "Background compactions that failed, as on a disk without room for a snapshot: the journal keeps growing until one succeeds."),
		connectionsOpen:         desc("herd_connections_open", "Open accepted connections: clients, and links that neighbors opened to this server."),
		logLinesDropped:         desc("herd_log_dropped_lines_total", "Log lines dropped because the log output (file or stdout) could not be written."),
		connectionsRefused:      desc("herd_connections_refused_total", "Connections refused past limits.max_connections or limits.max_connections_per_ip (only peer links get in past them)."),
	}
}

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.clients, c.linkUp, c.reconnects, c.backlog, c.peerUpdates, c.peerBytes, c.lastUpdateAge,
		c.floodMessages, c.floodDuplicates, c.catchUp,
		c.storeBytes, c.storeFsyncs, c.storeFsyncSeconds, c.storeFailed, c.storeDropped, c.storeCompactionFailures,
		c.connectionsOpen, c.connectionsRefused, c.logLinesDropped,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(c.clients, float64(c.node.Len()))
	for _, l := range c.server.Links() {
		gauge(c.linkUp, boolValue(l.OutUp), l.Peer, "out")
		gauge(c.linkUp, boolValue(l.InUp), l.Peer, "in")
		counter(c.reconnects, float64(l.Reconnects), l.Peer)
		gauge(c.backlog, float64(l.Behind), l.Peer)
		counter(c.peerUpdates, float64(l.UpdatesOut), l.Peer, "out")
		counter(c.peerUpdates, float64(l.UpdatesIn), l.Peer, "in")
		counter(c.peerBytes, float64(l.BytesOut), l.Peer, "out")
		counter(c.peerBytes, float64(l.BytesIn), l.Peer, "in")
		if !l.LastUpdateIn.IsZero() {
			gauge(c.lastUpdateAge, time.Since(l.LastUpdateIn).Seconds(), l.Peer)
		}
	}
	s := c.server.Stats()
	counter(c.floodMessages, float64(s.FloodIn), "in")
	counter(c.floodMessages, float64(s.FloodOut), "out")
	counter(c.floodDuplicates, float64(s.FloodDup))
	counter(c.catchUp, float64(s.CatchUpSent), "sent")
	counter(c.catchUp, float64(s.CatchUpReceived), "received")
	gauge(c.connectionsOpen, float64(s.ConnsOpen))
	counter(c.connectionsRefused, float64(s.ConnsRefused))
	st := c.store.Stats()
	gauge(c.storeBytes, float64(st.DiskBytes))
	counter(c.storeFsyncs, float64(st.Fsyncs))
	counter(c.storeFsyncSeconds, st.TotalFsync.Seconds())
	gauge(c.storeFailed, boolValue(c.store.Err() != nil))
	counter(c.storeDropped, float64(st.Dropped))
	counter(c.storeCompactionFailures, float64(c.store.CompactionFailures()))
	if c.logDropped != nil {
		counter(c.logLinesDropped, float64(c.logDropped()))
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
