package faulttest

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/herd-dev/herd/internal/config"
	"github.com/herd-dev/herd/internal/herdtest"
	"github.com/herd-dev/herd/internal/server"
)

// binDir holds the herd binary, built at most once per test binary.
var (
	binDir   string
	binOnce  sync.Once
	binPath  string
	binError error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "faulttest-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "faulttest:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// herdBinary builds cmd/herd on first use (tests that do not run processes
// never pay for it) and returns its path.
func herdBinary(tb testing.TB) string {
	tb.Helper()
	binOnce.Do(func() {
		binPath = filepath.Join(binDir, "herd")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/herd-dev/herd/cmd/herd").CombinedOutput()
		if err != nil {
			binError = fmt.Errorf("go build ./cmd/herd: %v\n%s", err, out)
		}
	})
	if binError != nil {
		tb.Fatal(binError)
	}
	return binPath
}

// procHerd is a herd of real `herd serve` processes on 127.0.0.1, with a
// configuration, logs, data and run folder of its own.
type procHerd struct {
	tb      testing.TB
	bin     string
	dir     string
	cfgPath string
	names   []string
	addrs   map[string]string

	mu    sync.Mutex
	procs map[string]*proc // running (or exited but not yet reaped by stop)
}

type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited; err is set then
	err  error
}

// peerSecret is the HERD_PEER_SECRET of process herds.
const peerSecret = "faulttest-secret"

// startProcHerd writes a configuration for topology on free ports (offline
// places, fsync everysec, fast heartbeats, and extraYAML appended) and
// starts every server. Every process is SIGKILLed at the end of the test.
func startProcHerd(tb testing.TB, topology map[string][]string, extraYAML string) *procHerd {
	tb.Helper()
	ph := &procHerd{tb: tb, bin: herdBinary(tb), dir: tb.TempDir(), addrs: map[string]string{}, procs: map[string]*proc{}}
	ph.names = slices.Sorted(maps.Keys(topology))
	ports := freePorts(tb, len(ph.names))
	var cfg strings.Builder
	cfg.WriteString("log_dir: logs\ndata_dir: data\nfsync: everysec\nservers:\n")
	for i, name := range ph.names {
		ph.addrs[name] = fmt.Sprintf("127.0.0.1:%d", ports[i])
		fmt.Fprintf(&cfg, "  - name: %s\n    addr: %s\n    neighbors: [%s]\n", name, ph.addrs[name], strings.Join(topology[name], ", "))
	}
	cfg.WriteString("places:\n  provider: offline\npeers:\n  heartbeat: 100ms\n  dead_after: 1s\n")
	cfg.WriteString(extraYAML)
	ph.cfgPath = filepath.Join(ph.dir, "herd.yaml")
	if err := os.WriteFile(ph.cfgPath, []byte(cfg.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ph.signal(syscall.SIGKILL, ph.names...) })
	ph.start(ph.names...)
	return ph
}

// freePorts returns n distinct free TCP ports on 127.0.0.1.
func freePorts(tb testing.TB, n int) []int {
	tb.Helper()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

func (ph *procHerd) addrList() []string {
	var out []string
	for _, n := range ph.names {
		out = append(out, ph.addrs[n])
	}
	return out
}

func (ph *procHerd) logPath(name string) string {
	return filepath.Join(ph.dir, "logs", name+".log")
}

// start starts servers and waits until each accepts connections.
func (ph *procHerd) start(names ...string) {
	ph.tb.Helper()
	env := []string{"HERD_PEER_SECRET=" + peerSecret}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HERD_PEER_SECRET=") && !strings.HasPrefix(kv, "GOOGLE_PLACES_API_KEY=") {
			env = append(env, kv)
		}
	}
	started := map[string]*proc{}
	for _, name := range names {
		out, err := os.OpenFile(filepath.Join(ph.dir, name+".out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			ph.tb.Fatal(err)
		}
		cmd := exec.Command(ph.bin, "serve", "-config", ph.cfgPath, name)
		cmd.Env, cmd.Stdout, cmd.Stderr = env, out, out
		if err := cmd.Start(); err != nil {
			out.Close()
			ph.tb.Fatalf("start %s: %v", name, err)
		}
		p := &proc{cmd: cmd, done: make(chan struct{})}
		go func() {
			p.err = cmd.Wait()
			out.Close()
			close(p.done)
		}()
		ph.mu.Lock()
		ph.procs[name] = p
		ph.mu.Unlock()
		started[name] = p
	}
	for _, name := range names {
		p := started[name]
		herdtest.Eventually(ph.tb, 10*time.Second, func() error {
			select {
			case <-p.done:
				out, _ := os.ReadFile(filepath.Join(ph.dir, name+".out"))
				ph.tb.Fatalf("%s exited at start: %v\n%s", name, p.err, out)
			default:
			}
			c, err := net.DialTimeout("tcp", ph.addrs[name], time.Second)
			if err != nil {
				return fmt.Errorf("%s does not listen yet: %w", name, err)
			}
			return c.Close()
		})
	}
}

// signal sends sig to the named servers, all first and then waits for each
// to exit. It returns how each exited (nil for status 0).
func (ph *procHerd) signal(sig syscall.Signal, names ...string) map[string]error {
	ph.tb.Helper()
	ph.mu.Lock()
	victims := map[string]*proc{}
	for _, name := range names {
		if p, ok := ph.procs[name]; ok {
			victims[name] = p
			delete(ph.procs, name)
		}
	}
	ph.mu.Unlock()
	for _, p := range victims {
		p.cmd.Process.Signal(sig)
	}
	exits := map[string]error{}
	for name, p := range victims {
		select {
		case <-p.done:
			exits[name] = p.err
		case <-time.After(15 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
			ph.tb.Errorf("%s did not exit within 15s of %v", name, sig)
			exits[name] = p.err
		}
	}
	return exits
}

// checkRunning fails the test for every server that has exited on its own.
func (ph *procHerd) checkRunning() {
	ph.tb.Helper()
	ph.mu.Lock()
	defer ph.mu.Unlock()
	for _, name := range ph.names {
		p, ok := ph.procs[name]
		if !ok {
			ph.tb.Errorf("%s is not running", name)
			continue
		}
		select {
		case <-p.done:
			out, _ := os.ReadFile(filepath.Join(ph.dir, name+".out"))
			ph.tb.Errorf("%s exited on its own: %v; its output ends:\n%s", name, p.err, tail(string(out), 12))
		default:
		}
	}
}

// procStatus is what `herd serve` writes to run/NAME.json every second.
type procStatus struct {
	Clients int                 `json:"clients"`
	Updated time.Time           `json:"updated"`
	Links   []server.LinkStatus `json:"links"`
}

// atRest keeps what of each link stops changing once the herd is at rest:
// not the bytes, which heartbeats keep moving.
func atRest(links []server.LinkStatus) []server.LinkStatus {
	out := make([]server.LinkStatus, len(links))
	for i, l := range links {
		out[i] = server.LinkStatus{Peer: l.Peer, OutUp: l.OutUp, InUp: l.InUp, Reconnects: l.Reconnects,
			Sent: l.Sent, Acked: l.Acked, UpdatesOut: l.UpdatesOut, UpdatesIn: l.UpdatesIn}
	}
	return out
}

func (ph *procHerd) status(name string) (procStatus, error) {
	var st procStatus
	data, err := os.ReadFile(filepath.Join(ph.dir, "run", name+".json"))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("run/%s.json: %w", name, err)
	}
	return st, nil
}

// waitQuiet waits until the herd is at rest: every peer link up both ways,
// every server knowing the same number of clients, and two successive
// status snapshots of every server (written a second apart) showing the
// same link state, sequence numbers sent and acknowledged included. Floods
// that never end would keep sent_seq moving.
func (ph *procHerd) waitQuiet(timeout time.Duration) {
	ph.tb.Helper()
	last := map[string]procStatus{}
	stable := map[string]bool{}
	herdtest.Eventually(ph.tb, timeout, func() error {
		for _, name := range ph.names {
			st, err := ph.status(name)
			if err != nil {
				return err
			}
			prev, seen := last[name]
			if seen && st.Updated.Equal(prev.Updated) {
				continue
			}
			stable[name] = seen && slices.Equal(atRest(prev.Links), atRest(st.Links))
			last[name] = st
		}
		for _, name := range ph.names {
			st := last[name]
			if !stable[name] {
				return fmt.Errorf("%s's links still change between status snapshots: %+v", name, st.Links)
			}
			for _, l := range st.Links {
				if !l.OutUp || !l.InUp {
					return fmt.Errorf("%s's link to %s is not up both ways: %+v", name, l.Peer, l)
				}
			}
			if st.Clients != last[ph.names[0]].Clients {
				return fmt.Errorf("%s knows %d clients, %s %d", name, st.Clients, ph.names[0], last[ph.names[0]].Clients)
			}
		}
		return nil
	})
}

// waitLinksUp waits until every server's status file shows its links up.
func (ph *procHerd) waitLinksUp(timeout time.Duration) {
	ph.tb.Helper()
	herdtest.Eventually(ph.tb, timeout, func() error {
		for _, name := range ph.names {
			st, err := ph.status(name)
			if err != nil {
				return err
			}
			for _, l := range st.Links {
				if !l.OutUp || !l.InUp {
					return fmt.Errorf("%s's link to %s: out_up %v in_up %v", name, l.Peer, l.OutUp, l.InUp)
				}
			}
		}
		return nil
	})
}

func TestKill9_DuringBurstLosesNoAcknowledgedUpdate(t *testing.T) {
	if testing.Short() {
		t.Skip("runs five herd processes through two rounds of SIGKILL; skipped with -short")
	}
	ph := startProcHerd(t, herdtest.SeedTopology, "")
	b := startBurst(t, "k9", ph.addrList(), 6, 10)
	more := func(n int64) { t.Helper(); b.waitAcks(t, b.acks.Load()+n, 30*time.Second) }

	more(300)
	// Alford and Holiday are Hamilton's only neighbors: it is cut off until
	// they are back.
	ph.signal(syscall.SIGKILL, "Alford", "Holiday")
	more(300)
	ph.start("Alford", "Holiday")
	more(300)
	ph.signal(syscall.SIGKILL, ph.names...)
	b.stop()
	t.Logf("%d IAMATs acknowledged", b.acks.Load())

	ph.start(ph.names...)
	b.waitConverged(t, ph.addrs, 30*time.Second)
	ph.waitQuiet(15 * time.Second)
	ph.checkRunning()
}

var recovered = regexp.MustCompile(`msg="recovered client table" server=\S+ clients=(\d+)`)

func TestSIGTERM_LosesNothingAndRestartsCleanly(t *testing.T) {
	ph := startProcHerd(t, herdtest.SeedTopology, "")
	ph.waitLinksUp(10 * time.Second)
	const victim = "Ball"

	c := herdtest.DialAddr(t, ph.addrs[victim])
	want := map[string]string{}
	for i := range 20 {
		client := fmt.Sprintf("term-%d", i)
		reply := c.Ask(fmt.Sprintf("IAMAT %s +34.068930-118.445127 %s", client, nowTime()))
		if m := atLine.FindStringSubmatch(reply); m == nil || m[1] != victim || m[3] != client {
			t.Fatalf("IAMAT %s = %q; want an AT line from %s", client, reply, victim)
		}
		want[client] = reply
	}
	// Right after the last acknowledgement, with the client still connected.
	exit := ph.signal(syscall.SIGTERM, victim)[victim]
	if err := exit; err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Errorf("%s after SIGTERM exited with %v; want status 0", victim, ee.ProcessState)
		} else {
			t.Errorf("%s after SIGTERM: %v; want status 0", victim, err)
		}
	}
	logText, err := os.ReadFile(ph.logPath(victim))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(logText), "msg=stopped") {
		t.Errorf("%s's log after SIGTERM does not say it stopped; last lines:\n%s", victim, tail(string(logText), 5))
	}

	ph.start(victim)
	waitEverywhere(t, ph.addrs, want, 15*time.Second)
	ph.waitQuiet(10 * time.Second)

	logText, err = os.ReadFile(ph.logPath(victim))
	if err != nil {
		t.Fatal(err)
	}
	starts := recovered.FindAllStringSubmatch(string(logText), -1)
	if len(starts) != 2 || starts[1][1] != "20" {
		t.Errorf("%s's log has %d 'recovered client table' lines %v; want 2, the second with clients=20", victim, len(starts), starts)
	}
	for _, line := range strings.Split(string(logText), "\n") {
		if strings.Contains(line, "level=ERROR") || strings.Contains(line, "store:") && strings.Contains(line, "level=WARN") {
			t.Errorf("%s's log after a clean shutdown and restart: %s", victim, line)
		}
	}
	ph.checkRunning()
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// The longest line the configuration allows (limits.max_line_bytes at its
// upper bound) carries a client id that must be taken, journaled, flooded
// over a peer link and recovered after a crash like any other. The server
// runs as a process so that a crash cannot take the test binary with it.
func TestLongestClientID_TakenFloodedAndRecovered(t *testing.T) {
	if testing.Short() {
		t.Skip("runs herd processes and a crash; skipped with -short")
	}
	limit := config.MaxLineBytesLimit
	ph := startProcHerd(t, pair, fmt.Sprintf("limits:\n  max_line_bytes: %d\n  max_client_id_bytes: %d\n", limit, limit))
	ph.waitLinksUp(10 * time.Second)

	loc, ct := "+1+1", nowTime()
	id := strings.Repeat("k", limit-len("IAMAT   ")-len(loc)-len(ct))
	line := fmt.Sprintf("IAMAT %s %s %s", id, loc, ct)
	if len(line) != limit {
		t.Fatalf("test bug: line of %d bytes; want %d", len(line), limit)
	}
	c := herdtest.DialAddr(t, ph.addrs["Front"])
	c.Send(line + "\n")
	reply, err := c.ReadLine(10 * time.Second)
	ph.checkRunning()
	if err != nil || !strings.HasPrefix(reply, "AT Front ") {
		t.Fatalf("IAMAT of exactly max_line_bytes (%d): %d bytes %.40q, %v; want an AT line", limit, len(reply), reply, err)
	}
	waitEverywhere(t, ph.addrs, map[string]string{id: reply}, 10*time.Second)

	ph.signal(syscall.SIGKILL, "Front")
	ph.start("Front")
	waitEverywhere(t, ph.addrs, map[string]string{id: reply}, 10*time.Second)
	after := herdtest.DialAddr(t, ph.addrs["Front"]).Ask("IAMAT after-long +1+1 " + nowTime())
	waitEverywhere(t, ph.addrs, map[string]string{"after-long": after}, 10*time.Second)
	ph.checkRunning()
}
