package places

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"
)

// Defaults for GuardOptions.
const (
	DefaultTimeout   = 10 * time.Second
	DefaultCacheSize = 4096
)

// GuardOptions tunes a Guard. The zero value shares identical lookups and
// bounds each by DefaultTimeout, with no cache and no rate limit.
type GuardOptions struct {
	// Name identifies the provider in logs, Stats and Observer calls.
	Name string
	// Timeout bounds each lookup; 0 means DefaultTimeout.
	Timeout time.Duration
	// CacheTTL keeps OK and ZERO_RESULTS answers this long; 0 disables the cache.
	CacheTTL time.Duration
	// CacheSize is the most answers the cache keeps; 0 means DefaultCacheSize.
	CacheSize int
	// RateLimit caps upstream requests per second; 0 means no limit.
	RateLimit float64
	// RateBurst is how many requests may go at once above RateLimit; below 1 means 1.
	RateBurst int
	// Logger receives one Info line per upstream request; nil discards them.
	Logger *slog.Logger
}

// Observer is told of every lookup a Guard answers: the provider's name, the
// answer's Nearby Search status, how long the lookup took and whether the
// cache answered it. It must be safe for concurrent use and return quickly.
type Observer func(provider, status string, d time.Duration, cached bool)

// Guard wraps a remote Provider so that it costs what it must and no more:
// concurrent identical lookups share one upstream request, answers may be
// cached for a while, upstream requests are rate-limited (a lookup over the
// limit gets OVER_QUERY_LIMIT at once instead of queueing), and every lookup
// ends within a timeout (UNKNOWN_ERROR when the upstream is too slow).
// Lookups are identical when they have the same limit and radius (to the
// metre) around the same point (to 1e-5 degrees, about a metre).
type Guard struct {
	provider Provider
	name     string
	timeout  time.Duration
	limiter  *rate.Limiter // nil: no limit
	cache    *cache        // nil: no cache
	logger   *slog.Logger
	now      func() time.Time // the cache's clock
	flight   singleflight.Group
	observer atomic.Pointer[Observer]
	m        guardMetrics
}

// NewGuard wraps p.
func NewGuard(p Provider, opts GuardOptions) *Guard {
	g := &Guard{
		provider: p,
		name:     opts.Name,
		timeout:  cmp.Or(opts.Timeout, DefaultTimeout),
		cache:    newCache(opts.CacheTTL, cmp.Or(opts.CacheSize, DefaultCacheSize)),
		logger:   cmp.Or(opts.Logger, slog.New(slog.DiscardHandler)),
		now:      time.Now,
	}
	g.m.errors = newErrorCounters()
	if opts.RateLimit > 0 {
		g.limiter = rate.NewLimiter(rate.Limit(opts.RateLimit), max(opts.RateBurst, 1))
	}
	return g
}

// SetObserver reports every later lookup to fn; nil stops reporting. It is
// safe to call while g serves lookups.
func (g *Guard) SetObserver(fn Observer) {
	if fn == nil {
		g.observer.Store(nil)
		return
	}
	g.observer.Store(&fn)
}

// Nearby implements Provider. The body it returns belongs to the caller.
func (g *Guard) Nearby(ctx context.Context, q Query) ([]byte, error) {
	start := time.Now()
	g.m.requests.Add(1)
	key := lookupKey(q)
	if a, ok := g.cache.get(key, g.now()); ok {
		g.m.cacheHits.Add(1)
		g.finish(a.status, start, true)
		return bytes.Clone(a.body), nil
	}

	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	var led atomic.Bool
	flight := g.flight.DoChan(key, func() (any, error) {
		led.Store(true)
		return g.ask(ctx, q, key)
	})
	g.m.waiting.Add(1)
	defer g.m.waiting.Add(-1)

	select {
	case r := <-flight:
		if !led.Load() {
			g.m.sharedHits.Add(1)
		}
		if r.Err != nil {
			g.finish(statusOf(r.Err), start, false)
			return nil, r.Err
		}
		a := r.Val.(answer)
		g.finish(a.status, start, false)
		return bytes.Clone(a.body), nil
	case <-ctx.Done():
		g.finish(StatusUnknownError, start, false)
		return nil, interrupted(ctx.Err())
	}
}

// ask sends one request upstream, within the rate limit and the timeout, logs
// it, and caches a good answer. Its request outlives the lookup that started
// it (ctx's cancellation is dropped) so that lookups sharing it still get an
// answer; the timeout still bounds it.
func (g *Guard) ask(ctx context.Context, q Query, key string) (answer, error) {
	if g.limiter != nil && !g.limiter.Allow() {
		return answer{}, fail(StatusOverQueryLimit,
			fmt.Sprintf("over the limit of %g upstream requests per second", float64(g.limiter.Limit())), nil)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.timeout)
	defer cancel()
	start := time.Now()
	body, err := g.provider.Nearby(ctx, q)
	d := time.Since(start)
	g.m.upstream.Add(1)
	g.m.upstreamNanos.Add(int64(d))
	g.m.lastNanos.Store(int64(d))

	a := answer{body: body}
	var problem string // the error or error_message to log
	if err != nil {
		a.status, problem = statusOf(err), err.Error()
	} else {
		a.status, problem = bodyStatus(body)
	}
	attrs := []slog.Attr{slog.String("provider", g.name), slog.String("status", a.status), slog.Duration("latency", d)}
	if problem != "" {
		attrs = append(attrs, slog.String("error", problem))
	}
	g.logger.LogAttrs(ctx, slog.LevelInfo, "places upstream request", attrs...)
	if err != nil {
		return answer{}, err
	}
	if a.status == StatusOK || a.status == StatusZeroResults {
		g.cache.put(key, a, g.now())
	}
	return a, nil
}

// finish counts a lookup's status and tells the observer.
func (g *Guard) finish(status string, start time.Time, cached bool) {
	g.m.count(status)
	if obs := g.observer.Load(); obs != nil {
		(*obs)(g.name, status, time.Since(start), cached)
	}
}

// lookupKey identifies lookups that may share an answer.
func lookupKey(q Query) string {
	return fmt.Sprintf("%.5f,%.5f,%.0f,%d", q.Lat, q.Lng, q.RadiusMeters, q.Limit)
}

// bodyStatus returns the status and error_message of a Nearby Search body.
func bodyStatus(body []byte) (status, message string) {
	var b struct {
		Status       string `json:"status"`
		ErrorMessage string `json:"error_message"`
	}
	if err := json.Unmarshal(body, &b); err != nil || b.Status == "" {
		return StatusUnknownError, "answer has no status"
	}
	return b.Status, b.ErrorMessage
}

// Stats is a snapshot of a Guard's counters, ready for a metrics exporter.
type Stats struct {
	Provider   string
	Requests   uint64 // lookups asked of the Guard
	CacheHits  uint64 // lookups answered from the cache
	SharedHits uint64 // lookups answered by another lookup's upstream request
	Upstream   uint64 // requests sent upstream
	Waiting    int64  // lookups waiting for an upstream answer right now
	// Errors counts lookups by the error status they were answered with:
	// every status but OK and ZERO_RESULTS, whether the upstream failed, sent
	// a body with that status, or the Guard refused (rate limit, timeout).
	Errors          map[string]uint64
	UpstreamLatency time.Duration // total time spent in upstream requests
	LastLatency     time.Duration // time the latest upstream request took
}

// Stats returns g's counters.
func (g *Guard) Stats() Stats {
	s := Stats{
		Provider:        g.name,
		Requests:        g.m.requests.Load(),
		CacheHits:       g.m.cacheHits.Load(),
		SharedHits:      g.m.sharedHits.Load(),
		Upstream:        g.m.upstream.Load(),
		Waiting:         g.m.waiting.Load(),
		Errors:          make(map[string]uint64, len(g.m.errors)),
		UpstreamLatency: time.Duration(g.m.upstreamNanos.Load()),
		LastLatency:     time.Duration(g.m.lastNanos.Load()),
	}
	for status, n := range g.m.errors {
		s.Errors[status] = n.Load()
	}
	return s
}

// guardMetrics are a Guard's counters.
type guardMetrics struct {
	requests, cacheHits, sharedHits, upstream atomic.Uint64
	waiting                                   atomic.Int64
	upstreamNanos, lastNanos                  atomic.Int64
	errors                                    map[string]*atomic.Uint64 // from newErrorCounters, never changed
}

// newErrorCounters returns a zero counter for each error status.
func newErrorCounters() map[string]*atomic.Uint64 {
	counters := map[string]*atomic.Uint64{}
	for _, s := range []string{StatusInvalidRequest, StatusRequestDenied, StatusOverQueryLimit, StatusUnknownError} {
		counters[s] = new(atomic.Uint64)
	}
	return counters
}

// count records a lookup answered with status. Statuses that are neither
// known errors nor OK or ZERO_RESULTS count as UNKNOWN_ERROR.
func (m *guardMetrics) count(status string) {
	if status == StatusOK || status == StatusZeroResults {
		return
	}
	n, ok := m.errors[status]
	if !ok {
		n = m.errors[StatusUnknownError]
	}
	n.Add(1)
}
