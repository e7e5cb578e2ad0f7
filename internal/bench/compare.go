package bench

import (
	"fmt"
	"time"
)

// Comparison is one figure of a run beside a baseline measured in the same
// run: the echo server, Redis with four replicas, or one node alone. Only
// such ratios carry over from one machine, or one hour of a shared
// machine, to another; the bench passes no verdict on them.
type Comparison struct {
	What string `json:"what"`
	// Unit of Herd and BaselineValue: "req/s", "ms" or "B/client".
	Unit          string  `json:"unit"`
	Herd          float64 `json:"herd"`
	Baseline      string  `json:"baseline"`
	BaselineValue float64 `json:"baseline_value"`
	// Ratio is Herd / BaselineValue: for req/s, above 1 herd is faster;
	// for ms and B/client, above 1 herd takes more.
	Ratio float64 `json:"ratio"`
}

// compare lists the report's comparisons: herd's throughput to the echo
// server's, herd's throughput and p99 latency to Redis with four
// replicas', and the memory per client of a server in a running herd to
// that of one node alone.
func compare(r *Report) []Comparison {
	var cs []Comparison
	add := func(what, unit string, herd float64, baseline string, base float64) {
		if herd > 0 && base > 0 {
			cs = append(cs, Comparison{what, unit, herd, baseline, base, herd / base})
		}
	}
	vsEcho := func(kind string, rows []LoadRow, placement string) {
		for _, row := range rows {
			if row.Target != "herd" || row.Placement != placement {
				continue
			}
			if e, ok := findRow(rows, "echo", row.Conns, row.InFlight); ok {
				add(fmt.Sprintf("%s %s, herd (%s) / echo", kind, shapeOf(row), placement), "req/s", row.Throughput, "echo", e.Throughput)
			}
		}
	}
	vsEcho("IAMAT", r.IAMAT, "spread")
	vsEcho("WHATSAT", r.WHATSAT, "spread")
	if rr := r.Redis; rr != nil {
		for _, row := range rr.Rows {
			if row.Target != "herd" {
				continue
			}
			if red, ok := findRow(rr.Rows, targetRedisReplicated, row.Conns, row.InFlight); ok {
				add(fmt.Sprintf("write %s, herd / Redis+4", shapeOf(row)), "req/s", row.Throughput, targetRedisReplicated, red.Throughput)
				add(fmt.Sprintf("write %s, p99, herd / Redis+4", shapeOf(row)), "ms", ms(row.Latency.P99), targetRedisReplicated, ms(red.Latency.P99))
			}
		}
	}
	if hm, one := r.HerdMemory, r.Memory; hm != nil && len(hm.Points) > 0 && one != nil {
		p := hm.Points[len(hm.Points)-1]
		add(fmt.Sprintf("memory per client at %d clients, a herd server / one node alone (at %d)", p.Clients, one.Clients),
			"B/client", p.MeanBytesPerClient, "one node alone", one.BytesPerClient)
	}
	return cs
}

// shapeOf names a load: "8 conns, 1 in flight".
func shapeOf(row LoadRow) string {
	return fmt.Sprintf("%d conns, %d in flight", row.Conns, row.InFlight)
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }
