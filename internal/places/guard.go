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
	// Name identifies the provider in logs.
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
	// waiting counts the lookups waiting for an upstream answer.
	waiting atomic.Int64
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
	if opts.RateLimit > 0 {
		g.limiter = rate.NewLimiter(rate.Limit(opts.RateLimit), max(opts.RateBurst, 1))
	}
	return g
}

// Nearby implements Provider. The body it returns belongs to the caller.
func (g *Guard) Nearby(ctx context.Context, q Query) ([]byte, error) {
	body, _, err := g.lookup(ctx, q)
	return body, err
}

// MayBlock implements Blocker: a lookup may wait for the upstream.
func (g *Guard) MayBlock() bool { return true }

// lookup is Nearby, also reporting the answer's status and whether the
// cache answered, for Instrument.
func (g *Guard) lookup(ctx context.Context, q Query) (body []byte, how served, err error) {
	key := lookupKey(q)
	if a, ok := g.cache.get(key, g.now()); ok {
		return bytes.Clone(a.body), served{status: a.status, cached: true}, nil
	}

	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	flight := g.flight.DoChan(key, func() (any, error) {
		return g.ask(ctx, q, key)
	})
	g.waiting.Add(1)
	defer g.waiting.Add(-1)

	select {
	case r := <-flight:
		if r.Err != nil {
			return nil, served{status: statusOf(r.Err)}, r.Err
		}
		a := r.Val.(answer)
		return bytes.Clone(a.body), served{status: a.status}, nil
	case <-ctx.Done():
		err := interrupted(ctx.Err())
		return nil, served{status: statusOf(err)}, err
	}
}

// served says how a Guard answered a lookup.
type served struct {
	status string // the answer's Nearby Search status
	cached bool   // the cache answered
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
