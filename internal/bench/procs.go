package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/herd-dev/herd/internal/config"
	"github.com/herd-dev/herd/internal/server"
)

// processHerd is the seed's five-server herd run as separate processes,
// `herd serve` children of one binary, on free loopback ports with a
// configuration file, data and logs in a temporary directory. Each server
// has its own heap, collector and scheduler, as in production and as
// Redis's processes do; the bench sees them only over the network and
// their admin API.
type processHerd struct {
	cfg   *config.Config
	procs []*child // in configuration order
	http  *http.Client
}

// child is one process the bench started.
type child struct {
	name   string
	cmd    *exec.Cmd
	out    string        // where its standard output and error go
	exited chan struct{} // closed when it has exited
}

// herdFile is the configuration a processHerd writes: the keys it sets,
// every other one at its default.
type herdFile struct {
	LogDir  string          `yaml:"log_dir"`
	DataDir string          `yaml:"data_dir"`
	RunDir  string          `yaml:"run_dir"`
	Fsync   string          `yaml:"fsync"`
	Servers []config.Server `yaml:"servers"`
}

// startProcessHerd writes the seed herd's configuration under dir, on free
// ports, and starts each server as serve + ["-config", FILE, NAME]. It
// returns once every link is up. With peerAuth, the servers share a random
// HERD_PEER_SECRET.
func startProcessHerd(ctx context.Context, dir string, serve []string, peerAuth bool) (*processHerd, error) {
	if len(serve) == 0 {
		return nil, errors.New("bench: separate processes need the command line of `herd serve` (Options.Serve)")
	}
	seed := config.Default()
	ports, err := freePorts(2 * len(seed.Servers))
	if err != nil {
		return nil, err
	}
	file := herdFile{
		LogDir: filepath.Join(dir, "logs"), DataDir: filepath.Join(dir, "data"), RunDir: filepath.Join(dir, "run"),
		Fsync: config.FsyncEverySec, Servers: seed.Servers,
	}
	for i := range file.Servers {
		file.Servers[i].Addr = ports[2*i]
		file.Servers[i].Admin = ports[2*i+1]
	}
	data, err := yaml.Marshal(file)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	path := filepath.Join(dir, "herd.yaml")
	if err := os.MkdirAll(file.LogDir, 0o755); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	cfg, err := config.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bench: the herd configuration it wrote: %w", err)
	}
	env := childEnv()
	if peerAuth {
		secret := make([]byte, 16)
		rand.Read(secret)
		env = append(env, config.EnvPeerSecret+"="+hex.EncodeToString(secret))
	}
	h := &processHerd{cfg: cfg, http: &http.Client{Timeout: 5 * time.Second}}
	for _, s := range cfg.Servers {
		argv := append(append(serve[:len(serve):len(serve)], "-config", path), s.Name)
		c, err := startChild(s.Name, argv, env, filepath.Join(cfg.LogDir, s.Name+".out"))
		if err != nil {
			h.close()
			return nil, err
		}
		h.procs = append(h.procs, c)
	}
	if err := h.waitLinks(ctx); err != nil {
		h.close()
		return nil, err
	}
	return h, nil
}

// freePorts returns n loopback addresses whose ports were free a moment
// ago: each was bound, all at once so that none repeats, then released.
func freePorts(n int) ([]string, error) {
	addrs := make([]string, 0, n)
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}

// childEnv is the environment of the processes the bench starts: this
// process's, without herd's own settings and secrets, which the bench
// chooses itself.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HERD_") && !strings.HasPrefix(kv, config.EnvPlacesAPIKey+"=") {
			env = append(env, kv)
		}
	}
	return env
}

// startChild starts argv with its output going to the file out.
func startChild(name string, argv, env []string, out string) (*child, error) {
	f, err := os.Create(out)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer f.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, f, f
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, out: out, exited: make(chan struct{})}
	go func() { // ends when the process does
		cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

// alive returns an error, with the end of its output, if the process has
// exited.
func (c *child) alive() error {
	select {
	case <-c.exited:
		return fmt.Errorf("bench: %s exited (%v): %s", c.name, c.cmd.ProcessState, c.tail())
	default:
		return nil
	}
}

// tail returns the last lines the process wrote.
func (c *child) tail() string {
	data, _ := os.ReadFile(c.out)
	data = bytes.TrimSpace(data)
	if len(data) > 2000 {
		data = data[len(data)-2000:]
	}
	return string(data)
}

// stop asks the process to end with SIGTERM, and kills it if it has not
// within stopTimeout.
func (c *child) stop() error {
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		return nil
	case <-time.After(stopTimeout):
		c.cmd.Process.Kill()
		<-c.exited
		return fmt.Errorf("bench: %s did not stop within %v and was killed", c.name, stopTimeout)
	}
}

// rss returns the process's resident set size.
func (c *child) rss() (uint64, error) { return readRSS(strconv.Itoa(c.cmd.Process.Pid)) }

// pidsOf returns the process ids of children.
func pidsOf(children ...*child) []int {
	pids := make([]int, len(children))
	for i, c := range children {
		pids[i] = c.cmd.Process.Pid
	}
	return pids
}

// addrs returns the servers' addresses in configuration order.
func (h *processHerd) addrs() []string {
	out := make([]string, len(h.cfg.Servers))
	for i, s := range h.cfg.Servers {
		out[i] = s.Addr
	}
	return out
}

// states reads every server's figures from its admin API.
func (h *processHerd) states(ctx context.Context) ([]serverState, error) {
	out := make([]serverState, len(h.procs))
	for i, c := range h.procs {
		if err := c.alive(); err != nil {
			return nil, err
		}
		var st struct {
			Clients int                 `json:"clients"`
			Head    uint64              `json:"head_seq"`
			Links   []server.LinkStatus `json:"links"`
		}
		if err := h.getJSON(ctx, h.cfg.Servers[i].Admin, "/api/status?recent=0&locations=0", &st); err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
		out[i] = serverState{name: c.name, clients: st.Clients, head: st.Head, links: st.Links}
	}
	return out, nil
}

func (h *processHerd) getJSON(ctx context.Context, addr, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return err
	}
	resp, err := h.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, bytes.TrimSpace(body))
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// check polls the servers' states until ok accepts them; a server that
// exits fails it at once.
func (h *processHerd) check(ctx context.Context, timeout, interval time.Duration, ok func([]serverState) error) error {
	var exited error
	err := poll(ctx, timeout, interval, func() error {
		states, err := h.states(ctx)
		if err != nil {
			for _, c := range h.procs {
				if exited = c.alive(); exited != nil {
					return nil
				}
			}
			return err
		}
		return ok(states)
	})
	return errors.Join(exited, err)
}

// waitLinks waits until every server answers and every link is up in both
// directions.
func (h *processHerd) waitLinks(ctx context.Context) error {
	return h.check(ctx, readyTimeout, 20*time.Millisecond, linksUp)
}

// settle waits until the herd is quiet (see settled).
func (h *processHerd) settle(ctx context.Context) error {
	return h.check(ctx, settleTimeout, 20*time.Millisecond, settled)
}

// clients returns how many clients each server holds.
func (h *processHerd) clients(ctx context.Context) ([]int, error) {
	states, err := h.states(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]int, len(states))
	for i, st := range states {
		out[i] = st.clients
	}
	return out, nil
}

// close stops every server.
func (h *processHerd) close() error {
	var wg sync.WaitGroup
	errs := make([]error, len(h.procs))
	for i, c := range h.procs {
		wg.Go(func() { errs[i] = c.stop() })
	}
	wg.Wait()
	return errors.Join(errs...)
}
