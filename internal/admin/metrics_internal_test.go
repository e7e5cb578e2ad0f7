package admin

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/herd-dev/herd/internal/places"
	"github.com/herd-dev/herd/internal/server"
)

// written returns what metric m holds.
func written(t *testing.T, m prometheus.Metric) *dto.Metric {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	return &d
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	return written(t, c).GetCounter().GetValue()
}

func histogramCount(t *testing.T, o prometheus.Observer) uint64 {
	t.Helper()
	return written(t, o.(prometheus.Histogram)).GetHistogram().GetSampleCount()
}

// series counts the series c collects.
func series(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	n := 0
	for range ch {
		n++
	}
	return n
}

func TestPlacesObserver(t *testing.T) {
	m := NewMetrics()
	if got := series(m.placesRequests); got != 0 {
		t.Fatalf("herd_places_requests_total has %d series before any provider, want 0", got)
	}
	obs := m.Places("google")
	if got, want := series(m.placesRequests), len(places.Statuses()); got != want {
		t.Errorf("herd_places_requests_total has %d series for a provider not asked yet, want %d: one per status, at zero", got, want)
	}
	if series(m.placesSeconds) != 1 || series(m.placesHits) != 1 {
		t.Errorf("the latency and cache-hit series of a provider not asked yet are missing")
	}
	for _, l := range []places.Lookup{
		{Status: places.StatusOK, Duration: time.Millisecond},
		{Status: places.StatusOK, Cached: true},
		{Status: places.StatusRequestDenied, Duration: time.Second},
	} {
		obs.ObserveLookup(l)
	}
	for status, want := range map[string]float64{places.StatusOK: 2, places.StatusRequestDenied: 1, places.StatusZeroResults: 0} {
		if got := counterValue(t, m.placesRequests.WithLabelValues("google", status)); got != want {
			t.Errorf("herd_places_requests_total{provider=google,status=%s} = %v, want %v", status, got, want)
		}
	}
	if got := counterValue(t, m.placesHits.WithLabelValues("google")); got != 1 {
		t.Errorf("herd_places_cache_hits_total = %v, want 1", got)
	}
	if got := histogramCount(t, m.placesSeconds.WithLabelValues("google")); got != 2 {
		t.Errorf("herd_places_upstream_seconds count = %d, want 2 (the cached lookup is not observed)", got)
	}
}

func TestCommand(t *testing.T) {
	m := NewMetrics()
	known := 0
	for _, outcomes := range server.Outcomes() {
		known += len(outcomes)
	}
	if got := series(m.commands); got != known {
		t.Errorf("herd_commands_total starts with %d series, want every known kind and outcome (%d) at zero", got, known)
	}
	for _, c := range []struct {
		kind    server.Kind
		outcome server.Outcome
	}{
		{server.KindIAMAT, server.OutcomeOK}, {server.KindIAMAT, server.OutcomeOK}, {server.KindWHATSAT, server.OutcomePlacesError},
	} {
		m.Command(c.kind, c.outcome, 3*time.Millisecond)
	}
	for _, c := range []struct {
		kind, outcome string
		want          float64
	}{
		{"iamat", "ok", 2}, {"iamat", "stale", 0}, {"whatsat", "places_error", 1}, {"probe", "ok", 0},
	} {
		if got := counterValue(t, m.commands.WithLabelValues(c.kind, c.outcome)); got != c.want {
			t.Errorf("herd_commands_total{kind=%s,outcome=%s} = %v, want %v", c.kind, c.outcome, got, c.want)
		}
	}
	if got := histogramCount(t, m.commandSeconds.WithLabelValues("iamat")); got != 2 {
		t.Errorf("herd_command_duration_seconds{kind=iamat} count = %d, want 2", got)
	}
}
