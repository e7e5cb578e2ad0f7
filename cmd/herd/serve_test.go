package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
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

// TestServe_OutlivesItsLogReader runs 'herd serve' with log_to: stdout
// into a pipe whose reader then goes away, as a log collector that
// restarts does: the server goes on answering clients. By Go's default, its
// next log line would kill it with SIGPIPE.
func TestServe_OutlivesItsLogReader(t *testing.T) {
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfgPath := filepath.Join(dir, "herd.yaml")
	cfg := fmt.Sprintf("log_dir: logs\ndata_dir: data\nlog_to: stdout\nservers:\n  - {name: Solo, addr: %q}\n", addr)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "serve", "-config", cfgPath, "Solo")
	stderrPath := filepath.Join(dir, "stderr")
	stderr, err := os.Create(stderrPath)
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	cmd.Stderr = stderr
	stdout, stdoutW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = stdoutW
	err = cmd.Start()
	stdoutW.Close()
	if err != nil {
		t.Fatal(err)
	}
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	serving := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "msg=serving") {
				serving <- true
				return
			}
		}
		serving <- false
	}()
	select {
	case ok := <-serving:
		if !ok {
			t.Fatal("herd serve's stdout ended before it logged that it is serving")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("herd serve logged no serving line in 20 s")
	}
	stdout.Close()

	for i := range 5 { // each is logged, into the pipe nobody reads
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatalf("IAMAT %d after the log reader left: %v", i, err)
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(conn, "IAMAT reader-gone-%d +1+1 %d.0\n", i, time.Now().Unix())
		reply, err := bufio.NewReader(conn).ReadString('\n')
		conn.Close()
		if !strings.HasPrefix(reply, "AT Solo ") {
			t.Fatalf("IAMAT %d after the log reader left: %q, %v", i, reply, err)
		}
	}
	// The log lines of those IAMATs meet the closed pipe at the sink's
	// next flush, which says so on stderr.
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("herd serve ended after its log reader left: %v", waitErr)
		case <-time.After(20 * time.Millisecond):
		}
		said, _ := os.ReadFile(stderrPath)
		if strings.Contains(string(said), "cannot write the log to stdout") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("herd serve did not say on stderr that its log cannot be written:\n%s", said)
		}
	}
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatalf("herd serve no longer answers after its log failed: %v", err)
	}
	conn.Close()
}

// TestServe_UnknownNameListsTheServers: 'herd serve' with a name the
// configuration does not have says so as up and down do, naming the file
// and the servers it has.
func TestServe_UnknownNameListsTheServers(t *testing.T) {
	cfgPath := writeHerd(t, t.TempDir(), "herd.yaml", []testServer{{name: "Solo", addr: fmt.Sprintf("127.0.0.1:%d", freePort(t))}})
	_, _, err := herdCmd(t, "serve", "-config", cfgPath, "Z")
	if err == nil || !strings.Contains(err.Error(), `serve: no server named "Z" in `+cfgPath+"; it has Solo") {
		t.Errorf("herd serve Z: %v; want an error naming Z, the file and Solo", err)
	}
}
