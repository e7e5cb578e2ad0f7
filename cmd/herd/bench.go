package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/herd-dev/herd/internal/bench"
)

const benchSummary = `Measure a herd: IAMAT throughput and latency against a TCP echo server's
and against Redis with four replicas (when redis-server is installed),
update propagation idle and under load, WHATSAT, catch-up after a restart,
and memory per client, of one node alone and of each server of a running
herd. Without -addrs it starts the seed's five servers on free loopback
ports (offline places, fsync everysec, logging to files, peer auth on), in
this process or with -processes as separate processes, with data and logs
in a temporary directory. Every ratio is to a baseline measured in the
same run.

With -addrs it measures running servers instead, and writes to them: up to
about 100,000 client records, with ids starting "bench-", stay in that herd
for good. It refuses unless -allow-writes is given.`

func runBench(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "usage: herd bench [flags]\n\n%s\n\nsteps (for -skip and -only): %s\n\nflags:\n", benchSummary, strings.Join(bench.Steps(), ", "))
		fs.PrintDefaults()
	}
	var (
		opt        bench.Options
		addrs      = fs.String("addrs", "", "comma-separated `addresses` of running servers to measure instead of a herd it starts (needs -allow-writes)")
		conns      = fs.String("conns", "1,8,64", "comma-separated connection `counts` of the IAMAT steps and the Redis comparison")
		inFlight   = fs.String("inflight", "1,16", "comma-separated `counts` of requests in flight per connection, likewise")
		skip       = fs.String("skip", "", "comma-separated `steps` not to run")
		only       = fs.String("only", "", "comma-separated `steps` to run, and no others")
		jsonOut    = fs.Bool("json", false, "print the report as JSON instead of tables")
		cpuProfile = fs.String("cpuprofile", "", "write a CPU profile of the whole run (in-process herd included) to `file`")
		memProfile = fs.String("memprofile", "", "write an allocation profile of the whole run to `file`")
		traceFile  = fs.String("trace", "", "write an execution trace of the whole run to `file` (large: pair it with -skip and a short -duration)")
		child      = fs.Int("memory-child", 0, "measure the memory of `n` clients in this process and print JSON (used by the memory step)")
	)
	fs.DurationVar(&opt.Duration, "duration", 3*time.Second, "how long each step measures, after a short warm-up")
	fs.BoolVar(&opt.Quick, "quick", false, "tiny steps, for tests and CI: a smoke test, not a measurement")
	fs.IntVar(&opt.MemoryClients, "clients", 1_000_000, "clients the memory steps load (the herd memory step measures at half of them too)")
	fs.BoolVar(&opt.NoPeerAuth, "no-peer-auth", false, "run the herd it starts without a peer secret")
	fs.BoolVar(&opt.Processes, "processes", false, "run the herd as five separate 'herd serve' processes of this binary, not in this process")
	fs.BoolVar(&opt.AllowWrites, "allow-writes", false, "with -addrs: go ahead, although the run's clients stay in that herd")
	fs.StringVar(&opt.RedisServer, "redis-server", "redis-server", "the `program` the Redis comparison runs")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("bench: unexpected arguments %q", fs.Args())
	}
	if *child > 0 {
		return benchMemoryChild(ctx, env, *child)
	}
	var err error
	if opt.Conns, err = parseInts(*conns); err != nil {
		return fmt.Errorf("bench: -conns: %w", err)
	}
	if opt.InFlight, err = parseInts(*inFlight); err != nil {
		return fmt.Errorf("bench: -inflight: %w", err)
	}
	opt.Addrs = splitList(*addrs)
	if opt.Skip, err = stepList("-skip", *skip); err != nil {
		return err
	}
	if *only != "" {
		if len(opt.Skip) > 0 {
			return errors.New("bench: give -skip or -only, not both")
		}
		run, err := stepList("-only", *only)
		if err != nil {
			return err
		}
		for _, s := range bench.Steps() {
			if !slices.Contains(run, s) {
				opt.Skip = append(opt.Skip, s)
			}
		}
	}
	if self, err := os.Executable(); err == nil {
		opt.Reexec = []string{self, "bench", "-memory-child"}
		opt.Serve = []string{self, "serve"}
	}
	opt.Progress = env.Stderr
	if f, ok := env.Stderr.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			opt.ProgressInPlace = true
		}
	}

	stopProfiles, err := startProfiles(*cpuProfile, *traceFile)
	if err != nil {
		return err
	}
	report, runErr := bench.Run(ctx, opt)
	stopProfiles()
	if *memProfile != "" {
		if err := writeAllocProfile(*memProfile); err != nil {
			return errors.Join(runErr, err)
		}
	}
	if *jsonOut {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(report); err != nil {
			return errors.Join(runErr, err)
		}
	} else if report != nil {
		fmt.Fprintf(env.Stdout, "command: %s\n", strings.Join(append([]string{"herd", "bench"}, args...), " "))
		if err := report.WriteTable(env.Stdout); err != nil {
			return errors.Join(runErr, err)
		}
	}
	return runErr
}

// startProfiles starts a CPU profile to cpuPath and an execution trace to
// tracePath, each unless its path is empty, and returns what stops both.
func startProfiles(cpuPath, tracePath string) (stop func(), err error) {
	var stops []func()
	stop = func() {
		for _, s := range slices.Backward(stops) {
			s()
		}
	}
	for _, p := range []struct {
		path  string
		start func(io.Writer) error
		stop  func()
	}{
		{cpuPath, pprof.StartCPUProfile, pprof.StopCPUProfile},
		{tracePath, trace.Start, trace.Stop},
	} {
		if p.path == "" {
			continue
		}
		f, err := os.Create(p.path)
		if err == nil {
			if err = p.start(f); err != nil {
				f.Close()
			}
		}
		if err != nil {
			stop()
			return nil, fmt.Errorf("bench: %w", err)
		}
		stops = append(stops, func() { p.stop(); f.Close() })
	}
	return stop, nil
}

// writeAllocProfile writes the allocations since the start of the process.
func writeAllocProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("bench: %w", err)
	}
	return f.Close()
}

// benchMemoryChild is the memory step's child process.
func benchMemoryChild(ctx context.Context, env *Env, clients int) error {
	dir, err := os.MkdirTemp("", "herd-bench-memory-")
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(dir)
	res, err := bench.MeasureMemory(ctx, clients, dir)
	if err != nil {
		return err
	}
	return json.NewEncoder(env.Stdout).Encode(res)
}

// stepList parses a comma-separated list of step names given to flag.
func stepList(flag, s string) ([]string, error) {
	steps := splitList(s)
	for _, s := range steps {
		if !slices.Contains(bench.Steps(), s) {
			return nil, fmt.Errorf("bench: %s: no step %q (steps: %s)", flag, s, strings.Join(bench.Steps(), ", "))
		}
	}
	return steps, nil
}

func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("empty list")
	}
	return out, nil
}
