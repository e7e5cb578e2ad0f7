package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/herd-dev/herd/internal/member"
	"github.com/herd-dev/herd/internal/server"
)

func runServe(ctx context.Context, env *Env, args []string) (err error) {
	fs, cfgPath := newFlagSet(env, "serve", "NAME", "Run the server NAME in the foreground until SIGINT or SIGTERM.")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("serve: give exactly one server name")
	}
	cfg, err := loadConfig(fs, *cfgPath)
	if err != nil {
		return err
	}
	name := fs.Arg(0)
	if _, err := selectServers(cfg, []string{name}); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	// A log reader that goes away (log_to: stdout into a pipe, a collector
	// that restarts) must not take the server with it: by Go's default a
	// write to a broken stdout or stderr ends the process. Ignored, the
	// write fails, and the log sink holds, then drops and counts, lines.
	signal.Ignore(syscall.SIGPIPE)
	m, err := member.Open(ctx, cfg, name, member.Overrides{Env: env.Getenv, Stdout: env.Stdout, Stderr: env.Stderr})
	if err != nil {
		return err
	}
	defer func() {
		if err != nil { // so the log says why the server stopped
			m.Logger.Error("stopped", "err", err)
		}
		m.Close()
	}()
	for _, w := range m.Warnings {
		fmt.Fprintf(env.Stderr, "herd: %s: warning: %s\n", name, w)
	}
	sc, _ := cfg.Server(name) // member.Open has checked the name
	ln, err := listenPatiently(ctx, netListen, sc.ListenAddr(), listenPatience, m.Logger)
	if err != nil && ctx.Err() != nil {
		m.Logger.Info("stopped before its address could be listened on", "addr", sc.ListenAddr())
		return nil // SIGTERM while waiting for the address: a clean stop
	}
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	fmt.Fprintf(env.Stderr, "herd: %s listening on %s, logging to %s\n", name, ln.Addr(), cmp.Or(m.LogPath, "stdout"))

	statusDone := make(chan struct{})
	sctx, stopStatus := context.WithCancel(ctx)
	go func() { // ends when serving does
		defer close(statusDone)
		writeStatusLoop(sctx, cfg.RunDir, m)
	}()
	err = m.Serve(ctx, ln)
	stopStatus()
	<-statusDone
	return err
}

// serverStatus is what a running server writes to RUN/NAME.json for
// 'herd status'.
type serverStatus struct {
	Name    string              `json:"name"`
	PID     int                 `json:"pid"`
	Addr    string              `json:"addr"`
	Clients int                 `json:"clients"`
	Updated time.Time           `json:"updated"`
	Links   []server.LinkStatus `json:"links"`
}

func writeStatusLoop(ctx context.Context, dir string, m *member.Member) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		m.Logger.Warn("cannot write status files", "dir", dir, "err", err)
		return
	}
	path := filepath.Join(dir, m.Name+".json")
	defer os.Remove(path)
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		st := serverStatus{Name: m.Name, PID: os.Getpid(), Addr: m.Addr, Clients: m.Node.Len(),
			Updated: time.Now().UTC(), Links: m.Server.Links()}
		if data, err := json.MarshalIndent(st, "", "  "); err == nil {
			tmp := path + ".tmp"
			if os.WriteFile(tmp, data, 0o644) == nil {
				os.Rename(tmp, path)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
