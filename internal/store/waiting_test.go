package store_test

import (
	"testing"
	"time"
)

// waitABit yields while polling for a condition, failing the test if the
// condition is not met within a generous deadline.
func waitABit(t testing.TB) {
	t.Helper()
	if deadline, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if d, ok := deadline.Deadline(); ok && time.Until(d) < 5*time.Second {
			t.Fatal("condition not met before the test deadline")
		}
	}
	time.Sleep(time.Millisecond)
}
