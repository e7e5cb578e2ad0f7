package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herd-dev/herd/internal/config"
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

// waitExit fails the test unless the server exits soon after what.
func (s *soloServer) waitExit(t *testing.T, what string) {
	t.Helper()
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("the server still runs after %s", what)
	}
}

// TestDownStopsAServerWithoutPIDFile covers 'herd up' killed after it
// started a server but before it wrote the server's pid file: 'herd down'
// finds the server by the status file the server writes itself.
func TestDownStopsAServerWithoutPIDFile(t *testing.T) {
	solo := startSolo(t, "")
	cfgPath, run := solo.cfgPath, solo.run
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
	solo.waitExit(t, "herd down")
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

// herdCmd runs a herd command in-process and returns what it printed.
func herdCmd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
	err = Run(t.Context(), env, args)
	return out.String(), errb.String(), err
}

// freePort returns a TCP port that nothing listens on, at any address.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// testServer is one server of a herd that a test writes a configuration for.
type testServer struct{ name, addr, admin string }

// writeHerd writes a configuration of servers linked in a line (each one's
// neighbor is the one before it) to dir/file, and returns its path.
func writeHerd(t *testing.T, dir, file string, servers []testServer) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("log_dir: logs\ndata_dir: data\nservers:\n")
	for i, s := range servers {
		fmt.Fprintf(&b, "  - {name: %s, addr: %q", s.name, s.addr)
		if i > 0 {
			fmt.Fprintf(&b, ", neighbors: [%s]", servers[i-1].name)
		}
		if s.admin != "" {
			fmt.Fprintf(&b, ", admin: %q", s.admin)
		}
		b.WriteString("}\n")
	}
	path := filepath.Join(dir, file)
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// upHerd starts the herd in cfgPath with 'herd up', and stops it with
// 'herd down' when the test ends.
func upHerd(t *testing.T, cfgPath string, names ...string) {
	t.Helper()
	t.Cleanup(func() {
		if out, _, err := herdCmd(t, "down", "-config", cfgPath); err != nil {
			t.Errorf("herd down: %v\n%s", err, out)
		}
	})
	if out, _, err := herdCmd(t, append([]string{"up", "-config", cfgPath}, names...)...); err != nil {
		t.Fatalf("herd up %s: %v\n%s", strings.Join(names, " "), err, out)
	}
}

// pidOf returns the pid of the running server name of the herd in cfgPath,
// or 0 if it is not up.
func pidOf(t *testing.T, cfgPath, name string) int {
	t.Helper()
	cfg, err := config.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := cfg.Server(name)
	if probe(s.Addr) != stateUp {
		return 0
	}
	return findServer(cfg.RunDir, s)
}

// TestDayTwo_NamedServers covers 'herd up|down|restart|status [NAME...]':
// each acts on the servers named and leaves the others alone, and an
// unknown name is refused before anything is touched.
func TestDayTwo_NamedServers(t *testing.T) {
	var servers []testServer
	for _, name := range []string{"Alford", "Hamilton", "Welsh"} {
		servers = append(servers, testServer{name: name, addr: fmt.Sprintf("127.0.0.1:%d", freePort(t))})
	}
	cfgPath := writeHerd(t, t.TempDir(), "herd.yaml", servers)
	upHerd(t, cfgPath, "Hamilton")
	if pidOf(t, cfgPath, "Alford") != 0 || pidOf(t, cfgPath, "Welsh") != 0 || pidOf(t, cfgPath, "Hamilton") == 0 {
		t.Fatal("herd up Hamilton started other servers than Hamilton, or not Hamilton")
	}
	out, _, err := herdCmd(t, "up", "-config", cfgPath)
	if err != nil || !strings.Contains(out, "Hamilton   already up") {
		t.Fatalf("herd up after herd up Hamilton: %v\n%s", err, out)
	}
	pids := map[string]int{}
	for _, s := range servers {
		if pids[s.name] = pidOf(t, cfgPath, s.name); pids[s.name] == 0 {
			t.Fatalf("%s is not up after herd up", s.name)
		}
	}

	for _, command := range []string{"up", "down", "restart", "status"} {
		out, _, err := herdCmd(t, command, "-config", cfgPath, "Welsh", "Hamiltn")
		if err == nil || !strings.Contains(err.Error(), `"Hamiltn"`) || !strings.Contains(err.Error(), "Alford, Hamilton, Welsh") {
			t.Errorf("herd %s Welsh Hamiltn: err %v; want one naming Hamiltn and the servers there are", command, err)
		}
		if out != "" {
			t.Errorf("herd %s with an unknown name printed %q; want it to do nothing", command, out)
		}
	}

	out, _, err = herdCmd(t, "down", "-config", cfgPath, "Hamilton")
	if err != nil || strings.Contains(out, "Alford") || strings.Contains(out, "Welsh") {
		t.Errorf("herd down Hamilton: %v\n%s", err, out)
	}
	if pidOf(t, cfgPath, "Hamilton") != 0 {
		t.Error("Hamilton still runs after herd down Hamilton")
	}
	for _, name := range []string{"Alford", "Welsh"} {
		if got := pidOf(t, cfgPath, name); got != pids[name] {
			t.Errorf("%s: pid %d after herd down Hamilton; want it untouched (%d)", name, got, pids[name])
		}
	}

	out, _, err = herdCmd(t, "restart", "-config", cfgPath, "Welsh")
	if err != nil || !strings.Contains(out, "Welsh      stopped") || !strings.Contains(out, "Welsh      up on") {
		t.Errorf("herd restart Welsh: %v\n%s", err, out)
	}
	if got := pidOf(t, cfgPath, "Welsh"); got == 0 || got == pids["Welsh"] {
		t.Errorf("Welsh: pid %d after herd restart Welsh; want a new process (was %d)", got, pids["Welsh"])
	}
	if got := pidOf(t, cfgPath, "Alford"); got != pids["Alford"] {
		t.Errorf("Alford: pid %d after herd restart Welsh; want it untouched (%d)", got, pids["Alford"])
	}
	if pidOf(t, cfgPath, "Hamilton") != 0 {
		t.Error("herd restart Welsh started Hamilton")
	}

	out, _, err = herdCmd(t, "status", "-config", cfgPath, "Welsh", "Alford")
	if err != nil {
		t.Errorf("herd status Welsh Alford: %v\n%s", err, out)
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[1], "Alford ") || !strings.HasPrefix(lines[2], "Welsh ") {
		t.Errorf("herd status Welsh Alford printed\n%s\nwant a header, then Alford's and Welsh's rows", out)
	}
}

// TestRestart_TakesTheAddressBackEachTime covers a restart right after
// the old process is seen to end: a Go server's first thread shows as ended
// while its others still hold the listening socket, and a restart that
// started the new server then found its address held.
func TestRestart_TakesTheAddressBackEachTime(t *testing.T) {
	cfgPath := writeHerd(t, t.TempDir(), "herd.yaml", []testServer{{name: "Solo", addr: fmt.Sprintf("127.0.0.1:%d", freePort(t))}})
	upHerd(t, cfgPath)
	for i := range 10 {
		if out, _, err := herdCmd(t, "restart", "-config", cfgPath); err != nil {
			t.Fatalf("restart %d: %v\n%s", i+1, err, out)
		}
	}
}

// TestStatus_ReadsEachServersOwnAdmin covers servers that share an admin
// address with an unspecified host, as every deploy file's 0.0.0.0:12550:
// each is reached at its own addr's host, and an admin listener that
// answers for another server is not taken for this one's.
func TestStatus_ReadsEachServersOwnAdmin(t *testing.T) {
	adminPort := freePort(t)
	alford := testServer{"Alford", fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", adminPort)}
	ball := testServer{"Ball", fmt.Sprintf("127.0.0.2:%d", freePort(t)), fmt.Sprintf("127.0.0.2:%d", adminPort)}
	upHerd(t, writeHerd(t, t.TempDir(), "herd.yaml", []testServer{alford, ball}))

	// The same herd as seen from elsewhere: no status files in its
	// run_dir, so only the admin listeners can tell the links.
	elsewhere := t.TempDir()
	shared := []testServer{alford, ball}
	shared[0].admin = fmt.Sprintf("0.0.0.0:%d", adminPort)
	shared[1].admin = fmt.Sprintf(":%d", adminPort)
	crossed := []testServer{alford, ball}
	crossed[1].admin = alford.admin
	for _, tc := range []struct {
		name      string
		cfgPath   string
		wantBall  string // Ball's row ends with this
		wantNotes string
	}{
		{"unspecified hosts", writeHerd(t, elsewhere, "shared.yaml", shared), "Alford up/up", ""},
		{"Ball's admin is Alford's", writeHerd(t, elsewhere, "crossed.yaml", crossed), "-",
			fmt.Sprintf("Ball: admin %s is Alford's, not Ball's", alford.admin)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantNotes := ""
			if tc.wantNotes != "" {
				wantNotes = "herd status: " + tc.wantNotes + "\n"
			}
			deadline := time.Now().Add(20 * time.Second)
			for {
				out, notes, err := herdCmd(t, "status", "-config", tc.cfgPath)
				rows := strings.Split(strings.TrimSpace(out), "\n")
				if err == nil && len(rows) == 3 && strings.HasSuffix(rows[1], " Ball up/up") &&
					strings.HasSuffix(rows[2], " "+tc.wantBall) && notes == wantNotes {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("herd status: %v\n%s%s\nwant Alford's row to end with Ball up/up, Ball's with %q, and the notes %q", err, out, notes, tc.wantBall, wantNotes)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}

// TestUp_PrintsTheServersOwnError covers a server that cannot start
// because its admin address is taken: 'herd up' says so, rather than
// naming the client address and pointing at NAME.out.
func TestUp_PrintsTheServersOwnError(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	solo := testServer{"Solo", fmt.Sprintf("127.0.0.1:%d", freePort(t)), taken.Addr().String()}
	cfgPath := writeHerd(t, t.TempDir(), "herd.yaml", []testServer{solo})
	t.Cleanup(func() { herdCmd(t, "down", "-config", cfgPath) })

	out, _, err := herdCmd(t, "up", "-config", cfgPath)
	want := fmt.Sprintf("Solo       FAILED: member: admin: listen tcp %s: bind: address already in use; see ", solo.admin)
	if err == nil || !strings.Contains(out, want) {
		t.Errorf("herd up with the admin address taken: err %v, printed\n%s\nwant %q", err, out, want)
	}
}

// TestDayTwo_AgreeAboutAServerFromAnotherRunDir covers a server started
// with one run_dir and looked at with another (the built-in herd's
// relative run_dir, from another folder): up and status find it up, so
// down must find it too and stop it.
func TestDayTwo_AgreeAboutAServerFromAnotherRunDir(t *testing.T) {
	solo := startSolo(t, "")
	other := writeHerd(t, t.TempDir(), "herd.yaml", []testServer{{name: "Solo", addr: solo.addr}})
	pidNote := fmt.Sprintf("(pid %d)", solo.cmd.Process.Pid)
	for _, tc := range []struct{ command, want string }{
		{"status", "up"},
		{"up", "Solo       already up on " + solo.addr + " " + pidNote},
		{"down", "Solo       stopped " + pidNote},
	} {
		out, _, err := herdCmd(t, tc.command, "-config", other)
		if err != nil || !strings.Contains(out, tc.want) {
			t.Errorf("herd %s from another run_dir: err %v, printed\n%s\nwant %q", tc.command, err, out, tc.want)
		}
	}
	solo.waitExit(t, "herd down from another run_dir")
}

func TestListenerPID(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	for _, tc := range []struct {
		addr string
		want int
	}{
		{ln.Addr().String(), os.Getpid()},
		{fmt.Sprintf("localhost:%d", port), os.Getpid()},
		{fmt.Sprintf("127.0.0.2:%d", port), 0},
		{fmt.Sprintf("127.0.0.1:%d", freePort(t)), 0},
	} {
		if got := listenerPID(tc.addr); got != tc.want {
			t.Errorf("listenerPID(%q) = %d; want %d", tc.addr, got, tc.want)
		}
	}
}

// herd status sends the admin token, so it still reads a server whose
// admin listener requires one.
func TestLiveStatus_SendsTheAdminToken(t *testing.T) {
	const token = "0123456789abcdef-token"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, `{"name": "Alford", "clients": 3}`)
	}))
	defer srv.Close()
	s := config.Server{Name: "Alford", Addr: "127.0.0.1:1", Admin: strings.TrimPrefix(srv.URL, "http://")}
	if _, err := liveStatus(s, ""); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("without the token: %v; want the admin's 401", err)
	}
	if st, err := liveStatus(s, token); err != nil || st.Clients != 3 {
		t.Errorf("with the token: %+v, %v; want Alford's status", st, err)
	}
}
