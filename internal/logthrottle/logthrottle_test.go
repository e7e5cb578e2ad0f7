package logthrottle

import (
	"testing"
	"time"
)

func TestThrottle_OneEventAMinute(t *testing.T) {
	var th Throttle
	t0 := time.Unix(1_000_000, 0)
	steps := []struct {
		at             time.Duration
		ok             bool
		wantSuppressed uint64
	}{
		{0, true, 0},
		{time.Second, false, 0},
		{30 * time.Second, false, 0},
		{Every, true, 2},
		{Every + time.Second, false, 0},
		{10 * Every, true, 1},
	}
	for _, st := range steps {
		ok, suppressed := th.Allow(t0.Add(st.at))
		if ok != st.ok || ok && suppressed != st.wantSuppressed {
			t.Errorf("Allow at +%v = %v, %d; want %v, %d", st.at, ok, suppressed, st.ok, st.wantSuppressed)
		}
	}
}
