package bench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// clockTicks is the unit of the CPU times in /proc/PID/stat (USER_HZ,
// which Linux fixes at 100 for user space).
const clockTicks = 100

// processCPU returns the CPU time (user and system) the processes with
// these ids have used so far, read from /proc (Linux only).
func processCPU(pids []int) (time.Duration, error) {
	var ticks uint64
	for _, pid := range pids {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, fmt.Errorf("bench: CPU time is read from /proc (Linux only): %w", err)
		}
		// The command name, in parentheses, may hold spaces: the fields
		// after its closing parenthesis are state (3), ... utime (14) and
		// stime (15).
		_, rest, ok := bytes.Cut(stat, []byte(") "))
		f := bytes.Fields(rest)
		if !ok || len(f) < 13 {
			return 0, fmt.Errorf("bench: /proc/%d/stat: unexpected format", pid)
		}
		for _, field := range f[11:13] {
			n, err := strconv.ParseUint(string(field), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("bench: /proc/%d/stat: %w", pid, err)
			}
			ticks += n
		}
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}
