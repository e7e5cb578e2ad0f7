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

// TestDownStopsAServerWithoutPIDFile covers 'herd up' killed after it
// started a server but before it wrote the server's pid file: 'herd down'
// finds the server by the status file the server writes itself.
func TestDownStopsAServerWithoutPIDFile(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfgPath := filepath.Join(dir, "herd.yaml")
	cfg := fmt.Sprintf("log_dir: logs\ndata_dir: data\nservers:\n  - {name: Solo, addr: %q}\n", addr)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	server := exec.Command(os.Args[0], "serve", "-config", cfgPath, "Solo")
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- server.Wait() }()
	t.Cleanup(func() { server.Process.Kill() })

	run := filepath.Join(dir, "run")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if st, err := readStatus(run, "Solo"); err == nil && st.PID == server.Process.Pid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server wrote no status file naming its pid")
		}
		time.Sleep(20 * time.Millisecond)
	}
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
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfgPath := filepath.Join(dir, "herd.yaml")
	cfg := fmt.Sprintf("log_dir: logs\ndata_dir: data\nlimits: {max_connections: 1}\nservers:\n  - {name: Solo, addr: %q}\n", addr)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	server := exec.Command(os.Args[0], "serve", "-config", cfgPath, "Solo")
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Process.Kill(); server.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for probe(addr) != stateUp {
		if time.Now().After(deadline) {
			t.Fatal("the server never answered")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for {
		if st, err := readStatus(filepath.Join(dir, "run"), "Solo"); err == nil && st.PID == server.Process.Pid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server wrote no status file naming its pid")
		}
		time.Sleep(20 * time.Millisecond)
	}
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
