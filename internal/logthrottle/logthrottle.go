// Package logthrottle keeps a repeated warning to one log line a minute,
// counting the ones it holds back.
package logthrottle

import (
	"sync/atomic"
	"time"
)

// Throttle lets one event a minute through and counts the rest, so that a
// flood of the same warning (a client hammering a full table, a churn of
// refused connections, a disk without room) costs one log line a minute,
// not one per event. Its zero value is ready, and it is safe for
// concurrent use.
type Throttle struct {
	next       atomic.Int64 // Unix nanoseconds before which events are held back
	suppressed atomic.Uint64
}

// Every is how often a Throttle lets an event through.
const Every = time.Minute

// Allow reports whether an event at now may be logged, and how many were
// held back since the last one that was.
func (t *Throttle) Allow(now time.Time) (ok bool, suppressed uint64) {
	next := t.next.Load()
	if now.UnixNano() < next || !t.next.CompareAndSwap(next, now.Add(Every).UnixNano()) {
		t.suppressed.Add(1)
		return false, 0
	}
	return true, t.suppressed.Swap(0)
}
