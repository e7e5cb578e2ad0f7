package admin

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/herd-dev/herd/internal/places"
	"github.com/herd-dev/herd/internal/server"
)

// fakeProvider answers every lookup with body and err, and counts them.
type fakeProvider struct {
	body  []byte
	err   error
	calls int
}

func (f *fakeProvider) Nearby(context.Context, places.Query) ([]byte, error) {
	f.calls++
	return f.body, f.err
}

// fakeAppender is a fakeProvider that also appends its answer.
type fakeAppender struct{ fakeProvider }

func (f *fakeAppender) AppendNearby(ctx context.Context, dst []byte, q places.Query) ([]byte, error) {
	body, err := f.Nearby(ctx, q)
	if err != nil {
		return dst, err
	}
	return append(dst, body...), nil
}

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

func TestInstrumentPlacesWithoutGuard(t *testing.T) {
	for _, tc := range []struct {
		name   string
		body   string
		err    error
		status string
	}{
		{"ok body", `{"html_attributions":[],"results":[{"name":"x"}],"status":"OK"}`, nil, places.StatusOK},
		{"zero results", `{"html_attributions":[],"results":[],"status":"ZERO_RESULTS"}`, nil, places.StatusZeroResults},
		{"body without status", `{"results":[]}`, nil, places.StatusUnknownError},
		{"not json", `<html>`, nil, places.StatusUnknownError},
		{"places error", "", &places.Error{Status: places.StatusInvalidRequest, Message: "bad"}, places.StatusInvalidRequest},
		{"wrapped places error", "", errors.Join(errors.New("x"), &places.Error{Status: places.StatusRequestDenied}), places.StatusRequestDenied},
		{"other error", "", context.DeadlineExceeded, places.StatusUnknownError},
	} {
		q := places.Query{Lat: 1, Lng: 2, RadiusMeters: 10, Limit: 1}
		t.Run(tc.name, func(t *testing.T) {
			m := NewMetrics()
			fake := &fakeProvider{body: []byte(tc.body), err: tc.err}
			p := m.InstrumentPlaces(fake, "offline")
			if _, ok := p.(places.Appender); ok {
				t.Errorf("InstrumentPlaces made a provider that cannot append an Appender")
			}
			body, err := p.Nearby(t.Context(), q)
			if string(body) != tc.body || !errors.Is(err, tc.err) || fake.calls != 1 {
				t.Fatalf("Nearby = %q, %v after %d calls; want the provider's %q, %v once", body, err, fake.calls, tc.body, tc.err)
			}
			checkCounted(t, m, tc.status)
		})
		t.Run(tc.name+", appending", func(t *testing.T) {
			m := NewMetrics()
			fake := &fakeAppender{fakeProvider{body: []byte(tc.body), err: tc.err}}
			p, ok := m.InstrumentPlaces(fake, "offline").(places.Appender)
			if !ok {
				t.Fatalf("InstrumentPlaces hid the provider's AppendNearby")
			}
			got, err := p.AppendNearby(t.Context(), []byte("kept|"), q)
			want := "kept|" + tc.body
			if tc.err != nil {
				want = "kept|"
			}
			if string(got) != want || !errors.Is(err, tc.err) || fake.calls != 1 {
				t.Fatalf("AppendNearby = %q, %v after %d calls; want %q, %v once", got, err, fake.calls, want, tc.err)
			}
			checkCounted(t, m, tc.status)
		})
	}
}

// checkCounted checks that m counted one lookup of the offline provider,
// with the given status.
func checkCounted(t *testing.T, m *Metrics, status string) {
	t.Helper()
	if got := counterValue(t, m.placesRequests.WithLabelValues("offline", status)); got != 1 {
		t.Errorf("herd_places_requests_total{provider=offline,status=%s} = %v, want 1", status, got)
	}
	if got := series(m.placesRequests); got != 1 {
		t.Errorf("herd_places_requests_total has %d series, want 1", got)
	}
	if got := histogramCount(t, m.placesSeconds.WithLabelValues("offline")); got != 1 {
		t.Errorf("herd_places_upstream_seconds count = %d, want 1", got)
	}
}

func TestInstrumentPlacesGuardObserves(t *testing.T) {
	m := NewMetrics()
	fake := &fakeProvider{body: []byte(`{"html_attributions":[],"results":[],"status":"OK"}`)}
	g := places.NewGuard(fake, places.GuardOptions{Name: "google", CacheTTL: time.Minute})
	if p := m.InstrumentPlaces(g, "ignored"); p != places.Provider(g) {
		t.Fatalf("InstrumentPlaces wrapped the Guard in %T; want the Guard itself", p)
	}
	q := places.Query{Lat: 34, Lng: -118, RadiusMeters: 1000, Limit: 5}
	for range 2 {
		if _, err := g.Nearby(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	if got := counterValue(t, m.placesRequests.WithLabelValues("google", places.StatusOK)); got != 2 {
		t.Errorf("requests{google,OK} = %v, want 2", got)
	}
	if got := counterValue(t, m.placesHits.WithLabelValues("google")); got != 1 {
		t.Errorf("cache hits = %v, want 1", got)
	}
	if got := histogramCount(t, m.placesSeconds.WithLabelValues("google")); got != 1 {
		t.Errorf("upstream histogram count = %d, want 1 (the cached lookup is not observed)", got)
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
