package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// soloServer is one 'herd serve' process started by a test, outside 'herd
// up': it writes its status file but no pid file.
type soloServer struct {
	addr, cfgPath, run string
	cmd                *exec.Cmd
	exited             chan struct{} // closed when the process has ended
}

// startSolo starts a one-server herd, with limits given in YAML flow
// form (or ""), and waits until the server's status file names it.
func startSolo(t *testing.T, limits string) *soloServer {
	t.Helper()
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &soloServer{addr: ln.Addr().String(), cfgPath: filepath.Join(dir, "herd.yaml"), run: filepath.Join(dir, "run"), exited: make(chan struct{})}
	ln.Close()
	cfg := fmt.Sprintf("log_dir: logs\ndata_dir: data\nservers:\n  - {name: Solo, addr: %q}\n", s.addr)
	if limits != "" {
		cfg += "limits: " + limits + "\n"
	}
	if err := os.WriteFile(s.cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command(os.Args[0], "serve", "-config", s.cfgPath, "Solo")
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() { s.cmd.Process.Kill(); <-s.exited })
	deadline := time.Now().Add(20 * time.Second)
	for {
		if st, err := readStatus(s.run, "Solo"); err == nil && st.PID == s.cmd.Process.Pid {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatal("the server wrote no status file naming its pid")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDownStopsAServerWithoutPIDFile covers 'herd up' killed after it
// started a server but before it wrote the server's pid file: 'herd down'
// finds the server by the status file the server writes itself.
func TestDownStopsAServerWithoutPIDFile(t *testing.T) {
	solo := startSolo(t, "")
	cfgPath, run, exited := solo.cfgPath, solo.run, solo.exited
	if _, err := os.Stat(pidFile(run, "Solo")); err == nil {
		t.Fatal("a pid file exists; the test needs none")
	}

	var out bytes.Buffer
	env := &Env{Stdout: &out, Stderr: &out, Getenv: func(string) string { return "" }}
	if err := Run(context.Background(), env, []string{"down", "-config", cfgPath}); err != nil {
		t.Fatalf("herd down: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "Solo") || !strings.Contains(out.String(), "stopped") {
		t.Errorf("herd down printed %q; want Solo stopped", out.String())
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the server still runs after herd down")
	}
}

// TestUpAndStatus_TellAServerFromAnotherListener covers a server's address
// held by something else, such as another server's admin listener: it must
// not count as that server being up.
func TestUpAndStatus_TellAServerFromAnotherListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				conn.Read(make([]byte, 512))
				conn.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
			}()
		}
	}()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "herd.yaml")
	cfg := fmt.Sprintf("log_dir: logs\ndata_dir: data\nservers:\n  - {name: Solo, addr: %q}\n", ln.Addr())
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ command, want string }{
		{"status", "not answering"},
		{"up", "FAILED"},
	} {
		var out bytes.Buffer
		env := &Env{Stdout: &out, Stderr: &out, Getenv: func(string) string { return "" }}
		err := Run(context.Background(), env, []string{tc.command, "-config", cfgPath})
		if err == nil || !strings.Contains(out.String(), tc.want) {
			t.Errorf("herd %s with a non-herd listener on the address: err %v, output %q; want an error and %q", tc.command, err, out.String(), tc.want)
		}
	}
}

// TestUpLeavesABusyServerAlone covers a server at limits.max_connections:
// it refuses the probe, but it runs, so 'herd up' must not fail on it.
func TestUpLeavesABusyServerAlone(t *testing.T) {
	solo := startSolo(t, "{max_connections: 1}")
	addr, cfgPath := solo.addr, solo.cfgPath
	busy, err := net.Dial("tcp", addr) // takes the one connection
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	fmt.Fprintf(busy, "IAMAT kiwi +1+1 1\n")
	if _, err := bufio.NewReader(busy).ReadString('\n'); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	env := &Env{Stdout: &out, Stderr: &out, Getenv: func(string) string { return "" }}
	if err := Run(context.Background(), env, []string{"up", "-config", cfgPath}); err != nil {
		t.Fatalf("herd up with the server busy: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "already up") {
		t.Errorf("herd up printed %q; want Solo already up", out.String())
	}
}
