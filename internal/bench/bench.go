// Package bench measures a herd: the load generator, the echo baseline it
// is compared with, and the measurements behind `herd bench`.
//
// One Run measures, against a herd it starts in this process (the seed's
// five servers on free loopback ports, offline places, a temporary data and
// log directory, production defaults) or against servers given by address:
//
//   - IAMAT throughput and latency at several connection counts, one
//     request in flight per connection and pipelined, with the connections
//     spread over every server or all on one;
//   - the same traffic against a TCP line echo server in this process, the
//     most a server could do on this machine: herd's throughput is reported
//     as a fraction of it;
//   - propagation: from one server's AT reply until every other server has
//     the update, with the herd idle and at half its measured maximum;
//   - WHATSAT throughput and latency;
//   - catch-up: the time and bytes for a restarted server to resynchronise
//     after missing updates (in-process only);
//   - memory: a server's resident bytes per client, in a child process.
//
// Run writes progress to Options.Progress and returns a Report, which
// prints as a table or marshals as JSON. Under a CPU profile, the herd's
// goroutines carry the label role=herd, the echo server's role=echo and
// the load generator's role=client, so that `go tool pprof -tagfocus
// role=herd` shows the servers alone. Every connection it opens goes to
// the servers it was given or started, which are on 127.0.0.1 unless
// Options.Addrs says otherwise.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Steps that Options.Skip may name.
const (
	StepEcho        = "echo"        // the echo baseline (and so every ratio)
	StepIAMAT       = "iamat"       // IAMAT throughput and latency
	StepOne         = "one"         // IAMAT with every connection on one server
	StepWHATSAT     = "whatsat"     // WHATSAT throughput and latency
	StepPropagation = "propagation" // update propagation, idle and loaded
	StepCatchUp     = "catchup"     // resync after missed updates (in-process only)
	StepMemory      = "memory"      // bytes per client
)

// Steps lists every step name, in the order they run.
func Steps() []string {
	return []string{StepEcho, StepIAMAT, StepOne, StepWHATSAT, StepPropagation, StepCatchUp, StepMemory}
}

// Options configure a Run. The zero value measures an in-process herd with
// the defaults below.
type Options struct {
	// Addrs are the servers to measure; empty starts the seed herd in this
	// process.
	Addrs []string
	// Duration is how long each throughput or propagation step counts
	// (default 3s; a short warm-up comes first).
	Duration time.Duration
	// Conns are the connection counts for IAMAT (default 1, 8, 64).
	Conns []int
	// InFlight are the requests in flight per connection (default 1, 16).
	InFlight []int
	// WHATSATConns is the connection count for WHATSAT (default 8).
	WHATSATConns int
	// CatchUp are the numbers of missed updates to resync (default 0, 1000,
	// 100000).
	CatchUp []int
	// MemoryClients is how many clients the memory step loads (default
	// 1,000,000).
	MemoryClients int
	// Skip names steps not to run (see Steps).
	Skip []string
	// Quick shrinks every step for tests and CI: the figures are then only
	// a smoke test.
	Quick bool
	// NoPeerAuth runs the in-process herd without a peer secret. By default
	// its servers share a random HERD_PEER_SECRET, as production should.
	NoPeerAuth bool
	// Reexec is the command line of a process that runs MeasureMemory with
	// the client count appended as its last argument and prints the result
	// as JSON; nil measures memory in this process, less cleanly.
	Reexec []string
	// TempDir holds the in-process herd's data and logs while it runs
	// (default: a new directory under os.TempDir, removed at the end).
	TempDir string
	// Progress receives a line per step; nil discards them.
	Progress io.Writer
	// ProgressInPlace rewrites one progress line with \r, for a terminal.
	ProgressInPlace bool
}

func (o *Options) setDefaults() {
	if o.Duration <= 0 {
		o.Duration = 3 * time.Second
	}
	if len(o.Conns) == 0 {
		o.Conns = []int{1, 8, 64}
	}
	if len(o.InFlight) == 0 {
		o.InFlight = []int{1, 16}
	}
	if o.WHATSATConns <= 0 {
		o.WHATSATConns = 8
	}
	if o.CatchUp == nil {
		o.CatchUp = []int{0, 1000, 100000}
		if o.Quick {
			o.CatchUp = []int{0, 100, 1000}
		}
	}
	if o.MemoryClients <= 0 {
		o.MemoryClients = 1_000_000
	}
	if o.Quick {
		o.Duration = min(o.Duration, 150*time.Millisecond)
		o.MemoryClients = min(o.MemoryClients, 20_000)
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
}

// Workload constants.
const (
	// clientSpace is how many distinct clients the IAMAT steps rotate
	// through.
	clientSpace = 100_000
	// whatsatClients are preloaded for the WHATSAT step.
	whatsatClients = 1000
	whatsatRadius  = 10 // km
	whatsatLimit   = 5
	// probeInterval is the gap between propagation probes.
	probeInterval = 5 * time.Millisecond
	// loadedFraction of the maximum IAMAT rate is the background load of
	// the loaded propagation step.
	loadedFraction = 0.5
	// loadedConns and loadedDepth shape that background load.
	loadedConns = 8
	loadedDepth = 64
)

// warmup is the unmeasured start of a step of the given length.
func warmup(d time.Duration) time.Duration {
	return min(max(d/6, 20*time.Millisecond), time.Second)
}

// Run measures what opt asks for and returns the report. On error the
// report holds what was measured before it.
func Run(ctx context.Context, opt Options) (*Report, error) {
	opt.setDefaults()
	started := time.Now()
	r := &runner{opt: opt, tag: strconv.FormatInt(started.UnixNano()%1e9, 36), progress: progress{w: opt.Progress, inPlace: opt.ProgressInPlace}}
	r.report = &Report{
		Mode:    "in-process",
		Machine: machine(),
		Setup: Setup{
			Duration: opt.Duration.String(), Conns: opt.Conns, InFlight: opt.InFlight,
			ClientSpace: clientSpace, Quick: opt.Quick, PeerAuth: !opt.NoPeerAuth,
			Fsync: "everysec", Logging: true, Places: "offline",
		},
	}
	if len(opt.Addrs) > 0 {
		r.report.Mode = "external"
		r.report.Setup = Setup{Duration: opt.Duration.String(), Conns: opt.Conns, InFlight: opt.InFlight,
			ClientSpace: clientSpace, Quick: opt.Quick, Addrs: opt.Addrs}
	}
	defer r.close()
	steps := r.plan()
	for i, s := range steps {
		if err := ctx.Err(); err != nil {
			return r.report, err
		}
		r.progress.show(fmt.Sprintf("herd bench [%d/%d] %s", i+1, len(steps), s.name))
		var err error
		pprof.Do(ctx, pprof.Labels("role", "client"), func(ctx context.Context) { err = s.run(ctx) })
		if err != nil {
			r.progress.end()
			return r.report, fmt.Errorf("bench: %s: %w", s.name, err)
		}
	}
	r.progress.show(fmt.Sprintf("herd bench: %d steps in %v", len(steps), time.Since(started).Round(time.Millisecond)))
	r.progress.end()
	r.report.Targets = evaluate(r.report)
	r.report.Seconds = time.Since(started).Seconds()
	return r.report, nil
}

// runner holds what the steps of one Run share.
type runner struct {
	opt      Options
	report   *Report
	tag      string // tells this run's clients from an earlier run's
	progress progress

	dir     string // temporary directory of the in-process herd
	herd    *localHerd
	echo    *echoServer
	maxRate float64 // highest herd IAMAT throughput seen, spread placement
}

// progress reports which step runs: on a terminal, one line that each
// message replaces; elsewhere, a line per message.
type progress struct {
	w       io.Writer
	inPlace bool
	last    int // length of the line shown in place
}

func (p *progress) show(msg string) {
	if !p.inPlace {
		fmt.Fprintln(p.w, msg)
		return
	}
	fmt.Fprintf(p.w, "\r%s%s", msg, strings.Repeat(" ", max(p.last-len(msg), 0)))
	p.last = len(msg)
}

// end moves past the line shown in place.
func (p *progress) end() {
	if p.last > 0 {
		fmt.Fprintln(p.w)
		p.last = 0
	}
}

// step is one measurement.
type step struct {
	name string
	run  func(ctx context.Context) error
}

func (r *runner) skip(name string) bool { return slices.Contains(r.opt.Skip, name) }

func (r *runner) inProcess() bool { return len(r.opt.Addrs) == 0 }

// plan lists the steps to run, in order.
func (r *runner) plan() []step {
	var steps []step
	add := func(name string, run func(ctx context.Context) error) {
		steps = append(steps, step{name, run})
	}
	needHerd := !r.skip(StepIAMAT) || !r.skip(StepWHATSAT) || !r.skip(StepPropagation) ||
		(!r.skip(StepCatchUp) && r.inProcess())
	if needHerd {
		if r.inProcess() {
			add("start the in-process herd", r.startHerd)
		}
	}
	if !r.skip(StepEcho) && (!r.skip(StepIAMAT) || !r.skip(StepWHATSAT)) {
		add("start the echo server", r.startEcho)
	}
	iamat := iamatRequests("client-", clientSpace)
	for _, conns := range r.opt.Conns {
		for _, depth := range r.opt.InFlight {
			shape := fmt.Sprintf("%d conns, %d in flight", conns, depth)
			if !r.skip(StepIAMAT) && !r.skip(StepEcho) {
				add("IAMAT echo, "+shape, func(ctx context.Context) error {
					return r.measure(ctx, &r.report.IAMAT, "echo", conns, depth, iamat, replyLine, "")
				})
			}
			if !r.skip(StepIAMAT) {
				add("IAMAT herd spread, "+shape, func(ctx context.Context) error {
					return r.measure(ctx, &r.report.IAMAT, "spread", conns, depth, iamat, replyLine, "AT ")
				})
				if !r.skip(StepOne) && conns > 1 {
					add("IAMAT herd on one server, "+shape, func(ctx context.Context) error {
						return r.measure(ctx, &r.report.IAMAT, "one", conns, depth, iamat, replyLine, "AT ")
					})
				}
			}
		}
	}
	if !r.skip(StepWHATSAT) {
		add("WHATSAT preload", r.preloadWHATSAT)
		whatsat := whatsatRequests("whatsat-"+r.tag+"-", whatsatClients, whatsatRadius, whatsatLimit)
		for _, depth := range r.opt.InFlight {
			shape := fmt.Sprintf("%d conns, %d in flight", r.opt.WHATSATConns, depth)
			if !r.skip(StepEcho) {
				add("WHATSAT echo, "+shape, func(ctx context.Context) error {
					return r.measure(ctx, &r.report.WHATSAT, "echo", r.opt.WHATSATConns, depth, whatsat, replyLine, "")
				})
			}
			add("WHATSAT herd spread, "+shape, func(ctx context.Context) error {
				return r.measure(ctx, &r.report.WHATSAT, "spread", r.opt.WHATSATConns, depth, whatsat, replyBlock, "AT ")
			})
		}
	}
	if !r.skip(StepPropagation) && (r.inProcess() || len(r.opt.Addrs) > 1) {
		add("propagation, idle", func(ctx context.Context) error { return r.propagation(ctx, 0) })
		add("propagation, at 50% load", func(ctx context.Context) error { return r.propagation(ctx, loadedFraction) })
	}
	if !r.skip(StepCatchUp) && r.inProcess() {
		for i, n := range r.opt.CatchUp {
			add(fmt.Sprintf("catch-up after %d missed updates", n), func(ctx context.Context) error {
				row, err := catchUp(ctx, r.herd, fmt.Sprintf("catchup-%s-%d-", r.tag, i), n)
				if err == nil {
					r.report.CatchUp = append(r.report.CatchUp, row)
				}
				return err
			})
		}
	}
	if !r.skip(StepMemory) {
		add(fmt.Sprintf("memory of %d clients", r.opt.MemoryClients), r.memory)
	}
	return steps
}

func (r *runner) startHerd(ctx context.Context) error {
	dir := r.opt.TempDir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "herd-bench-"); err != nil {
			return err
		}
		r.dir = dir
	}
	h, err := startLocalHerd(ctx, dir, !r.opt.NoPeerAuth)
	if err != nil {
		return err
	}
	r.herd = h
	r.report.Setup.Servers = len(h.names)
	r.report.Setup.Dir = dir
	return nil
}

func (r *runner) startEcho(context.Context) error {
	e, err := startEcho()
	r.echo = e
	return err
}

// close stops what the run started and removes its temporary files.
func (r *runner) close() error {
	var errs []error
	if r.echo != nil {
		r.echo.close()
	}
	if r.herd != nil {
		errs = append(errs, r.herd.close())
	}
	if r.dir != "" {
		errs = append(errs, os.RemoveAll(r.dir))
	}
	return errors.Join(errs...)
}

// addrs returns the herd's server addresses.
func (r *runner) addrs() []string {
	if r.herd != nil {
		return r.herd.addrs()
	}
	return r.opt.Addrs
}

// quiesce lets the herd finish flooding the previous step's updates and
// collects garbage, so that one step does not pay for another.
func (r *runner) quiesce(ctx context.Context) error {
	runtime.GC()
	if r.herd != nil {
		return r.herd.settle(ctx)
	}
	select { // servers we cannot see: give them a moment
	case <-time.After(200 * time.Millisecond):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// measure runs one throughput step and appends its row to rows. placement
// is "echo", "spread" or "one".
func (r *runner) measure(ctx context.Context, rows *[]LoadRow, placement string, conns, depth int, req requestFunc, shape replyShape, okPrefix string) error {
	if err := r.quiesce(ctx); err != nil {
		return err
	}
	addrs := r.addrs()
	row := LoadRow{Target: "herd", Placement: placement, Conns: conns, InFlight: depth}
	switch placement {
	case "echo":
		addrs = []string{r.echo.addr()}
		row.Target, row.Placement = "echo", "-"
	case "one":
		addrs = addrs[:1]
	}
	row.Servers = min(len(addrs), conns)
	res, err := runLoad(ctx, loadSpec{
		addrs: addrs, conns: conns, depth: depth,
		warmup: warmup(r.opt.Duration), measure: r.opt.Duration,
		request: req, reply: shape, okPrefix: okPrefix,
	})
	if err != nil {
		return err
	}
	row.OK, row.Errors, row.Throughput, row.Latency = res.OK, res.Errors, res.Throughput, res.Latency
	if row.Target == "herd" {
		if placement == "spread" && rows == &r.report.IAMAT {
			r.maxRate = max(r.maxRate, res.Throughput)
		}
		for _, e := range *rows {
			if e.Target == "echo" && e.Conns == conns && e.InFlight == depth && e.Throughput > 0 {
				row.VsEcho = res.Throughput / e.Throughput
			}
		}
	}
	*rows = append(*rows, row)
	return nil
}

// preloadWHATSAT tells every server about the WHATSAT step's clients with
// its own IAMAT, so that no WHATSAT waits for flooding.
func (r *runner) preloadWHATSAT(ctx context.Context) error {
	for _, a := range r.addrs() {
		_, err := runLoad(ctx, loadSpec{
			addrs: []string{a}, conns: 1, depth: 16, total: whatsatClients,
			request: iamatRequests("whatsat-"+r.tag+"-", whatsatClients), okPrefix: "AT ",
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// propagation follows probe updates across the herd, with background IAMAT
// load at fraction of the highest rate measured (none when fraction is 0).
func (r *runner) propagation(ctx context.Context, fraction float64) error {
	if err := r.quiesce(ctx); err != nil {
		return err
	}
	row := PropagationRow{Load: "idle", Method: "watch"}
	addrs := r.addrs()
	window := r.opt.Duration
	type loadOutcome struct {
		res loadResult
		err error
	}
	var background chan loadOutcome
	if fraction > 0 {
		if r.maxRate == 0 { // the IAMAT step did not run: find the maximum now
			res, err := runLoad(ctx, loadSpec{addrs: addrs, conns: loadedConns, depth: 16,
				warmup: warmup(window), measure: window, request: iamatRequests("client-", clientSpace), okPrefix: "AT "})
			if err != nil {
				return err
			}
			r.maxRate = res.Throughput
			if err := r.quiesce(ctx); err != nil {
				return err
			}
		}
		row.Load = fmt.Sprintf("%.0f%%", fraction*100)
		row.Rate = fraction * r.maxRate
		background = make(chan loadOutcome, 1)
		ramp, rate := warmup(window), row.Rate
		go func() { // ends with its window
			res, err := runLoad(ctx, loadSpec{addrs: addrs, conns: loadedConns, depth: loadedDepth, rate: rate,
				warmup: ramp, measure: window, request: iamatRequests("client-", clientSpace), okPrefix: "AT "})
			background <- loadOutcome{res, err}
		}()
		select {
		case <-time.After(ramp):
		case <-ctx.Done():
		}
	}
	begin := time.Now()
	var obs observer
	if r.herd != nil {
		obs = newNodeObserver(r.herd.members(), begin)
	} else {
		po, err := newPollObserver(addrs, begin)
		if err != nil {
			return err
		}
		obs = po
		row.Method = "poll"
	}
	res, err := runProbes(ctx, addrs, obs, begin, fmt.Sprintf("%s-%d", r.tag, len(r.report.Propagation)), window, probeInterval, r.herd == nil)
	obs.close()
	if po, ok := obs.(*pollObserver); ok && err == nil {
		err = po.err
	}
	if background != nil {
		bg := <-background
		err = errors.Join(err, bg.err)
		row.Achieved = bg.res.Throughput
	}
	if err != nil {
		return err
	}
	row.Probes, row.Timeouts, row.Latency = res.Probes, res.Timeouts, res.Latency
	r.report.Propagation = append(r.report.Propagation, row)
	return nil
}

func (r *runner) memory(ctx context.Context) error {
	var res MemoryResult
	var err error
	if len(r.opt.Reexec) > 0 {
		res, err = measureMemoryIn(ctx, r.opt.Reexec, r.opt.MemoryClients)
	} else {
		var dir string
		if dir, err = os.MkdirTemp("", "herd-bench-memory-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		res, err = MeasureMemory(ctx, r.opt.MemoryClients, dir)
	}
	if err != nil {
		return err
	}
	r.report.Memory = &res
	return nil
}

// machine describes where the run happens.
func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), Go: runtime.Version(),
		OS: runtime.GOOS + "/" + runtime.GOARCH}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(data)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}
