package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	"github.com/herd-dev/herd/internal/server"
)

const (
	upTimeout   = 15 * time.Second
	downGrace   = 10 * time.Second
	pollEvery   = 50 * time.Millisecond
	dialTimeout = 300 * time.Millisecond
	// probeTimeout is how long a probe waits for a server's answer.
	probeTimeout = time.Second
)

// parseServerArgs parses the flags and names of up, down, restart and status: the
// configuration, and the servers named in it, or all of them when no name
// is given. An unknown name is an error that lists the known ones.
func parseServerArgs(env *Env, command, summary string, args []string) (*config.Config, []config.Server, error) {
	fs, cfgPath := newFlagSet(env, command, "[NAME...]", summary+"\nWith names, only those servers; without, every server in the configuration.")
	if err := parseFlags(fs, args); err != nil {
		return nil, nil, err
	}
	cfg, err := loadConfig(fs, *cfgPath)
	if err != nil {
		return nil, nil, err
	}
	servers, err := selectServers(cfg, fs.Args())
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", command, err)
	}
	return cfg, servers, nil
}

// selectServers returns the servers called names in the configuration's
// order, or every server when names is empty.
func selectServers(cfg *config.Config, names []string) ([]config.Server, error) {
	if len(names) == 0 {
		return cfg.Servers, nil
	}
	var unknown []string
	for _, n := range names {
		if _, ok := cfg.Server(n); !ok {
			unknown = append(unknown, strconv.Quote(n))
		}
	}
	if len(unknown) > 0 {
		where := "the built-in herd"
		if cfg.Source != "" {
			where = cfg.Source
		}
		return nil, fmt.Errorf("no server named %s in %s; it has %s", strings.Join(unknown, ", "), where, strings.Join(cfg.Names(), ", "))
	}
	var servers []config.Server
	for _, s := range cfg.Servers {
		if slices.Contains(names, s.Name) {
			servers = append(servers, s)
		}
	}
	return servers, nil
}

func runUp(ctx context.Context, env *Env, args []string) error {
	cfg, servers, err := parseServerArgs(env, "up", "Start servers as background processes and wait until each answers.\nServers already up are left alone.", args)
	if err != nil {
		return err
	}
	return up(ctx, env, cfg, servers)
}

func runDown(ctx context.Context, env *Env, args []string) error {
	cfg, servers, err := parseServerArgs(env, "down", "Stop servers: SIGTERM, then SIGKILL after a grace period.", args)
	if err != nil {
		return err
	}
	return down(ctx, env, cfg, servers)
}

func runRestart(ctx context.Context, env *Env, args []string) error {
	cfg, servers, err := parseServerArgs(env, "restart", "Stop servers as down does, then start them as up does.", args)
	if err != nil {
		return err
	}
	if err := down(ctx, env, cfg, servers); err != nil {
		return err
	}
	return up(ctx, env, cfg, servers)
}

// started is a server process that up started and waits for.
type started struct {
	cmd *exec.Cmd
	// outPath is the process's stdout and stderr, and outStart the size
	// the file had before it started: what lies past it is this run's.
	outPath  string
	outStart int64
}

func up(ctx context.Context, env *Env, cfg *config.Config, servers []config.Server) error {
	for _, dir := range []string{cfg.RunDir, cfg.LogDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("up: %w", err)
		}
	}
	starts, failed, err := startServers(env, cfg, servers)
	if err != nil {
		return err
	}
	failed = append(failed, waitUp(ctx, env, cfg, servers, starts)...)
	if len(failed) > 0 {
		return fmt.Errorf("up: %s did not start", strings.Join(failed, ", "))
	}
	return nil
}

// startServers starts each server that is not up yet, and returns those it
// started and the names of those it could not start because something
// else holds their address.
func startServers(env *Env, cfg *config.Config, servers []config.Server) (map[string]started, []string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, nil, fmt.Errorf("up: %w", err)
	}
	var configArgs []string // none: the servers use the built-in herd too
	if cfg.Source != "" {
		configArgs = []string{"-config", cfg.Source}
	}
	starts := map[string]started{}
	var failed []string
	for _, s := range servers {
		switch probe(s.Addr) {
		case stateUp:
			fmt.Fprintf(env.Stdout, "%-10s already up on %s%s\n", s.Name, s.Addr, pidNote(findServer(cfg.RunDir, s)))
			continue
		case stateNotAnswered:
			// A server at limits.max_connections refuses the probe too;
			// its process still runs.
			if pid := findServer(cfg.RunDir, s); pid > 0 {
				fmt.Fprintf(env.Stdout, "%-10s already up on %s (pid %d), but not answering: busy or hung\n", s.Name, s.Addr, pid)
				continue
			}
			fmt.Fprintf(env.Stdout, "%-10s FAILED: %s is held by something that does not answer as a herd server\n", s.Name, s.Addr)
			failed = append(failed, s.Name)
			continue
		}
		st, err := start(self, configArgs, cfg.LogDir, s.Name)
		if err != nil {
			return nil, nil, fmt.Errorf("up: start %s: %w", s.Name, err)
		}
		if err := os.WriteFile(pidFile(cfg.RunDir, s.Name), []byte(strconv.Itoa(st.cmd.Process.Pid)+"\n"), 0o644); err != nil {
			return nil, nil, fmt.Errorf("up: %w", err)
		}
		starts[s.Name] = st
		go st.cmd.Wait() // reap it if it dies while we wait
	}
	return starts, failed, nil
}

// waitUp waits until each server it started answers, or exits, or
// upTimeout passes, prints how each one fared, and returns the names of
// those that are not up.
func waitUp(ctx context.Context, env *Env, cfg *config.Config, servers []config.Server, starts map[string]started) (failed []string) {
	deadline := time.Now().Add(upTimeout)
	for _, s := range servers {
		st, ok := starts[s.Name]
		if !ok {
			continue
		}
		pid := st.cmd.Process.Pid
		for probe(s.Addr) != stateUp && !exited(pid) && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(pollEvery)
		}
		if probe(s.Addr) != stateUp {
			failed = append(failed, s.Name)
			fmt.Fprintf(env.Stdout, "%-10s FAILED: %s; see %s\n", s.Name, whyNotUp(st, s.Addr), shortPath(st.outPath))
			continue
		}
		logPath := filepath.Join(cfg.LogDir, s.Name+".log")
		if cfg.LogTo == config.LogToStdout {
			logPath = st.outPath
		}
		admin := ""
		if reach := s.AdminReach(); reach != "" {
			admin = ", status page http://" + reach + "/"
		}
		fmt.Fprintf(env.Stdout, "%-10s up on %s (pid %d), log %s%s\n", s.Name, s.Addr, pid, shortPath(logPath), admin)
	}
	return failed
}

// shortPath names a file below the working directory relative to it.
func shortPath(p string) string {
	wd, err := os.Getwd()
	if err != nil {
		return p
	}
	if rel, err := filepath.Rel(wd, p); err == nil && filepath.IsLocal(rel) {
		return rel
	}
	return p
}

// start runs 'herd serve NAME' as a background process in its own session,
// with its output appended to LOG_DIR/NAME.out.
func start(self string, configArgs []string, logDir, name string) (started, error) {
	st := started{outPath: filepath.Join(logDir, name+".out")}
	out, err := os.OpenFile(st.outPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return st, err
	}
	defer out.Close()
	if fi, err := out.Stat(); err == nil {
		st.outStart = fi.Size()
	}
	st.cmd = exec.Command(self, append(append([]string{"serve"}, configArgs...), name)...)
	st.cmd.Stdout, st.cmd.Stderr = out, out
	st.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlive this shell
	return st, st.cmd.Start()
}

// whyNotUp says why a server that up started does not answer: for one that
// exited, the error it printed (its last "herd: " line in this run's
// output).
func whyNotUp(st started, addr string) string {
	if !exited(st.cmd.Process.Pid) {
		return fmt.Sprintf("not answering on %s after %v", addr, upTimeout)
	}
	why := "exited"
	f, err := os.Open(st.outPath)
	if err != nil {
		return why
	}
	defer f.Close()
	if _, err := f.Seek(st.outStart, io.SeekStart); err != nil {
		return why
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if msg, ok := strings.CutPrefix(sc.Text(), "herd: "); ok {
			why = msg
		}
	}
	return why
}

func down(ctx context.Context, env *Env, cfg *config.Config, servers []config.Server) error {
	run := cfg.RunDir
	pids := map[string]int{}
	var unfound []string
	for _, s := range servers {
		pid := findServer(run, s)
		if pid == 0 {
			os.Remove(pidFile(run, s.Name)) // stale, if there is one
			if probe(s.Addr) == stateUp {
				fmt.Fprintf(env.Stdout, "%-10s FAILED: a herd server answers on %s, but no process of this user listens there\n", s.Name, s.Addr)
				unfound = append(unfound, s.Name)
				continue
			}
			fmt.Fprintf(env.Stdout, "%-10s not running\n", s.Name)
			continue
		}
		syscall.Kill(pid, syscall.SIGTERM)
		pids[s.Name] = pid
	}
	deadline := time.Now().Add(downGrace)
	for _, s := range servers {
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
	if len(unfound) > 0 {
		return fmt.Errorf("down: %s still running", strings.Join(unfound, ", "))
	}
	return nil
}

func runStatus(_ context.Context, env *Env, args []string) error {
	cfg, servers, err := parseServerArgs(env, "status", "Show which servers are up and which peer links are connected.", args)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVER\tADDR\tSTATE\tCLIENTS\tLINKS (out/in)")
	down := 0
	var notes []string
	for _, s := range servers {
		state, clients, links := "down", "-", "-"
		switch probe(s.Addr) {
		case stateNotAnswered:
			state = "not answering"
			down++
		case stateDown:
			down++
		case stateUp:
			state = "up"
			st, err := liveStatus(s, env.Getenv(config.EnvAdminToken))
			if err != nil && s.Admin != "" {
				notes = append(notes, fmt.Sprintf("%s: %v", s.Name, err))
			}
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
	for _, n := range notes {
		fmt.Fprintln(env.Stderr, "herd status:", n)
	}
	if down > 0 {
		return fmt.Errorf("status: %d of %d servers down", down, len(servers))
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

// liveStatus asks a server's admin listener, when it has one, for its
// status, at the address where the rule of config.Server.AdminReach puts
// it, sending the admin token when one is set. It refuses an answer from a
// server of another name: several servers may share an admin address such
// as 0.0.0.0:12550, each on its own host.
func liveStatus(s config.Server, token string) (serverStatus, error) {
	var st serverStatus
	reach := s.AdminReach()
	if reach == "" {
		return st, errors.New("no admin address")
	}
	req, err := http.NewRequest(http.MethodGet, "http://"+reach+"/api/status?recent=0&locations=0", nil)
	if err != nil {
		return st, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := http.Client{Timeout: time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return st, fmt.Errorf("admin %s: %w", reach, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("admin %s answered %s", reach, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("admin %s: %w", reach, err)
	}
	if st.Name != s.Name {
		return st, fmt.Errorf("admin %s is %s's, not %s's", reach, st.Name, s.Name)
	}
	return st, nil
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

// probe tells a herd server on addr from nothing there, and from something
// else (another program, or a hung server) holding the address: a herd
// server answers server.ProbeLine "? herd-probe", which no other kind of
// listener would.
func probe(addr string) serverState {
	c, err := net.DialTimeout("tcp", addr, dialTimeout)
	if err != nil {
		return stateDown
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(probeTimeout))
	if _, err := c.Write([]byte(server.ProbeLine + "\n")); err != nil {
		return stateNotAnswered
	}
	reply, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || reply != "? "+server.ProbeLine+"\n" {
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

// exited reports whether process pid has ended: no process has the pid,
// or each of its threads is a zombie. The first thread of a Go process
// shows as a zombie while the others are still exiting and still hold the
// process's files, its listening socket among them; the server's address
// is free only once they have all ended.
func exited(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return true
	}
	threads, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return syscall.Kill(pid, 0) != nil
	}
	for _, t := range threads {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, t.Name()))
		if err != nil {
			continue // this thread has ended
		}
		// The state follows the command name, which may hold ") " itself.
		if i := bytes.LastIndex(stat, []byte(") ")); i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z' {
			return false
		}
	}
	return true
}

// isHerdServer guards against a stale PID file naming a process that
// reused the pid: it reports whether pid runs 'herd serve ... name'.
func isHerdServer(pid int, name string) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return true // cannot tell; trust the pid file
	}
	args := strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00")
	return slices.Contains(args, "serve") && args[len(args)-1] == name
}

// findServer returns the pid of server s's process, or 0 if none runs. It
// looks in order at the pid file 'herd up' wrote in run, the status file
// the server writes there itself (in case 'herd up' died before writing
// the pid file), and the process listening on the server's address (for a
// server started with another run_dir, such as the built-in herd's
// relative one from another folder). So up, down and status agree: a
// server is the process that serves its address.
func findServer(run string, s config.Server) int {
	for _, pid := range []func() int{
		func() int { pid, _ := readPID(run, s.Name); return pid },
		func() int { st, _ := readStatus(run, s.Name); return st.PID },
		func() int { return listenerPID(s.ListenAddr()) },
	} {
		if p := pid(); p > 0 && !exited(p) && isHerdServer(p, s.Name) {
			return p
		}
	}
	return 0
}

// pidNote is " (pid N)", or "" when the pid is unknown.
func pidNote(pid int) string {
	if pid == 0 {
		return ""
	}
	return fmt.Sprintf(" (pid %d)", pid)
}
