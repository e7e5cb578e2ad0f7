package bench

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

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
	line := iamatRequests("client-", 100)(nil, 3, 8, 2, wall)
	if want := "IAMAT client-000019 " + location(19) + " 1767323045.000000006\n"; string(line) != want {
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

func TestReportTableAndTargets(t *testing.T) {
	r := &Report{
		Mode:  "in-process",
		Setup: Setup{Servers: 5, Duration: "3s", Places: "offline", Fsync: "everysec", Logging: true},
		IAMAT: []LoadRow{
			{Target: "echo", Placement: "-", Servers: 1, Conns: 8, InFlight: 1, Throughput: 100000},
			{Target: "herd", Placement: "spread", Servers: 5, Conns: 8, InFlight: 1, Throughput: 70000, VsEcho: 0.7},
			{Target: "herd", Placement: "one", Servers: 1, Conns: 8, InFlight: 1, Throughput: 50000, VsEcho: 0.5},
		},
		Propagation: []PropagationRow{{Load: "idle", Probes: 10, Latency: Latency{Samples: 10, P99: 3 * time.Millisecond, P99Us: 3000}}},
		Memory:      &MemoryResult{Clients: 1000, BytesPerClient: 200, Isolated: true},
	}
	r.Targets = evaluate(r)
	want := map[string]bool{"IAMAT 8 conns, 1 in flight, vs echo": true, "propagation p99, idle": false, "memory, 1000 clients (RSS as loaded)": true}
	if len(r.Targets) != len(want) {
		t.Fatalf("targets = %+v", r.Targets)
	}
	for _, tg := range r.Targets {
		if met, ok := want[tg.Name]; !ok || met != tg.Met {
			t.Errorf("target %+v, want met=%v", tg, met)
		}
	}
	var b strings.Builder
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"VS ECHO", "0.70x", "PROPAGATION", "3.00ms", "MEMORY", "TARGETS", "MISS"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, b.String())
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
	r, err := Run(ctx, Options{Addrs: h.addrs(), Quick: true, Conns: []int{2}, InFlight: []int{1, 4},
		Skip: []string{StepMemory}, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	if r.Mode != "external" || len(r.CatchUp) != 0 || r.Memory != nil {
		t.Errorf("report = %+v", r)
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
