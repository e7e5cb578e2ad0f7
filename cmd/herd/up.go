package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/herd-dev/herd/internal/config"
)

const (
	upTimeout   = 15 * time.Second
	downGrace   = 10 * time.Second
	pollEvery   = 50 * time.Millisecond
	dialTimeout = 300 * time.Millisecond
	// probeTimeout is how long a probe waits for a server's answer.
	probeTimeout = time.Second
)

func runUp(ctx context.Context, env *Env, args []string) error {
	fs, cfgPath := newFlagSet(env, "up", "", "Start every server in the configuration as a background process and wait until each listens.\nServers already up are left alone.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(fs, *cfgPath)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("up: %w", err)
	}
	var configArgs []string // none: the servers use the built-in herd too
	if cfg.Source != "" {
		configArgs = []string{"-config", cfg.Source}
	}
	run := cfg.RunDir
	for _, dir := range []string{run, cfg.LogDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("up: %w", err)
		}
	}
	started := map[string]*exec.Cmd{}
	var failed []string
	for _, s := range cfg.Servers {
		switch probe(s.Addr) {
		case stateUp:
			fmt.Fprintf(env.Stdout, "%-10s already up on %s\n", s.Name, s.Addr)
			continue
		case stateNotAnswered:
			// A server at limits.max_connections refuses the probe too;
			// its own status file still says it runs.
			if st, err := readStatus(run, s.Name); err == nil && st.PID > 0 && !exited(st.PID) && isHerd(st.PID) {
				fmt.Fprintf(env.Stdout, "%-10s already up on %s (pid %d), but not answering: busy or hung\n", s.Name, s.Addr, st.PID)
				continue
			}
			fmt.Fprintf(env.Stdout, "%-10s FAILED: %s is held by something that does not answer as a herd server\n", s.Name, s.Addr)
			failed = append(failed, s.Name)
			continue
		}
		out, err := os.OpenFile(filepath.Join(cfg.LogDir, s.Name+".out"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("up: %w", err)
		}
		cmd := exec.Command(self, append(append([]string{"serve"}, configArgs...), s.Name)...)
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlive this shell
		err = cmd.Start()
		out.Close()
		if err != nil {
			return fmt.Errorf("up: start %s: %w", s.Name, err)
		}
		if err := os.WriteFile(pidFile(run, s.Name), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
			return fmt.Errorf("up: %w", err)
		}
		started[s.Name] = cmd
		go cmd.Wait() // reap it if it dies while we wait
	}
	deadline := time.Now().Add(upTimeout)
	for _, s := range cfg.Servers {
		cmd, ok := started[s.Name]
		if !ok {
			continue
		}
		for probe(s.Addr) != stateUp {
			if time.Now().After(deadline) || ctx.Err() != nil || exited(cmd.Process.Pid) {
				failed = append(failed, s.Name)
				break
			}
			time.Sleep(pollEvery)
		}
		logPath := filepath.Join(cfg.LogDir, s.Name+".log")
		if !slices.Contains(failed, s.Name) {
			admin := ""
			if s.Admin != "" {
				admin = ", status page http://" + s.Admin + "/"
			}
			fmt.Fprintf(env.Stdout, "%-10s up on %s (pid %d), log %s%s\n", s.Name, s.Addr, cmd.Process.Pid, logPath, admin)
		} else {
			fmt.Fprintf(env.Stdout, "%-10s FAILED to listen on %s; see %s\n", s.Name, s.Addr, filepath.Join(cfg.LogDir, s.Name+".out"))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("up: %s did not start", strings.Join(failed, ", "))
	}
	return nil
}

func runDown(ctx context.Context, env *Env, args []string) error {
	fs, cfgPath := newFlagSet(env, "down", "", "Stop the servers started by 'herd up': SIGTERM, then SIGKILL after a grace period.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(fs, *cfgPath)
	if err != nil {
		return err
	}
	run := cfg.RunDir
	pids := map[string]int{}
	for _, s := range cfg.Servers {
		pid, err := readPID(run, s.Name)
		if err != nil {
			// 'herd up' may have died between starting the server and
			// writing its pid file; the server's own status file has it.
			st, serr := readStatus(run, s.Name)
			if serr != nil || st.PID <= 0 {
				fmt.Fprintf(env.Stdout, "%-10s not running (no pid file)\n", s.Name)
				continue
			}
			pid = st.PID
		}
		if exited(pid) || !isHerd(pid) {
			fmt.Fprintf(env.Stdout, "%-10s not running (stale pid %d)\n", s.Name, pid)
			os.Remove(pidFile(run, s.Name))
			continue
		}
		syscall.Kill(pid, syscall.SIGTERM)
		pids[s.Name] = pid
	}
	deadline := time.Now().Add(downGrace)
	for _, s := range cfg.Servers {
		pid, ok := pids[s.Name]
		if !ok {
			continue
		}
		for !exited(pid) && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(pollEvery)
		}
		how := "stopped"
		if !exited(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
			how = "killed after " + downGrace.String()
		}
		os.Remove(pidFile(run, s.Name))
		fmt.Fprintf(env.Stdout, "%-10s %s (pid %d)\n", s.Name, how, pid)
	}
	return nil
}

func runStatus(_ context.Context, env *Env, args []string) error {
	fs, cfgPath := newFlagSet(env, "status", "", "Show which servers are up and which peer links are connected.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(fs, *cfgPath)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVER\tADDR\tSTATE\tCLIENTS\tLINKS (out/in)")
	down := 0
	for _, s := range cfg.Servers {
		state, clients, links := "down", "-", "-"
		switch probe(s.Addr) {
		case stateNotAnswered:
			state = "not answering"
			down++
		case stateDown:
			down++
		case stateUp:
			state = "up"
			st, err := liveStatus(s)
			if err != nil {
				st, err = readStatus(cfg.RunDir, s.Name)
			}
			if err == nil {
				clients = strconv.Itoa(st.Clients)
				links = formatLinks(st)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, s.Addr, state, clients, links)
	}
	tw.Flush()
	if down > 0 {
		return fmt.Errorf("status: %d of %d servers down", down, len(cfg.Servers))
	}
	return nil
}

func formatLinks(st serverStatus) string {
	var b bytes.Buffer
	for i, l := range st.Links {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s/%s", l.Peer, upDown(l.OutUp), upDown(l.InUp))
	}
	return b.String()
}

func upDown(up bool) string {
	if up {
		return "up"
	}
	return "down"
}

// liveStatus asks a server's admin listener, when it has one, for its status.
func liveStatus(s config.Server) (serverStatus, error) {
	var st serverStatus
	if s.Admin == "" {
		return st, errors.New("no admin address")
	}
	client := http.Client{Timeout: time.Second}
	resp, err := client.Get("http://" + s.Admin + "/api/status?recent=0&locations=0")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("admin answered %s", resp.Status)
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st, err
}

// readStatus reads the status file a running server writes to run_dir.
func readStatus(run, name string) (serverStatus, error) {
	var st serverStatus
	data, err := os.ReadFile(filepath.Join(run, name+".json"))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, err
	}
	if time.Since(st.Updated) > 10*time.Second {
		return st, errors.New("status file is stale")
	}
	return st, nil
}

// serverState is what a probe of a server's address found.
type serverState int

const (
	stateDown        serverState = iota // nothing listens
	stateUp                             // a herd server answers
	stateNotAnswered                    // something listens, but no herd server answers
)

// probeLine is an invalid command: a herd server answers it "? herd-probe",
// which no other kind of listener would.
const probeLine = "herd-probe"

// probe tells a herd server on addr from nothing there, and from something
// else (another program, or a hung server) holding the address.
func probe(addr string) serverState {
	c, err := net.DialTimeout("tcp", addr, dialTimeout)
	if err != nil {
		return stateDown
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(probeTimeout))
	if _, err := c.Write([]byte(probeLine + "\n")); err != nil {
		return stateNotAnswered
	}
	reply, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || reply != "? "+probeLine+"\n" {
		return stateNotAnswered
	}
	return stateUp
}

func pidFile(run, name string) string { return filepath.Join(run, name+".pid") }

func readPID(run, name string) (int, error) {
	data, err := os.ReadFile(pidFile(run, name))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(data)))
}

// exited reports whether no process (or only a zombie) has this pid.
func exited(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, _ := bytes.Cut(stat, []byte(") "))
	return len(rest) > 0 && rest[0] == 'Z'
}

// isHerd guards against a stale PID file naming a process that reused the pid.
func isHerd(pid int) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return true // cannot tell; trust the pid file
	}
	return bytes.Contains(cmdline, []byte("serve\x00"))
}
