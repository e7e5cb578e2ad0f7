package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/herd-dev/herd/internal/bench"
)

// TestMain lets the test binary stand in for herd when the memory step of
// `herd bench` re-executes itself as `herd bench -memory-child N`, and when
// a test runs it as `herd serve`.
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && (os.Args[1] == "bench" && os.Args[2] == "-memory-child" || os.Args[1] == "serve") {
		env := &Env{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
		os.Exit(exitStatus(os.Stderr, Run(context.Background(), env, os.Args[1:])))
	}
	os.Exit(m.Run())
}

func runBenchForTest(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	env := &Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
	if err := Run(ctx, env, append([]string{"bench"}, args...)); err != nil {
		t.Fatalf("herd bench %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String(), errb.String()
}

// matchAll reports each pattern that out does not match.
func matchAll(t *testing.T, out string, patterns ...string) {
	t.Helper()
	for _, re := range patterns {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("output does not match %s", re)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}

func TestBenchQuickTable(t *testing.T) {
	out, progress := runBenchForTest(t, "-quick", "-skip", "redis,herd-memory")
	if !strings.Contains(progress, "herd bench [1/") || !strings.Contains(progress, "steps in") {
		t.Errorf("no progress line on stderr:\n%q", progress)
	}
	ratio := `\d+\.\d\dx`
	matchAll(t, out,
		`(?m)^command: herd bench -quick -skip redis,herd-memory$`,
		`(?m)^herd: in-process, 5 servers`,
		`(?m)^IAMAT$`,
		`(?m)^echo +- +1 +8 +16 +\d+ `,
		`(?m)^herd +spread +5 +8 +1 +\d+ .* `+ratio+`$`,
		`(?m)^herd +spread +5 +64 +16 +\d+ .* `+ratio+`$`,
		`(?m)^herd +one +1 +64 +1 +\d+ .* `+ratio+`$`,
		`(?m)^WHATSAT `,
		`(?m)^PROPAGATION `,
		`(?m)^idle +- +- +\d+ +0 +\S+ +\S+ +\S+ +watch$`,
		`(?m)^50% +\d+ +\d+ +\d+ +0 `,
		`(?m)^CATCH-UP `,
		`(?m)^1000 +\S+ `,
		`(?m)^MEMORY, ONE NODE ALONE .*child process`,
		`(?m)^20000 +\d+ B `,
		`(?m)^COMPARISONS `,
		`(?m)^IAMAT 64 conns, 16 in flight, herd \(spread\) / echo +\d+/s +echo \d+/s +`+ratio+`$`,
		`(?m)^WHATSAT 8 conns, 1 in flight, herd \(spread\) / echo +\d+/s +echo \d+/s +`+ratio+`$`,
	)
	if verdict := regexp.MustCompile(`(?m)^TARGETS$| (MISS|yes)$`).FindString(out); verdict != "" {
		t.Errorf("the table passes verdicts (%q):\n%s", verdict, out)
	}
}

func TestBenchQuickJSON(t *testing.T) {
	out, _ := runBenchForTest(t, "-quick", "-json", "-conns", "8", "-inflight", "1", "-skip", "one,redis,whatsat,catchup,memory,herd-memory")
	var r bench.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if r.Mode != "in-process" || len(r.IAMAT) != 2 || r.IAMAT[1].VsEcho <= 0 || r.IAMAT[1].Latency.P50Us <= 0 {
		t.Errorf("IAMAT rows = %+v", r.IAMAT)
	}
	if len(r.Propagation) != 2 || r.Propagation[0].Probes == 0 || r.Memory != nil || len(r.CatchUp) != 0 {
		t.Errorf("report = %+v", r)
	}
	if len(r.Comparisons) != 1 || r.Comparisons[0].Baseline != "echo" || r.Comparisons[0].Ratio != r.IAMAT[1].VsEcho {
		t.Errorf("comparisons = %+v", r.Comparisons)
	}
}

func TestBenchFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-skip", "nothing"},
		{"-conns", "0"},
		{"-inflight", "x"},
		{"extra"},
		{"-only", "nothing"},
		{"-only", "redis", "-skip", "echo"},
	} {
		env := &Env{Stdout: new(bytes.Buffer), Stderr: new(bytes.Buffer), Getenv: func(string) string { return "" }}
		if err := Run(context.Background(), env, append([]string{"bench"}, args...)); err == nil {
			t.Errorf("herd bench %v: no error", args)
		}
	}
}

// TestBenchProcesses runs the herd as five `herd serve` processes (this
// test binary stands in for herd) and measures it, and the memory of each
// server of a second such herd.
func TestBenchProcesses(t *testing.T) {
	out, _ := runBenchForTest(t, "-quick", "-processes", "-conns", "8", "-inflight", "1,16", "-skip", "redis,catchup,memory")
	ratio := `\d+\.\d\dx`
	matchAll(t, out,
		"(?m)^herd: 5 separate `herd serve` processes in the seed topology, offline places, fsync everysec, logging to files on, peer auth on$",
		`(?m)^herd +spread +5 +8 +1 +\d+ .* +0 +`+ratio+`$`,
		`(?m)^herd +one +1 +8 +16 +\d+ .* +0 +`+ratio+`$`,
		`(?m)^herd +spread +5 +8 +1 +\d+ .* +0 +`+ratio+`$`, // WHATSAT
		`(?m)^idle +- +- +[1-9]\d* +0 +\S+ +\S+ +\S+ +poll$`,
		`(?m)^50% +\d+ +\d+ +[1-9]\d* +0 .* poll$`,
		`(?m)^MEMORY, EACH SERVER OF A RUNNING FIVE-SERVER HERD \(separate processes`,
		`(?m)^10000 +\d+\.\d MiB +\d+\.\d MiB +\d+ +\d+ +\d+ +\d+ +\d+\.\d\ds$`,
		`(?m)^20000 +\d+\.\d MiB +\d+\.\d MiB +\d+ +\d+ +\d+ +\d+ +\d+\.\d\ds$`,
	)
	if strings.Contains(out, "CATCH-UP") {
		t.Errorf("catch-up ran against processes")
	}
}

// TestBenchRedis compares one server of a five-process herd with a Redis
// primary alone and with four replicas, at every load of the comparison:
// with a herd of its own, and with the run's herd under -processes.
func TestBenchRedis(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server is not installed, and CI must install it: %v", err)
		}
		t.Skipf("redis-server is not installed (apt-get install redis-server): %v", err)
	}
	for _, c := range []struct {
		args  []string
		loads [][2]string
	}{
		{[]string{"-quick", "-only", "redis", "-conns", "8,64", "-inflight", "1,16"}, [][2]string{{"8", "1"}, {"64", "1"}, {"8", "16"}, {"64", "16"}}},
		{[]string{"-quick", "-processes", "-only", "redis", "-conns", "8", "-inflight", "1"}, [][2]string{{"8", "1"}}},
	} {
		out, _ := runBenchForTest(t, c.args...)
		ratio := `\d+\.\d\dx`
		patterns := []string{
			`(?m)^HERD AGAINST REDIS \d+\.\d+\.\d+ \(herd: IAMAT, every connection on Alford, one of five separate processes; .* 4 replicas; all appendonly, fsync everysec\)$`,
			`(?m)^HERD / REDIS\+4 `,
			`(?m)^REDIS REPLICAS after the run \(sorted set "pts" of each replica against the primary's [1-9]\d* members\)$`,
			`(?m)^COMPARISONS `,
		}
		for _, load := range c.loads {
			shape := ` +` + load[0] + ` +` + load[1] + ` +`
			patterns = append(patterns,
				`(?m)^echo +- +1`+shape+`\d+ .* +0 +-$`,
				`(?m)^herd +one +1`+shape+`[1-9]\d* .* +0 +`+ratio+`$`,
				`(?m)^redis alone +primary +1`+shape+`[1-9]\d* .* +0 +`+ratio+`$`,
				`(?m)^redis\+4 +primary +1`+shape+`[1-9]\d* .* +0 +`+ratio+`$`,
				// The last three are CPU per write, herd's and Redis+4's ("-" when
				// a -quick window is too short to see), and their ratio.
				`(?m)^`+load[0]+` +`+load[1]+` +`+ratio+` +`+ratio+` +`+ratio+` +`+ratio+` +`+ratio+` +(-|[\d.]+µs) +(-|[\d.]+µs) +`+ratio+`$`,
				`(?m)^write `+load[0]+` conns, `+load[1]+` in flight, herd / Redis\+4 +\d+/s +redis\+4 \d+/s +`+ratio+`$`,
				`(?m)^write `+load[0]+` conns, `+load[1]+` in flight, p99, herd / Redis\+4 +[\d.]+ ms +redis\+4 [\d.]+ ms +`+ratio+`$`,
			)
		}
		matchAll(t, out, patterns...)
		if n := len(regexp.MustCompile(`(?m)^127\.0\.0\.1:\d+ +online +[1-9]\d* +yes$`).FindAllString(out, -1)); n != 4 {
			t.Errorf("herd bench %v: %d replicas online and equal to the primary, want 4:\n%s", c.args, n, out)
		}
	}
}

func TestBenchRedisMissing(t *testing.T) {
	out, _ := runBenchForTest(t, "-quick", "-only", "redis", "-redis-server", "/nonexistent/redis-server")
	matchAll(t, out, `(?m)^REDIS: skipped: /nonexistent/redis-server is not installed .*apt-get install redis-server`)
}

func TestBenchAddrsNeedsAllowWrites(t *testing.T) {
	var out, errb bytes.Buffer
	env := &Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
	err := Run(context.Background(), env, []string{"bench", "-addrs", "127.0.0.1:1"})
	if err == nil || !strings.Contains(err.Error(), "-allow-writes") || !strings.Contains(err.Error(), `ids starting "bench-"`) {
		t.Errorf("herd bench -addrs without -allow-writes: %v; want a refusal naming the flag and the id prefix", err)
	}
}
