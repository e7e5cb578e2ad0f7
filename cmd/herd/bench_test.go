package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
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
		if err := Run(context.Background(), env, os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "herd:", err)
			os.Exit(2)
		}
		os.Exit(0)
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

func TestBenchQuickTable(t *testing.T) {
	out, progress := runBenchForTest(t, "-quick")
	if !strings.Contains(progress, "herd bench [1/") || !strings.Contains(progress, "steps in") {
		t.Errorf("no progress line on stderr:\n%q", progress)
	}
	ratio := `\d+\.\d\dx`
	for _, re := range []string{
		`(?m)^command: herd bench -quick$`,
		`(?m)^IAMAT$`,
		`(?m)^echo +- +1 +8 +16 +\d+ `,
		`(?m)^herd +spread +5 +8 +1 +\d+ .* ` + ratio + `$`,
		`(?m)^herd +spread +5 +64 +16 +\d+ .* ` + ratio + `$`,
		`(?m)^herd +one +1 +64 +1 +\d+ .* ` + ratio + `$`,
		`(?m)^WHATSAT `,
		`(?m)^herd +spread +5 +8 +1 +\d+ .* ` + ratio + `$`,
		`(?m)^PROPAGATION `,
		`(?m)^idle +- +- +\d+ +0 +\S+ +\S+ +\S+ +watch$`,
		`(?m)^50% +\d+ +\d+ +\d+ +0 `,
		`(?m)^CATCH-UP `,
		`(?m)^1000 +\S+ `,
		`(?m)^MEMORY .*child process`,
		`(?m)^20000 +\d+ B `,
		`(?m)^TARGETS$`,
		`(?m)^IAMAT 64 conns, 16 in flight, vs echo +` + ratio + ` +>= 0.60x +(yes|MISS)$`,
		`(?m)^WHATSAT 8 conns, 1 in flight, vs echo +` + ratio,
		`(?m)^propagation p99, idle +\d+\.\d\d ms +<= 2.00 ms`,
		`(?m)^memory, 20000 clients .* B/client +<= 250 B/client`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("output does not match %s", re)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}

func TestBenchQuickJSON(t *testing.T) {
	out, _ := runBenchForTest(t, "-quick", "-json", "-conns", "8", "-inflight", "1", "-skip", "one,whatsat,catchup,memory")
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
	if len(r.Targets) != 3 { // IAMAT at 8 conns, and propagation idle and loaded
		t.Errorf("targets = %+v", r.Targets)
	}
}

func TestBenchFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-skip", "nothing"},
		{"-conns", "0"},
		{"-inflight", "x"},
		{"extra"},
	} {
		env := &Env{Stdout: new(bytes.Buffer), Stderr: new(bytes.Buffer), Getenv: func(string) string { return "" }}
		if err := Run(context.Background(), env, append([]string{"bench"}, args...)); err == nil {
			t.Errorf("herd bench %v: no error", args)
		}
	}
}
