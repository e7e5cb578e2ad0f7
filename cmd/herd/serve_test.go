package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServe_WarnsOnStderrAndLogsToStdout runs 'herd serve' with log_to:
// stdout, without HERD_PEER_SECRET and without a Google places key: stderr
// says once that each is not set, and that the log goes to stdout, and
// stdout holds the JSON log.
func TestServe_WarnsOnStderrAndLogsToStdout(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfgPath := filepath.Join(dir, "herd.yaml")
	cfg := fmt.Sprintf("log_dir: logs\ndata_dir: data\nlog_to: stdout\nlog_format: json\nplaces: {provider: google}\nservers:\n  - {name: Solo, addr: %q}\n", addr)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	// Read only once Run has returned, when nothing writes to them.
	var stdout, stderr bytes.Buffer
	env := &Env{Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, env, []string{"serve", "-config", cfgPath, "Solo"}) }()
	deadline := time.Now().Add(20 * time.Second)
	for { // until the server writes its status file
		if _, err := readStatus(filepath.Join(dir, "run"), "Solo"); err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("herd serve ended: %v\nstderr:\n%s", err, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("herd serve wrote no status file: %v\nstderr:\n%s", <-done, stderr.String())
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	if !strings.Contains(stderr.String(), "logging to stdout") {
		t.Errorf("stderr does not say the log goes to stdout:\n%s", stderr.String())
	}
	for _, warning := range []string{"warning: HERD_PEER_SECRET is not set", "warning: places: no API key (GOOGLE_PLACES_API_KEY is not set)"} {
		if n := strings.Count(stderr.String(), warning); n != 1 {
			t.Errorf("stderr holds %q %d times; want once:\n%s", warning, n, stderr.String())
		}
	}
	var serving bool
	for _, line := range strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n") {
		var record struct{ Msg, Server string }
		if err := json.Unmarshal([]byte(line), &record); err != nil || record.Server != "Solo" {
			t.Fatalf("stdout holds %q; want JSON records of Solo (%v)", line, err)
		}
		serving = serving || record.Msg == "serving"
	}
	if !serving {
		t.Errorf("no record of serving on stdout:\n%s", stdout.String())
	}
}
