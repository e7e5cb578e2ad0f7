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
	// Mode is "in-process" (a herd started by the run) or "external".
	Mode        string           `json:"mode"`
	Machine     Machine          `json:"machine"`
	Setup       Setup            `json:"setup"`
	IAMAT       []LoadRow        `json:"iamat,omitempty"`
	WHATSAT     []LoadRow        `json:"whatsat,omitempty"`
	Propagation []PropagationRow `json:"propagation,omitempty"`
	CatchUp     []CatchUpRow     `json:"catch_up,omitempty"`
	Memory      *MemoryResult    `json:"memory,omitempty"`
	Targets     []Target         `json:"targets,omitempty"`
	Seconds     float64          `json:"seconds"`
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
	Quick       bool     `json:"quick,omitempty"`
	// In-process herd only.
	PeerAuth bool   `json:"peer_auth,omitempty"`
	Fsync    string `json:"fsync,omitempty"`
	Logging  bool   `json:"logging,omitempty"`
	Places   string `json:"places,omitempty"`
	Dir      string `json:"dir,omitempty"`
}

// LoadRow is one throughput measurement.
type LoadRow struct {
	// Target is "herd" or "echo".
	Target string `json:"target"`
	// Placement is "spread" (connections round-robin over every server),
	// "one" (all on the first server), or "-" for the echo server.
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

// Target is one goal and whether the run met it.
type Target struct {
	Name     string  `json:"name"`
	Measured float64 `json:"measured"`
	Limit    float64 `json:"limit"`
	Unit     string  `json:"unit"`
	AtLeast  bool    `json:"at_least"` // Measured must be >= Limit, else <=
	Met      bool    `json:"met"`
}

// evaluate compares a report with the project's performance targets.
func evaluate(r *Report) []Target {
	var ts []Target
	add := func(name string, measured, limit float64, unit string, atLeast bool) {
		met := measured <= limit
		if atLeast {
			met = measured >= limit
		}
		ts = append(ts, Target{name, measured, limit, unit, atLeast, met})
	}
	for _, row := range r.IAMAT {
		if row.Placement == "spread" && (row.Conns == 8 || row.Conns == 64) && row.VsEcho > 0 {
			add(fmt.Sprintf("IAMAT %d conns, %d in flight, vs echo", row.Conns, row.InFlight), row.VsEcho, 0.6, "x", true)
		}
	}
	for _, row := range r.Propagation {
		limit := 20.0
		if row.Load == "idle" {
			limit = 2
		}
		if row.Latency.Samples > 0 {
			add("propagation p99, "+row.Load, row.Latency.P99Us/1e3, limit, "ms", false)
		}
	}
	if m := r.Memory; m != nil {
		add(fmt.Sprintf("memory, %d clients (RSS as loaded)", m.Clients), m.BytesPerClient, 250, "B/client", false)
	}
	for _, row := range r.WHATSAT {
		if row.Target == "herd" && row.VsEcho > 0 {
			add(fmt.Sprintf("WHATSAT %d conns, %d in flight, vs echo", row.Conns, row.InFlight), row.VsEcho, 0.3, "x", true)
		}
	}
	return ts
}

// WriteTable prints the report as aligned tables.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }
	m := r.Machine
	p("machine: %d CPUs (GOMAXPROCS %d), %s, %s %s\n", m.CPUs, m.GOMAXPROCS, orDash(m.CPU), m.Go, m.OS)
	s := r.Setup
	if r.Mode == "external" {
		p("herd: external servers %s\n", strings.Join(s.Addrs, ", "))
	} else {
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
		p("\nMEMORY (one node through wire.Parse and Node.IAMAT with its journal, in a %s)\n", where)
		p("CLIENTS\tAT LINE\tRSS BEFORE\tRSS AFTER\tB/CLIENT\tB/CLIENT AFTER GC\tHEAP B/CLIENT\tLOAD TIME\n")
		p("%d\t%d B\t%s\t%s\t%.0f\t%.0f\t%.0f\t%.2fs\n", mem.Clients, mem.LineBytes, fmtBytes(mem.RSSBefore), fmtBytes(mem.RSSAfter),
			mem.BytesPerClient, mem.BytesPerClientGC, mem.HeapPerClient, mem.LoadSeconds)
	}
	if len(r.Targets) > 0 {
		p("\nTARGETS\n")
		p("WHAT\tMEASURED\tTARGET\tMET\n")
		for _, t := range r.Targets {
			op := "<="
			if t.AtLeast {
				op = ">="
			}
			met := "MISS"
			if t.Met {
				met = "yes"
			}
			p("%s\t%s\t%s %s\t%s\n", t.Name, fmtValue(t.Measured, t.Unit), op, fmtValue(t.Limit, t.Unit), met)
		}
	}
	return tw.Flush()
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
	case "x":
		return fmtRatio(v)
	case "ms":
		return fmt.Sprintf("%.2f ms", v)
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
