package places

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const okBody = `{"html_attributions":[],"results":[{"name":"Royce Hall"}],"status":"OK"}`

// stubProvider answers every lookup with body or err and counts its calls.
// With a gate, each call waits for the gate to close, ignoring its context
// like a hung upstream would.
type stubProvider struct {
	body  string
	err   error
	gate  chan struct{}
	calls atomic.Int32
}

func (s *stubProvider) Nearby(ctx context.Context, q Query) ([]byte, error) {
	s.calls.Add(1)
	if s.gate != nil {
		<-s.gate
	}
	if s.err != nil {
		return nil, s.err
	}
	return []byte(s.body), nil
}

// gated returns a stub whose calls wait until the test ends.
func gated(t *testing.T, body string) *stubProvider {
	s := &stubProvider{body: body, gate: make(chan struct{})}
	t.Cleanup(func() {
		select {
		case <-s.gate:
		default:
			close(s.gate)
		}
	})
	return s
}

// waitUntil yields until cond holds, failing the test after a few seconds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		runtime.Gosched()
	}
}

// fakeClock is a settable clock for the cache.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type lookupResult struct {
	body []byte
	err  error
}

func TestGuardSharesIdenticalLookups(t *testing.T) {
	const callers = 8
	stub := gated(t, okBody)
	g := NewGuard(stub, GuardOptions{Name: "stub"})

	results := make(chan lookupResult, callers)
	for range callers {
		go func() {
			body, err := g.Nearby(context.Background(), uclaQuery)
			results <- lookupResult{body, err}
		}()
	}
	waitUntil(t, "every caller waits on the upstream", func() bool { return g.m.waiting.Load() == callers })
	close(stub.gate)
	for range callers {
		r := <-results
		if r.err != nil || string(r.body) != okBody {
			t.Errorf("Nearby = %s, %v; want the upstream body", r.body, r.err)
		}
	}
	if n := stub.calls.Load(); n != 1 {
		t.Errorf("%d identical lookups made %d upstream calls, want 1", callers, n)
	}
	s := g.Stats()
	if s.Requests != callers || s.Upstream != 1 || s.SharedHits != callers-1 || s.Waiting != 0 {
		t.Errorf("Stats = %+v, want %d requests, 1 upstream, %d shared, 0 waiting", s, callers, callers-1)
	}
}

func TestGuardSharedLookupOutlivesItsLeader(t *testing.T) {
	stub := gated(t, okBody)
	g := NewGuard(stub, GuardOptions{Name: "stub"})

	leaderCtx, cancelLeader := context.WithCancel(context.Background())
	leader := make(chan lookupResult, 1)
	go func() {
		body, err := g.Nearby(leaderCtx, uclaQuery)
		leader <- lookupResult{body, err}
	}()
	waitUntil(t, "the leader waits", func() bool { return g.m.waiting.Load() == 1 })
	follower := make(chan lookupResult, 1)
	go func() {
		body, err := g.Nearby(context.Background(), uclaQuery)
		follower <- lookupResult{body, err}
	}()
	waitUntil(t, "the follower waits", func() bool { return g.m.waiting.Load() == 2 })

	cancelLeader()
	r := <-leader
	assertPlacesError(t, r.err, StatusUnknownError, "lookup canceled")
	if !errors.Is(r.err, context.Canceled) {
		t.Errorf("leader error %v does not wrap context.Canceled", r.err)
	}
	close(stub.gate)
	if r := <-follower; r.err != nil || string(r.body) != okBody {
		t.Errorf("follower got %s, %v; want the upstream body", r.body, r.err)
	}
	if n := stub.calls.Load(); n != 1 {
		t.Errorf("upstream calls = %d, want 1", n)
	}
}

func TestGuardCache(t *testing.T) {
	const denied = `{"error_message":"The provided API key is invalid.","html_attributions":[],"results":[],"status":"REQUEST_DENIED"}`
	const zero = `{"html_attributions":[],"results":[],"status":"ZERO_RESULTS"}`
	tests := []struct {
		name      string
		ttl       time.Duration
		stub      *stubProvider
		steps     []time.Duration // clock advance before each lookup after the first
		wantCalls []int32         // upstream calls after each lookup
	}{
		{"hit until the TTL ends", time.Minute, &stubProvider{body: okBody},
			[]time.Duration{0, 59 * time.Second, time.Second, 0}, []int32{1, 1, 1, 2, 2}},
		{"zero results are cached", time.Minute, &stubProvider{body: zero},
			[]time.Duration{time.Second}, []int32{1, 1}},
		{"off when TTL is 0", 0, &stubProvider{body: okBody},
			[]time.Duration{0}, []int32{1, 2}},
		{"denied bodies are not cached", time.Minute, &stubProvider{body: denied},
			[]time.Duration{0}, []int32{1, 2}},
		{"errors are not cached", time.Minute, &stubProvider{err: &Error{Status: StatusUnknownError, Message: "boom"}},
			[]time.Duration{0}, []int32{1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := &fakeClock{now: time.Unix(1479413884, 0)}
			g := NewGuard(tt.stub, GuardOptions{Name: "stub", CacheTTL: tt.ttl})
			g.now = clock.Now
			for i, want := range tt.wantCalls {
				if i > 0 {
					clock.Advance(tt.steps[i-1])
				}
				body, err := g.Nearby(context.Background(), uclaQuery)
				if (err == nil) != (tt.stub.err == nil) || (err == nil && string(body) != tt.stub.body) {
					t.Fatalf("lookup %d = %s, %v", i, body, err)
				}
				if got := tt.stub.calls.Load(); got != want {
					t.Fatalf("after lookup %d: %d upstream calls, want %d", i, got, want)
				}
			}
			s := g.Stats()
			if s.CacheHits+s.Upstream != uint64(len(tt.wantCalls)) {
				t.Errorf("Stats = %+v: cache hits and upstream requests do not add up to %d lookups", s, len(tt.wantCalls))
			}
		})
	}
}

func TestGuardCacheHitsAreCopies(t *testing.T) {
	g := NewGuard(&stubProvider{body: okBody}, GuardOptions{CacheTTL: time.Hour})
	first, err := g.Nearby(context.Background(), uclaQuery)
	if err != nil {
		t.Fatal(err)
	}
	clear(first) // a caller may fold or overwrite its body in place
	second, err := g.Nearby(context.Background(), uclaQuery)
	if err != nil || string(second) != okBody {
		t.Errorf("cache hit = %q, %v; want the original body", second, err)
	}
}

func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	now := time.Unix(0, 0)
	c := newCache(time.Hour, 2)
	c.put("a", answer{status: "a"}, now)
	c.put("b", answer{status: "b"}, now)
	c.get("a", now)
	c.put("c", answer{status: "c"}, now)
	for key, want := range map[string]bool{"a": true, "b": false, "c": true} {
		if _, ok := c.get(key, now); ok != want {
			t.Errorf("get(%q) found = %v, want %v", key, ok, want)
		}
	}
}

func TestGuardRateLimit(t *testing.T) {
	stub := &stubProvider{body: okBody}
	// One token per thousand seconds: after the burst, nothing refills
	// during the test. The long timeout shows that a refused lookup does
	// not wait for a token.
	g := NewGuard(stub, GuardOptions{Name: "stub", RateLimit: 0.001, RateBurst: 2, Timeout: time.Hour})
	for i := range 3 {
		q := uclaQuery
		q.Lat += float64(i) // distinct lookups: nothing shared
		body, err := g.Nearby(context.Background(), q)
		if i < 2 {
			if err != nil {
				t.Fatalf("lookup %d within the burst: %v", i, err)
			}
			continue
		}
		if err == nil {
			t.Fatalf("lookup %d over the limit = %s, want OVER_QUERY_LIMIT", i, body)
		}
		assertPlacesError(t, err, StatusOverQueryLimit, "over the limit of 0.001 upstream requests per second")
	}
	if n := stub.calls.Load(); n != 2 {
		t.Errorf("upstream calls = %d, want 2", n)
	}
	if n := g.Stats().Errors[StatusOverQueryLimit]; n != 1 {
		t.Errorf("Stats().Errors[OVER_QUERY_LIMIT] = %d, want 1", n)
	}
}

func TestGuardTimeout(t *testing.T) {
	stub := gated(t, okBody) // never answers while the test runs
	g := NewGuard(stub, GuardOptions{Name: "stub", Timeout: 30 * time.Millisecond})
	_, err := g.Nearby(context.Background(), uclaQuery)
	assertPlacesError(t, err, StatusUnknownError, "upstream did not answer in time")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not wrap context.DeadlineExceeded", err)
	}
	if n := g.Stats().Errors[StatusUnknownError]; n != 1 {
		t.Errorf("Stats().Errors[UNKNOWN_ERROR] = %d, want 1", n)
	}
}

func TestGuardObserver(t *testing.T) {
	type observation struct {
		provider, status string
		cached           bool
	}
	var (
		mu   sync.Mutex
		seen []observation
	)
	stub := &stubProvider{body: okBody}
	g := NewGuard(stub, GuardOptions{Name: "google", CacheTTL: time.Minute})
	g.SetObserver(func(provider, status string, d time.Duration, cached bool) {
		if d < 0 {
			t.Errorf("negative duration %v", d)
		}
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, observation{provider, status, cached})
	})

	g.Nearby(context.Background(), uclaQuery)
	g.Nearby(context.Background(), uclaQuery)
	stub.err = &Error{Status: StatusRequestDenied, Message: "no"}
	other := uclaQuery
	other.Limit = 1
	g.Nearby(context.Background(), other)
	g.SetObserver(nil)
	g.Nearby(context.Background(), other)

	want := []observation{{"google", StatusOK, false}, {"google", StatusOK, true}, {"google", StatusRequestDenied, false}}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != len(want) {
		t.Fatalf("observed %+v, want %+v", seen, want)
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Errorf("observation %d = %+v, want %+v", i, seen[i], want[i])
		}
	}
	s := g.Stats()
	wantErrors := map[string]uint64{StatusInvalidRequest: 0, StatusRequestDenied: 2, StatusOverQueryLimit: 0, StatusUnknownError: 0}
	for status, n := range wantErrors {
		if s.Errors[status] != n {
			t.Errorf("Stats().Errors = %v, want %v", s.Errors, wantErrors)
			break
		}
	}
	if s.Provider != "google" || s.Requests != 4 || s.CacheHits != 1 || s.Upstream != 3 || s.UpstreamLatency < s.LastLatency {
		t.Errorf("Stats = %+v", s)
	}
}
