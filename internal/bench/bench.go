// Package bench measures a herd: the load generator, the baselines it is
// compared with, and the measurements behind `herd bench`.
//
// One Run measures a herd it starts (the seed's five servers on free
// loopback ports, offline places, a temporary data and log directory,
// production defaults), in this process or as separate `herd serve`
// processes, or servers given by address:
//
//   - IAMAT throughput and latency at several connection counts, one
//     request in flight per connection and pipelined, with the connections
//     spread over every server or all on one;
//   - the same traffic against a TCP line echo server in this process, the
//     most a server could do on this machine: herd's throughput is reported
//     as a fraction of it;
//   - herd against Redis, like for like: a Redis primary with four replicas,
//     each with an append-only log synced every second, sent GEOADDs by the
//     same load generator, against one server of a five-server herd of
//     separate processes (when redis-server is installed);
//   - propagation: from one server's AT reply until every other server has
//     the update, with the herd idle and at half its measured maximum;
//   - WHATSAT throughput and latency;
//   - catch-up: the time and bytes for a restarted server to resynchronise
//     after missing updates (in-process only);
//   - memory: one node's resident bytes per client, in a child process,
//     and each server's in a running five-server herd of processes.
//
// Run writes progress to Options.Progress and returns a Report, which
// prints as a table or marshals as JSON. Each figure is reported beside a
// baseline measured in the same run, as a ratio: the machine may be shared
// and noisy, and only ratios carry over. Under a CPU profile, the
// in-process herd's goroutines carry the label role=herd, the echo
// server's role=echo and the load generator's role=client, so that `go
// tool pprof -tagfocus role=herd` shows the servers alone. Every
// connection it opens goes to the servers it was given or started, which
// are on 127.0.0.1 unless Options.Addrs says otherwise; every client id it
// sends starts with "bench-".
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/herd-dev/herd/internal/config"
)

// Steps that Options.Skip may name.
const (
	StepEcho        = "echo"        // the echo baseline (and so every ratio to it)
	StepIAMAT       = "iamat"       // IAMAT throughput and latency
	StepOne         = "one"         // IAMAT with every connection on one server
	StepRedis       = "redis"       // herd against Redis with four replicas
	StepWHATSAT     = "whatsat"     // WHATSAT throughput and latency
	StepPropagation = "propagation" // update propagation, idle and loaded
	StepCatchUp     = "catchup"     // resync after missed updates (in-process only)
	StepMemory      = "memory"      // bytes per client of one node alone
	StepHerdMemory  = "herd-memory" // bytes per client per server of a running herd
)

// Steps lists every step name, in the order they run.
func Steps() []string {
	return []string{StepEcho, StepIAMAT, StepOne, StepRedis, StepWHATSAT, StepPropagation, StepCatchUp, StepMemory, StepHerdMemory}
}

// Modes of a Run: which herd it measures.
const (
	ModeInProcess = "in-process" // a herd started in this process
	ModeProcesses = "processes"  // a herd started as separate processes
	ModeExternal  = "external"   // servers given by address
)

// idPrefix starts every client id the bench sends, so that an operator can
// tell its records in a live herd.
const idPrefix = "bench-"

// ErrLiveHerd refuses to measure servers given by address without
// Options.AllowWrites: the run writes to them, and herd cannot delete a
// client.
var ErrLiveHerd = errors.New("bench: measuring running servers writes to them")

// Options configure a Run. The zero value measures an in-process herd with
// the defaults below.
type Options struct {
	// Addrs are the servers to measure; empty starts the seed herd.
	Addrs []string
	// AllowWrites lets a run with Addrs write its clients (ids starting
	// "bench-") to those servers, where they stay: without it, Run refuses
	// with ErrLiveHerd.
	AllowWrites bool
	// Processes starts the seed herd as five separate processes (see
	// Serve) instead of in this process.
	Processes bool
	// Serve is the command line that runs `herd serve`; a server's flags
	// and name are appended. The separate-process herd of Processes, of
	// the Redis comparison and of the herd memory step needs it; without
	// it the latter two are skipped with a note.
	Serve []string
	// RedisServer is the redis-server program of the Redis comparison
	// (default "redis-server", looked up in PATH); when it is missing the
	// comparison is skipped with a note.
	RedisServer string
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
	// MemoryClients is how many clients the memory steps load (default
	// 1,000,000); the herd memory step measures at half of them too.
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
	// TempDir holds the started servers' configuration, data and logs
	// while they run (default: a new directory under os.TempDir, removed
	// at the end).
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
	if o.RedisServer == "" {
		o.RedisServer = "redis-server"
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
}

// mode returns which herd the options measure.
func (o *Options) mode() string {
	switch {
	case len(o.Addrs) > 0:
		return ModeExternal
	case o.Processes:
		return ModeProcesses
	}
	return ModeInProcess
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
	if len(opt.Addrs) > 0 && !opt.AllowWrites {
		return nil, fmt.Errorf("%w: up to %d client records with ids starting %q would stay in the herd at %s for good, as herd cannot delete a client; allow it to go ahead (herd bench -allow-writes)",
			ErrLiveHerd, liveRecords(&opt), idPrefix, strings.Join(opt.Addrs, ","))
	}
	started := time.Now()
	r := &runner{opt: opt, tag: strconv.FormatInt(started.UnixNano()%1e9, 36), progress: progress{w: opt.Progress, inPlace: opt.ProgressInPlace}}
	r.report = &Report{
		Mode:    opt.mode(),
		Machine: machine(),
		Setup: Setup{
			Duration: opt.Duration.String(), Conns: opt.Conns, InFlight: opt.InFlight,
			ClientSpace: clientSpace, IDPrefix: idPrefix, Quick: opt.Quick, PeerAuth: !opt.NoPeerAuth,
			Servers: len(config.Default().Servers), Fsync: config.FsyncEverySec, Logging: true, Places: config.ProviderOffline,
		},
	}
	if r.report.Mode == ModeExternal {
		r.report.Setup = Setup{Duration: opt.Duration.String(), Conns: opt.Conns, InFlight: opt.InFlight,
			ClientSpace: clientSpace, IDPrefix: idPrefix, Quick: opt.Quick, Addrs: opt.Addrs,
			RecordsLeft: liveRecords(&opt)}
		fmt.Fprintf(opt.Progress, "herd bench: writing to the herd at %s: up to %d client records with ids starting %q will stay in it\n",
			strings.Join(opt.Addrs, ","), r.report.Setup.RecordsLeft, idPrefix)
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
	r.report.Comparisons = compare(r.report)
	r.report.Seconds = time.Since(started).Seconds()
	return r.report, nil
}

// liveRecords bounds how many distinct clients a run against running
// servers leaves in them: the IAMAT steps' rotation (the same ids on every
// run), the WHATSAT step's and the propagation probes (new on every run).
func liveRecords(o *Options) int {
	skip := func(s string) bool { return slices.Contains(o.Skip, s) }
	n := 0
	if !skip(StepIAMAT) || !skip(StepPropagation) {
		n += clientSpace
	}
	if !skip(StepWHATSAT) {
		n += whatsatClients
	}
	if !skip(StepPropagation) {
		n += 2 * int(o.Duration/probeInterval+1)
	}
	return n
}

// runner holds what the steps of one Run share.
type runner struct {
	opt      Options
	report   *Report
	tag      string // tells this run's clients from an earlier run's
	progress progress

	dir      string       // temporary directory, removed at the end; "" if given
	measured measuredHerd // the herd the IAMAT, WHATSAT and propagation steps measure; nil for Addrs
	herd     *localHerd   // the in-process herd, if that is what is measured
	procs    *processHerd // the separate-process herd, if one runs
	redis    *redisSet
	echo     *echoServer
	maxRate  float64 // highest herd IAMAT throughput seen, spread placement
}

// measuredHerd is a herd the run started.
type measuredHerd interface {
	addrs() []string
	// settle waits until the herd has flooded every update it took.
	settle(ctx context.Context) error
	close() error
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

// plan lists the steps to run, in order.
func (r *runner) plan() []step {
	var steps []step
	add := func(name string, run func(ctx context.Context) error) {
		steps = append(steps, step{name, run})
	}
	mode := r.opt.mode()
	needHerd := !r.skip(StepIAMAT) || !r.skip(StepWHATSAT) || !r.skip(StepPropagation) ||
		(!r.skip(StepCatchUp) && mode == ModeInProcess)
	switch {
	case !needHerd || mode == ModeExternal:
	case mode == ModeProcesses:
		add("start the herd as five processes", r.startProcesses)
	default:
		add("start the in-process herd", r.startHerd)
	}
	redis := r.redisPlan(needHerd && mode == ModeProcesses)
	if len(redis) > 1 || (!r.skip(StepEcho) && (!r.skip(StepIAMAT) || !r.skip(StepWHATSAT))) {
		add("start the echo server", r.startEcho)
	}
	iamat := iamatRequests(idPrefix, clientSpace)
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
	steps = append(steps, redis...)
	if !r.skip(StepWHATSAT) {
		add("WHATSAT preload", r.preloadWHATSAT)
		whatsat := whatsatRequests(idPrefix+"whatsat-"+r.tag+"-", whatsatClients, whatsatRadius, whatsatLimit)
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
	if !r.skip(StepPropagation) && len(r.opt.Addrs) != 1 {
		add("propagation, idle", func(ctx context.Context) error { return r.propagation(ctx, 0) })
		add("propagation, at 50% load", func(ctx context.Context) error { return r.propagation(ctx, loadedFraction) })
	}
	if !r.skip(StepCatchUp) && mode == ModeInProcess {
		for i, n := range r.opt.CatchUp {
			add(fmt.Sprintf("catch-up after %d missed updates", n), func(ctx context.Context) error {
				row, err := catchUp(ctx, r.herd, fmt.Sprintf("%scatchup-%s-%d-", idPrefix, r.tag, i), n)
				if err == nil {
					r.report.CatchUp = append(r.report.CatchUp, row)
				}
				return err
			})
		}
	}
	if !r.skip(StepMemory) {
		add(fmt.Sprintf("memory of %d clients in one node", r.opt.MemoryClients), r.memory)
	}
	if !r.skip(StepHerdMemory) {
		if len(r.opt.Serve) == 0 {
			add("memory of a running herd: skipped", func(context.Context) error {
				r.report.HerdMemory = &HerdMemoryResult{Skipped: "the herd's servers run as separate processes, and no command to start them was given (Options.Serve)"}
				return nil
			})
		} else {
			add(fmt.Sprintf("memory of %d clients in a running five-process herd", r.opt.MemoryClients), r.herdMemory)
		}
	}
	return steps
}

// redisPlan lists the steps of the Redis comparison: for each load, the
// echo server, one herd server of a five-process herd, Redis's primary
// alone and Redis's primary with its replicas; or one step that says why
// the comparison is skipped. The herd is the run's when haveProcesses
// says the run starts one, else one of the comparison's own.
func (r *runner) redisPlan(haveProcesses bool) []step {
	if r.skip(StepRedis) {
		return nil
	}
	bin, err := exec.LookPath(r.opt.RedisServer)
	why := ""
	switch {
	case err != nil:
		why = fmt.Sprintf("%s is not installed (%v); install it (apt-get install redis-server) to compare herd with Redis", r.opt.RedisServer, err)
	case r.opt.mode() == ModeExternal:
		why = "servers given by address: the comparison runs a herd and Redis side by side on this machine"
	case len(r.opt.Serve) == 0:
		why = "herd's servers run as separate processes here, and no command to start them was given (Options.Serve)"
	}
	if why != "" {
		return []step{{"Redis comparison: skipped", func(context.Context) error {
			r.report.Redis = &RedisResult{Skipped: why}
			return nil
		}}}
	}
	var steps []step
	ownHerd := !haveProcesses
	if ownHerd {
		steps = append(steps, step{"start the herd as five processes for the Redis comparison", r.startProcesses})
	}
	steps = append(steps, step{fmt.Sprintf("start Redis: a primary alone, and a primary with %d replicas", redisReplicas), func(ctx context.Context) error {
		dir, err := r.tmp("redis")
		if err != nil {
			return err
		}
		rs, err := startRedisSet(ctx, bin, dir)
		if err != nil {
			return err
		}
		r.redis = rs
		r.report.Redis = &RedisResult{Version: rs.version, Herd: r.procs.cfg.Servers[0].Name + ", one of five separate processes"}
		return nil
	}})
	// The echo server gets IAMATs, as in the IAMAT steps; Redis gets
	// GEOADDs of the same clients and places.
	iamat := iamatRequests(idPrefix, clientSpace)
	geoadd := geoaddRequests(idPrefix, clientSpace)
	noSettle := func(context.Context) error { return nil }
	for _, conns := range r.opt.Conns {
		for _, depth := range r.opt.InFlight {
			shape := fmt.Sprintf("%d conns, %d in flight", conns, depth)
			loadStep := func(target, placement string, addr func() string, settle func(context.Context) error, req requestFunc, okPrefix string, pids func() []int) step {
				return step{fmt.Sprintf("Redis comparison, %s, %s", target, shape), func(ctx context.Context) error {
					runtime.GC()
					if err := settle(ctx); err != nil {
						return err
					}
					row := LoadRow{Target: target, Placement: placement, Servers: 1, Conns: conns, InFlight: depth}
					return r.loadCPU(ctx, &r.report.Redis.Rows, []string{addr()}, row, req, replyLine, okPrefix, pids)
				}}
			}
			steps = append(steps,
				loadStep("echo", "-", func() string { return r.echo.addr() }, noSettle, iamat, "", nil),
				loadStep("herd", "one", func() string { return r.procs.addrs()[0] }, func(ctx context.Context) error { return r.procs.settle(ctx) }, iamat, "AT ",
					func() []int { return pidsOf(r.procs.procs...) }),
				loadStep(targetRedisAlone, "primary", func() string { return r.redis.alone.addr }, noSettle, geoadd, ":",
					func() []int { return pidsOf(r.redis.alone.child) }),
				loadStep(targetRedisReplicated, "primary", func() string { return r.redis.primary.addr }, func(ctx context.Context) error { return r.redis.settle(ctx) }, geoadd, ":",
					func() []int { return pidsOf(r.redis.replicatedChildren()...) }),
			)
		}
	}
	steps = append(steps, step{"Redis comparison: check the replicas against the primary", func(ctx context.Context) error {
		rr := r.report.Redis
		var err error
		if rr.Members, rr.Replicas, err = r.redis.verify(ctx); err != nil {
			return err
		}
		err = r.redis.close()
		r.redis = nil
		return err
	}})
	if ownHerd {
		steps = append(steps, step{"stop the five-process herd of the Redis comparison", func(context.Context) error {
			err := r.procs.close()
			r.procs = nil
			return err
		}})
	}
	return steps
}

// tmp returns the directory sub of the run's temporary directory, making
// both if needed.
func (r *runner) tmp(sub string) (string, error) {
	root := r.opt.TempDir
	if root == "" {
		if r.dir == "" {
			dir, err := os.MkdirTemp("", "herd-bench-")
			if err != nil {
				return "", err
			}
			r.dir = dir
		}
		root = r.dir
	}
	dir := filepath.Join(root, sub)
	return dir, os.MkdirAll(dir, 0o755)
}

func (r *runner) startHerd(ctx context.Context) error {
	dir, err := r.tmp("herd")
	if err != nil {
		return err
	}
	h, err := startLocalHerd(ctx, dir, !r.opt.NoPeerAuth)
	if err != nil {
		return err
	}
	r.herd, r.measured = h, h
	r.report.Setup.Dir = dir
	return nil
}

// startProcesses starts the five-server herd as separate processes: the
// herd the run measures in ModeProcesses, or the Redis comparison's.
func (r *runner) startProcesses(ctx context.Context) error {
	dir, err := r.tmp("processes")
	if err != nil {
		return err
	}
	h, err := startProcessHerd(ctx, dir, r.opt.Serve, !r.opt.NoPeerAuth)
	if err != nil {
		return err
	}
	r.procs = h
	if r.opt.mode() == ModeProcesses {
		r.measured = h
		r.report.Setup.Dir = dir
	}
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
	if r.redis != nil {
		errs = append(errs, r.redis.close())
	}
	if r.herd != nil {
		errs = append(errs, r.herd.close())
	}
	if r.procs != nil {
		errs = append(errs, r.procs.close())
	}
	if r.dir != "" {
		errs = append(errs, os.RemoveAll(r.dir))
	}
	return errors.Join(errs...)
}

// addrs returns the measured herd's server addresses.
func (r *runner) addrs() []string {
	if r.measured != nil {
		return r.measured.addrs()
	}
	return r.opt.Addrs
}

// quiesce lets the herd finish flooding the previous step's updates and
// collects garbage, so that one step does not pay for another.
func (r *runner) quiesce(ctx context.Context) error {
	runtime.GC()
	if r.measured != nil {
		return r.measured.settle(ctx)
	}
	select { // servers we cannot see: give them a moment
	case <-time.After(200 * time.Millisecond):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// measure runs one throughput step against the measured herd and appends
// its row to rows. placement is "echo", "spread" or "one".
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
	if err := r.load(ctx, rows, addrs, row, req, shape, okPrefix); err != nil {
		return err
	}
	if last := (*rows)[len(*rows)-1]; placement == "spread" && rows == &r.report.IAMAT {
		r.maxRate = max(r.maxRate, last.Throughput)
	}
	return nil
}

// load sends the load that row describes to addrs and appends row, with
// what was measured, to rows; a row that is not the echo server's gets its
// ratio to the echo row of the same shape in rows.
func (r *runner) load(ctx context.Context, rows *[]LoadRow, addrs []string, row LoadRow, req requestFunc, shape replyShape, okPrefix string) error {
	return r.loadCPU(ctx, rows, addrs, row, req, shape, okPrefix, nil)
}

// loadCPU is load that also measures the CPU time of the processes pids
// returns, when it is not nil.
func (r *runner) loadCPU(ctx context.Context, rows *[]LoadRow, addrs []string, row LoadRow, req requestFunc, shape replyShape, okPrefix string, pids func() []int) error {
	spec := loadSpec{
		addrs: addrs, conns: row.Conns, depth: row.InFlight,
		warmup: warmup(r.opt.Duration), measure: r.opt.Duration,
		request: req, reply: shape, okPrefix: okPrefix,
	}
	if pids != nil {
		spec.cpu = func() (time.Duration, error) { return processCPU(pids()) }
	}
	res, err := runLoad(ctx, spec)
	if err != nil {
		return err
	}
	row.OK, row.Errors, row.Throughput, row.Latency = res.OK, res.Errors, res.Throughput, res.Latency
	row.CPUPerReq = float64(res.CPUPerOp) / float64(time.Microsecond)
	if row.Target != "echo" {
		if e, ok := findRow(*rows, "echo", row.Conns, row.InFlight); ok && e.Throughput > 0 {
			row.VsEcho = res.Throughput / e.Throughput
		}
	}
	*rows = append(*rows, row)
	return nil
}

// findRow returns the last row of target with that shape.
func findRow(rows []LoadRow, target string, conns, depth int) (LoadRow, bool) {
	for i := len(rows) - 1; i >= 0; i-- {
		if e := rows[i]; e.Target == target && e.Conns == conns && e.InFlight == depth {
			return e, true
		}
	}
	return LoadRow{}, false
}

// preloadWHATSAT tells every server about the WHATSAT step's clients with
// its own IAMAT, so that no WHATSAT waits for flooding.
func (r *runner) preloadWHATSAT(ctx context.Context) error {
	for _, a := range r.addrs() {
		_, err := runLoad(ctx, loadSpec{
			addrs: []string{a}, conns: 1, depth: 16, total: whatsatClients,
			request: iamatRequests(idPrefix+"whatsat-"+r.tag+"-", whatsatClients), okPrefix: "AT ",
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
				warmup: warmup(window), measure: window, request: iamatRequests(idPrefix, clientSpace), okPrefix: "AT "})
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
				warmup: ramp, measure: window, request: iamatRequests(idPrefix, clientSpace), okPrefix: "AT "})
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
		if dir, err = r.tmp("memory"); err != nil {
			return err
		}
		res, err = MeasureMemory(ctx, r.opt.MemoryClients, dir)
		os.RemoveAll(dir)
	}
	if err != nil {
		return err
	}
	r.report.Memory = &res
	return nil
}

// herdMemory measures a fresh five-process herd, so that what earlier
// steps left in the measured herd does not count.
func (r *runner) herdMemory(ctx context.Context) error {
	dir, err := r.tmp("herd-memory")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	res, err := measureHerdMemory(ctx, dir, r.opt.Serve, !r.opt.NoPeerAuth, herdMemoryPoints(r.opt.MemoryClients))
	r.report.HerdMemory = res
	return err
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
