package places

import (
	"bytes"
	"context"
	"time"
)

// Lookup is one answered lookup, as an Observer sees it.
type Lookup struct {
	// Status is the Nearby Search status the client got: one of Statuses.
	Status string
	// Duration is how long the lookup took, waiting for a shared upstream
	// request included.
	Duration time.Duration
	// Cached is set when a Guard's cache answered.
	Cached bool
}

// Observer is told of every lookup an instrumented provider answers (see
// Instrument). ObserveLookup must be safe for concurrent use and quick: it
// runs on the lookup's path.
type Observer interface {
	ObserveLookup(Lookup)
}

// Statuses lists every status a Lookup may have.
func Statuses() []string {
	return []string{StatusOK, StatusZeroResults, StatusInvalidRequest, StatusRequestDenied, StatusOverQueryLimit, StatusUnknownError}
}

// Blocker is implemented by providers that know whether a lookup may wait
// for something outside the process; see MayBlock.
type Blocker interface {
	MayBlock() bool
}

// MayBlock reports whether a lookup of p may wait for something outside the
// process, such as the network, so that a server should not hold a
// connection's other work up for it. A provider that does not implement
// Blocker may.
func MayBlock(p Provider) bool {
	if b, ok := p.(Blocker); ok {
		return b.MayBlock()
	}
	return true
}

// Instrument returns p reporting each of its lookups to obs. This is the
// one way lookups are measured, whatever the provider: a Guard says whether
// its cache answered, and any other provider's status is read from its
// answer. The result is an Appender when p is one, and MayBlock as p is.
func Instrument(p Provider, obs Observer) Provider {
	o := &instrumented{p: p, obs: obs, mayBlock: MayBlock(p)}
	if a, ok := p.(Appender); ok {
		return &instrumentedAppender{instrumented: o, a: a}
	}
	return o
}

// instrumented is a provider whose lookups are reported to an Observer.
type instrumented struct {
	p        Provider
	obs      Observer
	mayBlock bool
}

// Nearby implements Provider.
func (o *instrumented) Nearby(ctx context.Context, q Query) ([]byte, error) {
	start := time.Now()
	if g, ok := o.p.(*Guard); ok {
		body, how, err := g.lookup(ctx, q)
		o.obs.ObserveLookup(Lookup{Status: knownStatus(how.status), Duration: time.Since(start), Cached: how.cached})
		return body, err
	}
	body, err := o.p.Nearby(ctx, q)
	o.observe(start, body, err)
	return body, err
}

// MayBlock implements Blocker.
func (o *instrumented) MayBlock() bool { return o.mayBlock }

// observe reports a lookup that started at start and ended with body or err.
func (o *instrumented) observe(start time.Time, body []byte, err error) {
	status := answerStatus(body)
	if err != nil {
		status = knownStatus(statusOf(err))
	}
	o.obs.ObserveLookup(Lookup{Status: status, Duration: time.Since(start)})
}

// instrumentedAppender is an instrumented Appender, which stays one, so
// that lookups still append to the caller's buffer.
type instrumentedAppender struct {
	*instrumented
	a Appender
}

// AppendNearby implements Appender.
func (o *instrumentedAppender) AppendNearby(ctx context.Context, dst []byte, q Query) ([]byte, error) {
	start := time.Now()
	n := len(dst)
	dst, err := o.a.AppendNearby(ctx, dst, q)
	o.observe(start, dst[n:], err)
	return dst, err
}

// answerStatus returns the status of a Nearby Search answer: the value of
// its last "status" key, which is the top-level one, as every provider (and
// Google) writes it after the results. It scans rather than parses, because
// it runs on every lookup and bodies of twenty results are large. An answer
// without a status, or with one not in Statuses, gives UNKNOWN_ERROR.
func answerStatus(body []byte) string {
	i := bytes.LastIndex(body, statusKey)
	if i < 0 {
		return StatusUnknownError
	}
	rest := bytes.TrimLeft(body[i+len(statusKey):], jsonSpace)
	rest, ok := bytes.CutPrefix(rest, []byte(":"))
	if !ok {
		return StatusUnknownError
	}
	rest, ok = bytes.CutPrefix(bytes.TrimLeft(rest, jsonSpace), []byte(`"`))
	end := bytes.IndexByte(rest, '"')
	if !ok || end < 0 {
		return StatusUnknownError
	}
	return knownStatus(rest[:end])
}

// statusKey is what precedes a Nearby Search answer's status.
var statusKey = []byte(`"status"`)

const jsonSpace = " \t\r\n"

// knownStatus returns status if it is one of Statuses, and UNKNOWN_ERROR
// otherwise, so that an upstream cannot make up statuses (and metric
// series).
func knownStatus[S string | []byte](status S) string {
	switch string(status) {
	case StatusOK:
		return StatusOK
	case StatusZeroResults:
		return StatusZeroResults
	case StatusInvalidRequest:
		return StatusInvalidRequest
	case StatusRequestDenied:
		return StatusRequestDenied
	case StatusOverQueryLimit:
		return StatusOverQueryLimit
	}
	return StatusUnknownError
}
