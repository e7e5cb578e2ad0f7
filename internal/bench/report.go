package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is everything a Run measured.
type Report struct {
	// Mode is ModeInProcess, ModeProcesses or ModeExternal.
	Mode        string           `json:"mode"`
	Machine     Machine          `json:"machine"`
	Setup       Setup            `json:"setup"`
	IAMAT       []LoadRow        `json:"iamat,omitempty"`
	Redis       *RedisResult     `json:"redis,omitempty"`
	WHATSAT     []LoadRow        `json:"whatsat,omitempty"`
	Propagation []PropagationRow `json:"propagation,omitempty"`
	CatchUp     []CatchUpRow     `json:"catch_up,omitempty"`
	// Memory is one node alone; HerdMemory each server of a running herd.
	Memory     *MemoryResult     `json:"memory,omitempty"`
	HerdMemory *HerdMemoryResult `json:"herd_memory,omitempty"`
	// Comparisons are the run's figures as ratios to the baselines
	// measured in the same run.
	Comparisons []Comparison `json:"comparisons,omitempty"`
	Seconds     float64      `json:"seconds"`
}

// Machine is where a run happened.
type Machine struct {
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	CPU        string `json:"cpu,omitempty"`
	Go         string `json:"go"`
	OS         string `json:"os"`
}

// Setup is what was measured and how.
type Setup struct {
	Addrs       []string `json:"addrs,omitempty"`
	Servers     int      `json:"servers,omitempty"`
	Duration    string   `json:"duration"`
	Conns       []int    `json:"conns"`
	InFlight    []int    `json:"in_flight"`
	ClientSpace int      `json:"client_space"`
	// IDPrefix starts every client id the run sends.
	IDPrefix string `json:"id_prefix"`
	// RecordsLeft bounds the client records a run against running servers
	// leaves in them.
	RecordsLeft int  `json:"records_left,omitempty"`
	Quick       bool `json:"quick,omitempty"`
	// A herd the run started only.
	PeerAuth bool   `json:"peer_auth,omitempty"`
	Fsync    string `json:"fsync,omitempty"`
	Logging  bool   `json:"logging,omitempty"`
	Places   string `json:"places,omitempty"`
	Dir      string `json:"dir,omitempty"`
}

// LoadRow is one throughput measurement.
type LoadRow struct {
	// Target is "herd", "echo", or in the Redis comparison "redis alone"
	// or "redis+4".
	Target string `json:"target"`
	// Placement is "spread" (connections round-robin over every server),
	// "one" (all on the first server), "primary" (Redis), or "-" for the
	// echo server.
	Placement  string  `json:"placement"`
	Servers    int     `json:"servers"` // servers the connections went to
	Conns      int     `json:"conns"`
	InFlight   int     `json:"in_flight"`
	OK         uint64  `json:"ok"`
	Errors     uint64  `json:"errors"`
	Throughput float64 `json:"req_per_sec"`
	Latency    Latency `json:"latency"`
	// VsEcho is Throughput over the echo server's with the same
	// connections and requests in flight; 0 when not measured.
	VsEcho float64 `json:"vs_echo,omitempty"`
	// CPUPerReq is the CPU time all of the target's processes used per
	// request, in microseconds (the Redis comparison's separate processes
	// only; 0 when not measured).
	CPUPerReq float64 `json:"cpu_us_per_req,omitempty"`
}

// PropagationRow is one propagation measurement.
type PropagationRow struct {
	// Load is "idle" or the background load as a share of the highest
	// IAMAT throughput measured.
	Load     string  `json:"load"`
	Rate     float64 `json:"rate"`     // background IAMATs per second asked for
	Achieved float64 `json:"achieved"` // and sent
	Probes   int     `json:"probes"`
	Timeouts int     `json:"timeouts"`
	// Latency runs from the origin's AT reply (in-process: the moment the
	// origin stored the update) until the last other server had it.
	Latency Latency `json:"latency"`
	// Method is "watch" (in-process: change notifications of each node) or
	// "poll" (WHATSAT r=1 bound=1 back to back on each server).
	Method string `json:"method"`
}

// WriteTable prints the report as aligned tables.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }
	m := r.Machine
	p("machine: %d CPUs (GOMAXPROCS %d), %s, %s %s\n", m.CPUs, m.GOMAXPROCS, orDash(m.CPU), m.Go, m.OS)
	s := r.Setup
	switch r.Mode {
	case ModeExternal:
		p("herd: servers at %s; this run left up to %d client records in them, ids starting %q\n", strings.Join(s.Addrs, ", "), s.RecordsLeft, s.IDPrefix)
	case ModeProcesses:
		p("herd: %d separate `herd serve` processes in the seed topology, %s places, fsync %s, logging to files %s, peer auth %s\n",
			s.Servers, s.Places, s.Fsync, onOff(s.Logging), onOff(s.PeerAuth))
	default:
		p("herd: in-process, %d servers in the seed topology, %s places, fsync %s, logging to files %s, peer auth %s\n",
			s.Servers, s.Places, s.Fsync, onOff(s.Logging), onOff(s.PeerAuth))
	}
	p("each throughput step: %s after a warm-up; IAMATs rotate over %d clients", s.Duration, s.ClientSpace)
	if s.Quick {
		p(" (-quick: figures are a smoke test only)")
	}
	p("\n")

	writeLoad := func(title string, rows []LoadRow) {
		if len(rows) == 0 {
			return
		}
		p("\n%s\n", title)
		p("TARGET\tPLACEMENT\tSERVERS\tCONNS\tIN FLIGHT\tREQ/S\tP50\tP99\tMAX\tERRORS\tVS ECHO\n")
		for _, row := range rows {
			p("%s\t%s\t%d\t%d\t%d\t%.0f\t%s\t%s\t%s\t%d\t%s\n", row.Target, row.Placement, row.Servers, row.Conns, row.InFlight,
				row.Throughput, fmtDur(row.Latency.P50), fmtDur(row.Latency.P99), fmtDur(row.Latency.Max), row.Errors, fmtRatio(row.VsEcho))
		}
	}
	writeLoad("IAMAT", r.IAMAT)
	if rr := r.Redis; rr != nil {
		r.writeRedis(p, writeLoad)
	}
	writeLoad(fmt.Sprintf("WHATSAT (radius %d km, %d places)", whatsatRadius, whatsatLimit), r.WHATSAT)

	if len(r.Propagation) > 0 {
		p("\nPROPAGATION (from the origin's AT reply until every other server has the update)\n")
		p("LOAD\tIAMAT/S ASKED\tIAMAT/S SENT\tPROBES\tLOST\tP50\tP99\tMAX\tMETHOD\n")
		for _, row := range r.Propagation {
			p("%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", row.Load, fmtRate(row.Rate), fmtRate(row.Achieved), row.Probes, row.Timeouts,
				fmtDur(row.Latency.P50), fmtDur(row.Latency.P99), fmtDur(row.Latency.Max), row.Method)
		}
	}
	if len(r.CatchUp) > 0 {
		p("\nCATCH-UP (%s stopped, updates for new clients sent to the others, %s restarted)\n", r.CatchUp[0].Server, r.CatchUp[0].Server)
		p("MISSED\tOPEN\tLINK UP\tTRANSFER\tTOTAL\tBYTES IN\tBYTES OUT\tRECORDS IN\tDUPLICATES\n")
		for _, row := range r.CatchUp {
			p("%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\n", row.Missed, fmtDur(row.Open), fmtDur(row.LinkUp), fmtDur(row.Transfer), fmtDur(row.Total),
				fmtBytes(row.BytesIn), fmtBytes(row.BytesOut), row.Received, row.Duplicates)
		}
	}
	if mem := r.Memory; mem != nil {
		where := "child process"
		if !mem.Isolated {
			where = "this process"
		}
		p("\nMEMORY, ONE NODE ALONE (wire.Parse and Node.IAMAT with its journal: no server, no neighbors, no logs; in a %s)\n", where)
		p("CLIENTS\tAT LINE\tRSS BEFORE\tRSS AFTER\tB/CLIENT\tB/CLIENT AFTER GC\tHEAP B/CLIENT\tLOAD TIME\n")
		p("%d\t%d B\t%s\t%s\t%.0f\t%.0f\t%.0f\t%.2fs\n", mem.Clients, mem.LineBytes, fmtBytes(mem.RSSBefore), fmtBytes(mem.RSSAfter),
			mem.BytesPerClient, mem.BytesPerClientGC, mem.HeapPerClient, mem.LoadSeconds)
	}
	if hm := r.HerdMemory; hm != nil {
		p("\nMEMORY, EACH SERVER OF A RUNNING FIVE-SERVER HERD (separate processes; IAMATs sent to all five and flooded; RSS as loaded, above the idle server's)\n")
		if hm.Skipped != "" {
			p("skipped: %s\n", hm.Skipped)
		} else {
			p("CLIENTS\tRSS IDLE (MEAN)\tRSS (MEAN)\tB/CLIENT PER SERVER (MEAN)\tMIN\tMAX\tHEAP B/CLIENT (MEAN)\tLOAD TIME\n")
			for _, pt := range hm.Points {
				var idle, rss uint64
				for i, s := range pt.Servers {
					idle += hm.Idle[i].RSS / uint64(len(pt.Servers))
					rss += s.RSS / uint64(len(pt.Servers))
				}
				p("%d\t%s\t%s\t%.0f\t%.0f\t%.0f\t%.0f\t%.2fs\n", pt.Clients, fmtBytes(idle), fmtBytes(rss),
					pt.MeanBytesPerClient, pt.MinBytesPerClient, pt.MaxBytesPerClient, pt.MeanHeapPerClient, pt.LoadSeconds)
			}
		}
	}
	if len(r.Comparisons) > 0 {
		p("\nCOMPARISONS (ratios to baselines measured in this run: for req/s above 1 herd is faster, for ms and B/client above 1 herd takes more)\n")
		p("WHAT\tHERD\tBASELINE\tRATIO\n")
		for _, c := range r.Comparisons {
			p("%s\t%s\t%s %s\t%s\n", c.What, fmtValue(c.Herd, c.Unit), c.Baseline, fmtValue(c.BaselineValue, c.Unit), fmtRatio(c.Ratio))
		}
	}
	return tw.Flush()
}

// writeRedis prints the Redis comparison.
func (r *Report) writeRedis(p func(string, ...any), writeLoad func(string, []LoadRow)) {
	rr := r.Redis
	if rr.Skipped != "" {
		p("\nREDIS: skipped: %s\n", rr.Skipped)
		return
	}
	writeLoad(fmt.Sprintf("HERD AGAINST REDIS %s (herd: IAMAT, every connection on %s; Redis: inline GEOADD %s LNG LAT MEMBER to a primary alone, and to a primary with %d replicas; all appendonly, fsync everysec)",
		rr.Version, orDash(rr.Herd), redisKey, redisReplicas), rr.Rows)
	p("\nHERD / REDIS+4 (throughput: above 1 herd is faster; p99 and CPU per write, all processes together: above 1 herd is slower)\n")
	p("CONNS\tIN FLIGHT\tHERD VS ECHO\tREDIS ALONE VS ECHO\tREDIS+4 VS ECHO\tTHROUGHPUT\tP99\tHERD CPU/WRITE\tREDIS+4 CPU/WRITE\tCPU\n")
	for _, row := range rr.Rows {
		if row.Target != "herd" {
			continue
		}
		alone, _ := findRow(rr.Rows, targetRedisAlone, row.Conns, row.InFlight)
		red, _ := findRow(rr.Rows, targetRedisReplicated, row.Conns, row.InFlight)
		p("%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", row.Conns, row.InFlight, fmtRatio(row.VsEcho), fmtRatio(alone.VsEcho), fmtRatio(red.VsEcho),
			fmtRatio(safeRatio(row.Throughput, red.Throughput)), fmtRatio(safeRatio(float64(row.Latency.P99), float64(red.Latency.P99))),
			fmtMicros(row.CPUPerReq), fmtMicros(red.CPUPerReq), fmtRatio(safeRatio(row.CPUPerReq, red.CPUPerReq)))
	}
	if len(rr.Replicas) > 0 {
		p("\nREDIS REPLICAS after the run (sorted set %q of each replica against the primary's %d members)\n", redisKey, rr.Members)
		p("REPLICA\tSTATE\tMEMBERS\tEQUAL TO THE PRIMARY\n")
		for _, c := range rr.Replicas {
			equal := "yes"
			if !c.Equal {
				equal = "NO"
			}
			p("%s\t%s\t%d\t%s\n", c.Addr, c.State, c.Members, equal)
		}
	}
}

// fmtMicros prints a time in microseconds, or "-" when it was not measured.
func fmtMicros(us float64) string {
	if us == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fµs", us)
}

// safeRatio returns a/b, or 0 when b is 0.
func safeRatio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func fmtValue(v float64, unit string) string {
	switch unit {
	case "ms":
		return fmt.Sprintf("%.2f ms", v)
	case "req/s":
		return fmt.Sprintf("%.0f/s", v)
	}
	return fmt.Sprintf("%.0f %s", v, unit)
}

func fmtRatio(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", v)
}

func fmtRate(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", v)
}

// fmtDur prints a duration with about three significant digits.
func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d < 10*time.Microsecond:
		return fmt.Sprintf("%.1fµs", float64(d)/1e3)
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// fmtBytes prints a byte count in binary units.
func fmtBytes(n uint64) string {
	switch {
	case n < 10<<10:
		return fmt.Sprintf("%d B", n)
	case n < 10<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 10<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
}
