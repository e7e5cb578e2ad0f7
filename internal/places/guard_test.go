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
	waitUntil(t, "every caller waits on the upstream", func() bool { return g.waiting.Load() == callers })
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
	if n := g.waiting.Load(); n != 0 {
		t.Errorf("%d lookups still counted as waiting", n)
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
	waitUntil(t, "the leader waits", func() bool { return g.waiting.Load() == 1 })
	follower := make(chan lookupResult, 1)
	go func() {
		body, err := g.Nearby(context.Background(), uclaQuery)
		follower <- lookupResult{body, err}
	}()
	waitUntil(t, "the follower waits", func() bool { return g.waiting.Load() == 2 })

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
			var seen recorder
			p := Instrument(g, &seen)
			for i, want := range tt.wantCalls {
				if i > 0 {
					clock.Advance(tt.steps[i-1])
				}
				body, err := p.Nearby(context.Background(), uclaQuery)
				if (err == nil) != (tt.stub.err == nil) || (err == nil && string(body) != tt.stub.body) {
					t.Fatalf("lookup %d = %s, %v", i, body, err)
				}
				if got := tt.stub.calls.Load(); got != want {
					t.Fatalf("after lookup %d: %d upstream calls, want %d", i, got, want)
				}
			}
			cached := 0
			for _, l := range seen.all() {
				if l.Cached {
					cached++
				}
			}
			if calls := int(tt.stub.calls.Load()); cached+calls != len(tt.wantCalls) {
				t.Errorf("observed %+v: %d cached and %d upstream calls do not add up to %d lookups", seen.all(), cached, calls, len(tt.wantCalls))
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
}

func TestGuardTimeout(t *testing.T) {
	stub := gated(t, okBody) // never answers while the test runs
	g := NewGuard(stub, GuardOptions{Name: "stub", Timeout: 30 * time.Millisecond})
	_, err := g.Nearby(context.Background(), uclaQuery)
	assertPlacesError(t, err, StatusUnknownError, "upstream did not answer in time")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not wrap context.DeadlineExceeded", err)
	}
}

// recorder is an Observer that keeps what it is told.
type recorder struct {
	mu   sync.Mutex
	seen []Lookup
}

func (r *recorder) ObserveLookup(l Lookup) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, l)
}

func (r *recorder) all() []Lookup {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Lookup(nil), r.seen...)
}

func TestInstrumentGuard(t *testing.T) {
	stub := &stubProvider{body: okBody}
	var seen recorder
	p := Instrument(NewGuard(stub, GuardOptions{Name: "google", CacheTTL: time.Minute}), &seen)
	if _, ok := p.(Appender); ok {
		t.Error("an instrumented Guard claims to append")
	}
	if !MayBlock(p) {
		t.Error("an instrumented Guard says it never blocks")
	}

	p.Nearby(context.Background(), uclaQuery)
	p.Nearby(context.Background(), uclaQuery) // from the cache
	stub.err = &Error{Status: StatusRequestDenied, Message: "no"}
	other := uclaQuery
	other.Limit = 1
	p.Nearby(context.Background(), other)
	stub.err = &Error{Status: "MADE_UP", Message: "no"}
	other.Limit = 2
	p.Nearby(context.Background(), other)

	type observation struct {
		status string
		cached bool
	}
	want := []observation{{StatusOK, false}, {StatusOK, true}, {StatusRequestDenied, false}, {StatusUnknownError, false}}
	got := seen.all()
	if len(got) != len(want) {
		t.Fatalf("observed %+v, want %+v", got, want)
	}
	for i, l := range got {
		if (observation{l.Status, l.Cached}) != want[i] || l.Duration < 0 {
			t.Errorf("lookup %d observed as %+v, want %+v", i, l, want[i])
		}
	}
}

// appendingStub is an offline-like provider: it appends its answer and
// never blocks.
type appendingStub struct{ body string }

func (a appendingStub) Nearby(ctx context.Context, q Query) ([]byte, error) {
	return a.AppendNearby(ctx, nil, q)
}

func (a appendingStub) AppendNearby(_ context.Context, dst []byte, _ Query) ([]byte, error) {
	return append(dst, a.body...), nil
}

func (appendingStub) MayBlock() bool { return false }

func TestInstrumentReadsTheAnswersStatus(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		err        error
		want       string
	}{
		{"ok", okBody, nil, StatusOK},
		{"zero results, indented", "{\n \"results\": [],\n \"status\" : \"ZERO_RESULTS\"\n}", nil, StatusZeroResults},
		{"a result with a status of its own", `{"results":[{"status":"CLOSED"}],"status":"OK"}`, nil, StatusOK},
		{"business_status is not the status", `{"results":[{"business_status":"OPERATIONAL"}],"status":"OK"}`, nil, StatusOK},
		{"made-up status", `{"results":[],"status":"MADE_UP"}`, nil, StatusUnknownError},
		{"no status", `{"results":[]}`, nil, StatusUnknownError},
		{"not JSON", `<html>`, nil, StatusUnknownError},
		{"places error", "", &Error{Status: StatusInvalidRequest, Message: "bad"}, StatusInvalidRequest},
		{"wrapped places error", "", errors.Join(errors.New("x"), &Error{Status: StatusRequestDenied}), StatusRequestDenied},
		{"other error", "", context.DeadlineExceeded, StatusUnknownError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var seen recorder
			p := Instrument(&stubProvider{body: tc.body, err: tc.err}, &seen)
			body, err := p.Nearby(context.Background(), uclaQuery)
			if !errors.Is(err, tc.err) || (err == nil && string(body) != tc.body) {
				t.Fatalf("Nearby = %q, %v; want the provider's answer", body, err)
			}
			if got := seen.all(); len(got) != 1 || got[0].Status != tc.want || got[0].Cached {
				t.Errorf("observed %+v, want one uncached lookup with status %s", got, tc.want)
			}
		})
	}
}

func TestInstrumentKeepsAppending(t *testing.T) {
	var seen recorder
	p, ok := Instrument(appendingStub{body: okBody}, &seen).(Appender)
	if !ok {
		t.Fatal("Instrument hid the provider's AppendNearby")
	}
	if MayBlock(p) {
		t.Error("the instrumented provider blocks; the provider it wraps never does")
	}
	got, err := p.AppendNearby(context.Background(), []byte("kept|"), uclaQuery)
	if err != nil || string(got) != "kept|"+okBody {
		t.Errorf("AppendNearby = %q, %v; want the buffer extended by the answer", got, err)
	}
	if l := seen.all(); len(l) != 1 || l[0].Status != StatusOK {
		t.Errorf("observed %+v, want one OK lookup (read from the appended part only)", l)
	}
	if MayBlock(&stubProvider{}) != true {
		t.Error("a provider that does not say is taken as never blocking")
	}
}
