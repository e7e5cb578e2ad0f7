package server

import (
	"sync/atomic"
	"time"
)

// throttle lets one event a minute through and counts the rest, so that a
// flood of the same warning (a client hammering a full table, a churn of
// refused connections) costs one log line a minute, not one per event.
type throttle struct {
	next       atomic.Int64 // Unix nanoseconds before which events are held back
	suppressed atomic.Uint64
}

const throttleEvery = time.Minute

// allow reports whether an event at now may be logged, and how many were
// held back since the last one that was.
func (t *throttle) allow(now time.Time) (ok bool, suppressed uint64) {
	next := t.next.Load()
	if now.UnixNano() < next || !t.next.CompareAndSwap(next, now.Add(throttleEvery).UnixNano()) {
		t.suppressed.Add(1)
		return false, 0
	}
	return true, t.suppressed.Swap(0)
}
