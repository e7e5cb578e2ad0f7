package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/herd-dev/herd/internal/server"
	"github.com/herd-dev/herd/internal/wire"
)

func TestSkipThroughBlankLine(t *testing.T) {
	long := strings.Repeat("x", 100)
	for _, c := range []struct {
		name, in, rest string
	}{
		{"blank at once", "\nNEXT", "NEXT"},
		{"after lines", "{\n   \"a\": 1\n}\n\nNEXT", "NEXT"},
		{"lines longer than the buffer", long + "\n" + long + "\n\nNEXT", "NEXT"},
		{"only the first blank line", "a\n\n\nNEXT", "\nNEXT"},
		{"a CR is not a blank line", "a\n\r\n\nNEXT", "NEXT"},
	} {
		// One byte per read, so the blank line is split across reads at
		// every possible place; a 16-byte buffer, so long lines span fills.
		for _, r := range []io.Reader{strings.NewReader(c.in), iotest.OneByteReader(strings.NewReader(c.in))} {
			br := bufio.NewReaderSize(r, 16)
			if err := skipThroughBlankLine(br); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if rest, _ := io.ReadAll(br); string(rest) != c.rest {
				t.Errorf("%s: left %q, want %q", c.name, rest, c.rest)
			}
		}
	}
	br := bufio.NewReader(strings.NewReader("a\nb\n"))
	if err := skipThroughBlankLine(br); err != io.EOF {
		t.Errorf("input without a blank line: err = %v, want EOF", err)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {1, time.Millisecond}} {
		got := h.quantile(c.q)
		if diff := got - c.want; diff < -c.want/50 || diff > c.want/50 {
			t.Errorf("quantile(%v) = %v, want %v within 2%%", c.q, got, c.want)
		}
	}
	if s := h.summary(); s.Max != time.Millisecond || s.Samples != 1000 {
		t.Errorf("summary = %+v", s)
	}
	var empty histogram
	if s := empty.summary(); s.P99 != 0 || s.Samples != 0 {
		t.Errorf("empty summary = %+v", s)
	}
}

func TestBucketsAreMonotonic(t *testing.T) {
	last := -1
	for v := uint64(0); v < 1<<40; v = v*9/8 + 1 {
		b := bucketOf(v)
		if b < last || b >= histBuckets {
			t.Fatalf("bucketOf(%d) = %d after %d", v, b, last)
		}
		if mid := uint64(bucketValue(b)); mid+mid/histSub+1 < v || mid > v+v/histSub+1 {
			t.Fatalf("bucketValue(bucketOf(%d)) = %d: more than 1/%d off", v, mid, histSub)
		}
		last = b
	}
}

func TestRequestsParse(t *testing.T) {
	wall := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC).UnixNano()
	line := iamatRequests("bench-", 100)(nil, 3, 8, 2, wall)
	if want := "IAMAT bench-000019 " + location(19) + " 1767323045.000000006\n"; string(line) != want {
		t.Fatalf("IAMAT = %q, want %q", line, want)
	}
	m, err := wire.Parse(bytes.TrimSuffix(line, []byte("\n")))
	if err != nil || m.Kind != wire.KindIAMAT || m.T != wire.UnixTime(wall) {
		t.Fatalf("Parse(%q) = %+v, %v", line, m, err)
	}
	for i := range uint64(locations) {
		if _, ok := wire.ParseLocation([]byte(location(i))); !ok {
			t.Errorf("location %d %q does not parse", i, location(i))
		}
	}
	// GEOADD names the same client at the same place, longitude first.
	if line := geoaddRequests("bench-", 100)(nil, 3, 8, 2, wall); string(line) != "GEOADD pts +139.650300 +35.676200 bench-000019\n" || location(19) != "+35.676200+139.650300" {
		t.Errorf("GEOADD = %q for %q", line, location(19))
	}
	line = whatsatRequests("w-", 10, 10, 5)(nil, 1, 2, 7, 0)
	if string(line) != "WHATSAT w-000005 10 5\n" {
		t.Fatalf("WHATSAT = %q", line)
	}
	if _, err := wire.Parse(bytes.TrimSpace(line)); err != nil {
		t.Fatal(err)
	}
	if got := string(appendClient(nil, "c", 1234567)); got != "c1234567" {
		t.Errorf("appendClient = %q", got)
	}
}

func TestLoadAgainstEcho(t *testing.T) {
	e, err := startEcho()
	if err != nil {
		t.Fatal(err)
	}
	defer e.close()
	ctx := context.Background()
	for _, depth := range []int{1, 16} {
		res, err := runLoad(ctx, loadSpec{addrs: []string{e.addr()}, conns: 3, depth: depth,
			warmup: 20 * time.Millisecond, measure: 100 * time.Millisecond,
			request: iamatRequests("c-", 10), okPrefix: "IAMAT "})
		if err != nil {
			t.Fatal(err)
		}
		if res.OK == 0 || res.Errors != 0 || res.Throughput <= 0 || res.Latency.Samples != res.OK || res.Latency.P99 <= 0 {
			t.Errorf("depth %d: %+v", depth, res)
		}
	}
	// A total: exactly that many requests, all answered.
	res, err := runLoad(ctx, loadSpec{addrs: []string{e.addr()}, conns: 3, depth: 4, total: 100,
		request: iamatRequests("c-", 0), okPrefix: "IAMAT "})
	if err != nil || res.OK != 100 || res.Errors != 0 {
		t.Fatalf("total 100: %+v, %v", res, err)
	}
	// Replies that do not start with the prefix are errors.
	res, err = runLoad(ctx, loadSpec{addrs: []string{e.addr()}, conns: 1, depth: 1, total: 10,
		request: iamatRequests("c-", 0), okPrefix: "AT "})
	if err != nil || res.OK != 0 || res.Errors != 10 {
		t.Fatalf("wrong prefix: %+v, %v", res, err)
	}
}

func TestLoadIsPaced(t *testing.T) {
	e, err := startEcho()
	if err != nil {
		t.Fatal(err)
	}
	defer e.close()
	res, err := runLoad(context.Background(), loadSpec{addrs: []string{e.addr()}, conns: 2, depth: 8, rate: 2000,
		warmup: 50 * time.Millisecond, measure: 300 * time.Millisecond, request: iamatRequests("c-", 10)})
	if err != nil {
		t.Fatal(err)
	}
	// Pacing caps the rate; how close a busy machine gets to it is not this
	// test's business.
	if res.OK == 0 || res.Throughput > 3000 {
		t.Errorf("paced at 2000/s, measured %.0f/s (%d requests)", res.Throughput, res.OK)
	}
}

func TestLoadStopsWithContext(t *testing.T) {
	e, err := startEcho()
	if err != nil {
		t.Fatal(err)
	}
	defer e.close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = runLoad(ctx, loadSpec{addrs: []string{e.addr()}, conns: 2, depth: 4, measure: time.Minute,
		request: iamatRequests("c-", 10)})
	if err == nil || time.Since(start) > 10*time.Second {
		t.Fatalf("runLoad = %v after %v; want the context's error soon", err, time.Since(start))
	}
}

func TestReportTableAndComparisons(t *testing.T) {
	r := &Report{
		Mode:  ModeProcesses,
		Setup: Setup{Servers: 5, Duration: "3s", Places: "offline", Fsync: "everysec", Logging: true},
		IAMAT: []LoadRow{
			{Target: "echo", Placement: "-", Servers: 1, Conns: 8, InFlight: 1, Throughput: 100000},
			{Target: "herd", Placement: "spread", Servers: 5, Conns: 8, InFlight: 1, Throughput: 70000, VsEcho: 0.7},
			{Target: "herd", Placement: "one", Servers: 1, Conns: 8, InFlight: 1, Throughput: 50000, VsEcho: 0.5},
		},
		Redis: &RedisResult{Version: "7.0.15", Herd: "Alford", Members: 1000, Rows: []LoadRow{
			{Target: "echo", Placement: "-", Servers: 1, Conns: 8, InFlight: 1, Throughput: 100000},
			{Target: "herd", Placement: "one", Servers: 1, Conns: 8, InFlight: 1, Throughput: 30000, VsEcho: 0.3, Latency: Latency{P99: 4 * time.Millisecond}},
			{Target: targetRedisAlone, Placement: "primary", Servers: 1, Conns: 8, InFlight: 1, Throughput: 60000, VsEcho: 0.6},
			{Target: targetRedisReplicated, Placement: "primary", Servers: 1, Conns: 8, InFlight: 1, Throughput: 40000, VsEcho: 0.4, Latency: Latency{P99: time.Millisecond}},
		}, Replicas: []ReplicaCheck{{Addr: "127.0.0.1:1", State: "online", Members: 1000, Equal: true}, {Addr: "127.0.0.1:2", State: "online", Members: 999}}},
		Propagation: []PropagationRow{{Load: "idle", Probes: 10, Latency: Latency{Samples: 10, P99: 3 * time.Millisecond, P99Us: 3000}}},
		Memory:      &MemoryResult{Clients: 1000, BytesPerClient: 200, Isolated: true},
		HerdMemory: &HerdMemoryResult{
			Idle: []ServerMemory{{Name: "Alford", RSS: 10 << 20}},
			Points: []HerdMemoryPoint{{Clients: 1000, Servers: []ServerMemory{{Name: "Alford", Clients: 1000, RSS: 11 << 20, BytesPerClient: 500}},
				MeanBytesPerClient: 500, MinBytesPerClient: 500, MaxBytesPerClient: 500}},
		},
	}
	r.Comparisons = compare(r)
	want := map[string]float64{
		"IAMAT 8 conns, 1 in flight, herd (spread) / echo":                            0.7,
		"write 8 conns, 1 in flight, herd / Redis+4":                                  0.75,
		"write 8 conns, 1 in flight, p99, herd / Redis+4":                             4,
		"memory per client at 1000 clients, a herd server / one node alone (at 1000)": 2.5,
	}
	if len(r.Comparisons) != len(want) {
		t.Errorf("comparisons = %+v", r.Comparisons)
	}
	for _, c := range r.Comparisons {
		if ratio, ok := want[c.What]; !ok || c.Ratio < ratio-1e-9 || c.Ratio > ratio+1e-9 {
			t.Errorf("comparison %+v, want ratio %v", c, ratio)
		}
	}
	var b strings.Builder
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, s := range []string{"5 separate `herd serve` processes", "VS ECHO", "0.70x", "HERD AGAINST REDIS 7.0.15", "redis+4", "0.75x", "4.00x",
		"127.0.0.1:2  online  999      NO", "PROPAGATION", "3.00ms", "MEMORY, ONE NODE ALONE", "MEMORY, EACH SERVER OF A RUNNING FIVE-SERVER HERD",
		"COMPARISONS", "one node alone 200 B/client", "2.50x"} {
		if !strings.Contains(out, s) {
			t.Errorf("table lacks %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, "MISS\n") || strings.Contains(out, "TARGETS") {
		t.Errorf("table passes verdicts:\n%s", out)
	}
}

func TestSettledAndLinksUp(t *testing.T) {
	up := func(peer string, acked uint64) server.LinkStatus {
		return server.LinkStatus{Peer: peer, OutUp: true, InUp: true, Acked: acked}
	}
	for _, c := range []struct {
		name            string
		states          []serverState
		linksUp, settle bool
	}{
		{"quiet", []serverState{{"A", 3, 7, []server.LinkStatus{up("B", 7)}}, {"B", 3, 2, []server.LinkStatus{up("A", 2)}}}, true, true},
		{"unacknowledged", []serverState{{"A", 3, 7, []server.LinkStatus{up("B", 6)}}, {"B", 3, 2, []server.LinkStatus{up("A", 2)}}}, true, false},
		{"clients differ", []serverState{{"A", 3, 7, []server.LinkStatus{up("B", 7)}}, {"B", 2, 2, []server.LinkStatus{up("A", 2)}}}, true, false},
		{"link half up", []serverState{{"A", 3, 7, []server.LinkStatus{{Peer: "B", OutUp: true, Acked: 7}}}, {"B", 3, 2, []server.LinkStatus{up("A", 2)}}}, false, true},
		{"stopped peer does not count", []serverState{{"A", 3, 7, []server.LinkStatus{{Peer: "C"}, up("B", 7)}}, {"B", 3, 2, []server.LinkStatus{up("A", 2)}}}, true, true},
	} {
		if err := linksUp(c.states); (err == nil) != c.linksUp {
			t.Errorf("%s: linksUp = %v, want up %v", c.name, err, c.linksUp)
		}
		if err := settled(c.states); (err == nil) != c.settle {
			t.Errorf("%s: settled = %v, want settled %v", c.name, err, c.settle)
		}
	}
}

func TestMeasureMemory(t *testing.T) {
	res, err := MeasureMemory(context.Background(), 5000, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if res.Clients != 5000 || res.RSSAfter == 0 || res.LineBytes < 60 || res.Isolated {
		t.Errorf("MeasureMemory = %+v", res)
	}
}

func TestRunAgainstAddrs(t *testing.T) {
	ctx := context.Background()
	h, err := startLocalHerd(ctx, t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer h.close()
	var progress strings.Builder
	opt := Options{Addrs: h.addrs(), Quick: true, Conns: []int{2}, InFlight: []int{1, 4},
		Skip: []string{StepMemory, StepHerdMemory}, Progress: &progress}
	// Without AllowWrites, nothing is sent.
	if r, err := Run(ctx, opt); !errors.Is(err, ErrLiveHerd) || r != nil || !strings.Contains(err.Error(), `ids starting "bench-"`) {
		t.Fatalf("Run without AllowWrites = %v, %v; want ErrLiveHerd naming the id prefix", r, err)
	}
	if n := h.members()[0].Node.Len(); n != 0 {
		t.Fatalf("refused run left %d clients", n)
	}
	opt.AllowWrites = true
	r, err := Run(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	if r.Mode != ModeExternal || len(r.CatchUp) != 0 || r.Memory != nil || r.Redis == nil || r.Redis.Skipped == "" {
		t.Errorf("report = %+v", r)
	}
	if !strings.Contains(progress.String(), `ids starting "bench-" will stay in it`) {
		t.Errorf("no warning that the run writes to the herd: %q", progress.String())
	}
	var table strings.Builder
	r.WriteTable(&table)
	if want := fmt.Sprintf(`this run left up to %d client records in them, ids starting "bench-"`, r.Setup.RecordsLeft); r.Setup.RecordsLeft < clientSpace || !strings.Contains(table.String(), want) {
		t.Errorf("table does not say what the run left (%q):\n%s", want, table.String())
	}
	if n := h.members()[0].Node.Len(); n == 0 || n > r.Setup.RecordsLeft {
		t.Errorf("the run left %d clients, said up to %d", n, r.Setup.RecordsLeft)
	}
	if len(r.IAMAT) != 6 || len(r.WHATSAT) != 4 { // echo, spread, one for each depth; echo and spread
		t.Errorf("IAMAT rows %+v, WHATSAT rows %+v", r.IAMAT, r.WHATSAT)
	}
	for _, row := range append(r.IAMAT, r.WHATSAT...) {
		if row.OK == 0 || row.Errors != 0 || (row.Target == "herd" && row.VsEcho <= 0) {
			t.Errorf("row %+v", row)
		}
	}
	if len(r.Propagation) != 2 || r.Propagation[0].Method != "poll" || r.Propagation[0].Probes == 0 || r.Propagation[1].Timeouts != 0 {
		t.Errorf("propagation = %+v", r.Propagation)
	}
	if !strings.Contains(progress.String(), "steps in") {
		t.Errorf("progress = %q", progress.String())
	}
}
