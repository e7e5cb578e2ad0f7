package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herd-dev/herd/internal/config"
	"github.com/herd-dev/herd/internal/herdtest"
)

// fakeServer is a tiny herd-like line server on 127.0.0.1 for the client's
// tests. answer gives each command's reply, "" for none. With batch set it
// reads every command up to the client's half-close before answering any,
// so a client that waited for a reply before sending the next command would
// hang.
type fakeServer struct {
	addr   string
	answer func(line string) string
	batch  bool

	mu  sync.Mutex
	got []string
}

func startFakeServer(t *testing.T, batch bool, answer func(string) string) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{addr: ln.Addr().String(), answer: answer, batch: batch}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { f.serve(conn) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return f
}

func (f *fakeServer) serve(conn net.Conn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	var held strings.Builder
	sc := bufio.NewScanner(conn)
	for sc.Scan() {
		f.mu.Lock()
		f.got = append(f.got, sc.Text())
		f.mu.Unlock()
		reply := f.answer(sc.Text())
		if f.batch {
			held.WriteString(reply)
		} else {
			io.WriteString(conn, reply)
		}
	}
	io.WriteString(conn, held.String())
}

func (f *fakeServer) received() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got...)
}

const (
	kiwiAT     = "AT Fake +0.000000001 kiwi +34.068930-118.445127 1479413884.392014450"
	placesJSON = `{"html_attributions":[],"results":[{"name":"Beverly Hills","types":["locality"]}],"status":"OK"}`
	prettyJSON = `{
  "html_attributions": [],
  "results": [
    {
      "name": "Beverly Hills",
      "types": [
        "locality"
      ]
    }
  ],
  "status": "OK"
}`
)

// herdLike answers as a herd server without a peer secret: IAMAT gets its AT
// line, WHATSAT kiwi the stored AT line and places, a bare AT line nothing,
// and anything else "? ".
func herdLike(line string) string {
	f := strings.Fields(line)
	switch {
	case len(f) == 4 && f[0] == "IAMAT":
		return fmt.Sprintf("AT Fake +0.000000001 %s %s %s\n", f[1], f[2], f[3])
	case len(f) == 4 && f[0] == "WHATSAT" && f[1] == "kiwi":
		return kiwiAT + "\n" + placesJSON + "\n\n"
	case len(f) > 0 && f[0] == "AT":
		return ""
	}
	return "? " + line + "\n"
}

// withPeerSecret answers as a server with a peer secret, which refuses
// bare AT lines from clients.
func withPeerSecret(line string) string {
	if strings.HasPrefix(line, "AT ") {
		return "? " + line + "\n"
	}
	return herdLike(line)
}

func runScriptString(t *testing.T, addr, script string, raw bool) string {
	t.Helper()
	var out strings.Builder
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := runScript(ctx, addr, strings.NewReader(script), &out, raw); err != nil {
		t.Fatalf("runScript: %v\noutput so far:\n%s", err, out.String())
	}
	return out.String()
}

func TestClientFillsInIAMATTime(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		want       string // what the server gets, before the time if one is added
		addsTime   bool
	}{
		{"no time", "IAMAT kiwi +34.06-118.44", "IAMAT kiwi +34.06-118.44", true},
		{"white space kept inside", "  IAMAT\tkiwi +34.06-118.44 \r", "  IAMAT\tkiwi +34.06-118.44", true},
		{"no-break space in the id", "IAMAT kiwi\u00a0x +34.06-118.44", "IAMAT kiwi\u00a0x +34.06-118.44", true},
		{"has a time", "IAMAT kiwi +34.06-118.44 1479413884.5", "IAMAT kiwi +34.06-118.44 1479413884.5", false},
		{"too short", "IAMAT kiwi", "IAMAT kiwi", false},
		{"not the command", "iamat kiwi +34.06-118.44", "iamat kiwi +34.06-118.44", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startFakeServer(t, false, herdLike)
			before := time.Now()
			out := runScriptString(t, srv.addr, tc.line+"\n", false)
			after := time.Now()

			got := srv.received()
			if len(got) != 1 {
				t.Fatalf("server got %q, want one line", got)
			}
			if !tc.addsTime {
				if got[0] != tc.want {
					t.Errorf("server got %q, want %q unchanged", got[0], tc.want)
				}
				return
			}
			prefix, stamp, ok := strings.Cut(got[0], tc.want+" ")
			if !ok || prefix != "" {
				t.Fatalf("server got %q, want %q and a time", got[0], tc.want)
			}
			m := regexp.MustCompile(`^(\d+)\.(\d{9})$`).FindStringSubmatch(stamp)
			if m == nil {
				t.Fatalf("time %q is not seconds and nine fractional digits", stamp)
			}
			sec, _ := strconv.ParseInt(m[1], 10, 64)
			nsec, _ := strconv.ParseInt(m[2], 10, 64)
			if sent := time.Unix(sec, nsec); sent.Before(before) || sent.After(after) {
				t.Errorf("time %s is not between %s and %s", sent, before, after)
			}
			if !strings.HasSuffix(out, " "+stamp+"\n") {
				t.Errorf("output %q does not end with the AT line for time %s", out, stamp)
			}
		})
	}
}

func TestClientSkipsBlankLines(t *testing.T) {
	srv := startFakeServer(t, false, herdLike)
	out := runScriptString(t, srv.addr, "\n \t\nFOO\n\n", false)
	if got := srv.received(); len(got) != 1 || got[0] != "FOO" {
		t.Errorf("server got %q, want only FOO", got)
	}
	if out != "? FOO\n" {
		t.Errorf("output %q, want %q", out, "? FOO\n")
	}
}

func TestClientPrintsReplies(t *testing.T) {
	script := "WHATSAT kiwi 10 5\nIAMAT kiwi +34.068930-118.445127 1479413884.5\nWHATSAT nobody 10 5\n"
	iamat := "AT Fake +0.000000001 kiwi +34.068930-118.445127 1479413884.5\n"
	invalid := "? WHATSAT nobody 10 5\n"
	for _, tc := range []struct {
		name string
		raw  bool
		want string
	}{
		{"pretty", false, kiwiAT + "\n" + prettyJSON + "\n\n" + iamat + invalid},
		{"raw", true, kiwiAT + "\n" + placesJSON + "\n\n" + iamat + invalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startFakeServer(t, false, herdLike)
			if got := runScriptString(t, srv.addr, script, tc.raw); got != tc.want {
				t.Errorf("output:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestClientPipelinesScripts(t *testing.T) {
	// The batch server answers nothing until the client half-closes: a
	// client that waited for each reply would time out.
	srv := startFakeServer(t, true, herdLike)
	var script, want strings.Builder
	for i := range 50 {
		fmt.Fprintf(&script, "IAMAT c%d +1+1 %d.5\nWHATSAT kiwi 10 5\n", i, i)
		fmt.Fprintf(&want, "AT Fake +0.000000001 c%d +1+1 %d.5\n%s\n%s\n\n", i, i, kiwiAT, placesJSON)
	}
	script.WriteString("WHATSAT kiwi 10 5") // a last line without a newline
	want.WriteString(kiwiAT + "\n" + placesJSON + "\n\n")
	if got := runScriptString(t, srv.addr, script.String(), true); got != want.String() {
		t.Errorf("output:\n%s\nwant:\n%s", got, want.String())
	}
}

func TestClientPairsBareATLines(t *testing.T) {
	// A bare AT line gets no reply from a server without a peer secret and
	// "? " from one with: either way the WHATSAT after it keeps its body.
	const script = "AT Other +0.1 kiwi +34.068930-118.445127 1479413884.5\nWHATSAT kiwi 10 5\nFOO bar\n"
	for _, tc := range []struct {
		name   string
		answer func(string) string
		want   string
	}{
		{"taken silently", herdLike, kiwiAT + "\n" + placesJSON + "\n\n? FOO bar\n"},
		{"refused", withPeerSecret, "? AT Other +0.1 kiwi +34.068930-118.445127 1479413884.5\n" + kiwiAT + "\n" + placesJSON + "\n\n? FOO bar\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startFakeServer(t, false, tc.answer)
			if got := runScriptString(t, srv.addr, script, true); got != tc.want {
				t.Errorf("output:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestClientReportsUnansweredCommands(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // answers one command, then hangs up
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		br := bufio.NewReader(conn)
		line, _ := br.ReadString('\n')
		io.WriteString(conn, "? "+line)
		io.Copy(io.Discard, br) // until the client half-closes
	}()
	var out strings.Builder
	err = runScript(t.Context(), ln.Addr().String(), strings.NewReader("A\nB\nC\n"), &out, false)
	if err == nil || !strings.Contains(err.Error(), "commands unanswered: 2") {
		t.Errorf("runScript error %v, want 2 commands unanswered", err)
	}
	if out.String() != "? A\n" {
		t.Errorf("output %q, want the one reply", out.String())
	}
}

func TestClientStopsWhenTheServerHangsUp(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // answers one command, then closes while the client has more to send
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		line, _ := bufio.NewReader(conn).ReadString('\n')
		io.WriteString(conn, "? "+line)
		conn.Close()
	}()
	in, more := io.Pipe() // input that never ends
	defer more.Close()
	go io.WriteString(more, "A\n")
	var out strings.Builder
	err = runScript(t.Context(), ln.Addr().String(), in, &out, false)
	if err == nil || !strings.Contains(err.Error(), "before the input ended") {
		t.Errorf("runScript error %v, want the server closed before the input ended", err)
	}
	if out.String() != "? A\n" {
		t.Errorf("output %q, want the one reply", out.String())
	}
}

func TestClientAddr(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "herd.yaml")
	cfg := `servers:
  - {name: North, addr: "north.example:11550", neighbors: [South, East], admin: "0.0.0.0:12550"}
  - {name: South, addr: "south.example:11551", admin: "10.0.0.9:12551"}
  - {name: East, addr: "east.example:11552"}
`
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		arg           string
		monitor       bool
		want, wantErr string
	}{
		{arg: "", want: "north.example:11550"},
		{arg: "South", want: "south.example:11551"},
		{arg: "127.0.0.1:9", want: "127.0.0.1:9"},
		{arg: "[::1]:9", want: "[::1]:9"},
		{arg: "West", wantErr: `"West" is neither host:port nor a server`},
		{arg: "", monitor: true, want: "north.example:12550"},
		{arg: "South", monitor: true, want: "10.0.0.9:12551"},
		{arg: "127.0.0.1:9", monitor: true, want: "127.0.0.1:9"},
		{arg: "East", monitor: true, wantErr: "East has no admin address in the configuration"},
	} {
		fs, path := newFlagSet(&Env{Stderr: io.Discard}, "client", "", "")
		if err := fs.Parse([]string{"-config", cfgPath}); err != nil {
			t.Fatal(err)
		}
		pick := func(s config.Server) (string, error) { return s.Addr, nil }
		if tc.monitor {
			pick = adminReach
		}
		got, err := clientAddr(fs, *path, tc.arg, pick)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("clientAddr(%q, monitor %v) error %v, want %q", tc.arg, tc.monitor, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("clientAddr(%q, monitor %v) = %q, %v; want %q", tc.arg, tc.monitor, got, err, tc.want)
		}
	}
}

func TestClientHelp(t *testing.T) {
	for line, want := range map[string]bool{"help": true, " HELP ": true, "?": true, "help me": false, "IAMAT kiwi +1+1": false} {
		if got := isHelp(line); got != want {
			t.Errorf("isHelp(%q) = %v, want %v", line, got, want)
		}
	}
	for _, cmd := range []string{"IAMAT", "WHATSAT", "help", "Ctrl-D", "herd client -monitor"} {
		if !strings.Contains(clientHelp, cmd) {
			t.Errorf("help does not mention %s", cmd)
		}
	}
}

func TestClientMonitorsAHerd(t *testing.T) {
	h := herdtest.Start(t, herdtest.Options{
		Topology: map[string][]string{"A": {"B"}, "B": nil},
		Configure: func(c *config.Config) {
			for i := range c.Servers {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				c.Servers[i].Admin = ln.Addr().String()
				ln.Close()
			}
		},
	})
	sc, _ := h.Cfg.Server("A")
	herdtest.Eventually(t, 10*time.Second, func() error { // the admin listener starts with the server
		resp, err := http.Get("http://" + sc.Admin + "/readyz")
		if err != nil {
			return err
		}
		return resp.Body.Close()
	})

	var out, info herdtest.SyncBuffer
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- runMonitor(ctx, sc.Admin, "", &out, &info, false) }()
	herdtest.Eventually(t, 10*time.Second, func() error {
		if !strings.Contains(info.String(), "monitoring A at "+sc.Admin) {
			return fmt.Errorf("info so far: %q", info.String())
		}
		return nil
	})

	fromB := h.Dial("B").Ask("IAMAT kiwi +34.068930-118.445127 1479413884.5")
	here := h.Dial("A").Ask("IAMAT apple +1+1 1479413884.5")
	herdtest.Eventually(t, 5*time.Second, func() error {
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		want := []*regexp.Regexp{
			regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{3} \[via B\] +` + regexp.QuoteMeta(fromB) + `$`),
			regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{3} \[here\] +` + regexp.QuoteMeta(here) + `$`),
		}
		if len(lines) != len(want) {
			return fmt.Errorf("monitor printed %q, want the two updates", lines)
		}
		for _, re := range want { // in either order: B's update crosses a link first
			if !slices.ContainsFunc(lines, re.MatchString) {
				return fmt.Errorf("monitor printed %q, want a line matching %s", lines, re)
			}
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("runMonitor after Ctrl-C: %v, want nil", err)
	}

}

func TestClientMonitorToken(t *testing.T) {
	const token = "monitor-token-0123456789"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "no", http.StatusUnauthorized)
		}
	}))
	defer srv.Close()
	for _, tc := range []struct{ token, want string }{
		{"", "needs the admin token: set " + config.EnvAdminToken},
		{"wrong-token-0123456789", "refused the token in " + config.EnvAdminToken},
		{token, "the server ended the stream"},
	} {
		err := runMonitor(t.Context(), srv.Listener.Addr().String(), tc.token, io.Discard, io.Discard, false)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("runMonitor with token %q: %v, want %q", tc.token, err, tc.want)
		}
	}
}

func TestClientMonitorRaw(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "event: start\ndata: {\"server\":\"A\",\"head\":7}\n\n"+
			": keep-alive\n\n"+
			"event: update\nid: 8\ndata: {\"seq\":8,\"client\":\"kiwi\",\"line\":\"AT A +0.1 kiwi +1+1 1.5\",\"from\":\"\"}\n\n"+
			"event: skipped\ndata: {\"from\":8,\"to\":20000}\n\n")
	}))
	defer srv.Close()
	for _, tc := range []struct {
		raw               bool
		wantOut, wantInfo string
	}{
		{true, `{"seq":8,"client":"kiwi","line":"AT A +0.1 kiwi +1+1 1.5","from":""}` + "\n" + `{"from":8,"to":20000}` + "\n", "monitoring A"},
		{false, "[here]         AT A +0.1 kiwi +1+1 1.5\n", "monitoring A at " + srv.Listener.Addr().String() + "; Ctrl-C stops\nthe monitor fell behind: updates 9 to 20000 left out\n"},
	} {
		var out, info strings.Builder
		err := runMonitor(t.Context(), srv.Listener.Addr().String(), "", &out, &info, tc.raw)
		if err == nil || !strings.Contains(err.Error(), "the server ended the stream") {
			t.Errorf("raw %v: runMonitor = %v, want the end of the stream reported", tc.raw, err)
		}
		got := out.String()
		if !tc.raw && len(got) > 13 {
			got = got[13:] // the time
		}
		if got != tc.wantOut || !strings.HasPrefix(info.String(), tc.wantInfo) {
			t.Errorf("raw %v: printed %q and told %q; want %q and %q", tc.raw, out.String(), info.String(), tc.wantOut, tc.wantInfo)
		}
	}
}

func TestHistoryPath(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"XDG_STATE_HOME": "/state", "HOME": "/home/a"}, "/state/herd/history"},
		{map[string]string{"HOME": "/home/a"}, "/home/a/.herd_history"},
		{map[string]string{}, ""},
	} {
		if got := historyPath(func(k string) string { return tc.env[k] }); got != tc.want {
			t.Errorf("historyPath(%v) = %q, want %q", tc.env, got, tc.want)
		}
	}
}
