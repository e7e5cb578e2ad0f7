package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/peterh/liner"

	"github.com/herd-dev/herd/internal/admin"
	"github.com/herd-dev/herd/internal/config"
)

const (
	clientPrompt      = "herd> "
	clientDialTimeout = 5 * time.Second
)

// errInterrupted is returned when a signal stops the client before it is done.
var errInterrupted = errors.New("client: interrupted")

// runClient is 'herd client [-raw] [-monitor] [ADDR | NAME]'.
func runClient(ctx context.Context, env *Env, args []string) error {
	fs, cfgPath := newFlagSet(env, "client", "[ADDR | NAME]",
		"Talk to one herd server: ADDR (host:port), the server NAME in the configuration,\n"+
			"or by default the configuration's first server.\n"+
			"On a terminal it prompts, with line editing and history ('help' lists the\n"+
			"commands); otherwise it sends the lines of standard input, prints every reply\n"+
			"and exits. An IAMAT without a time gets the current time.\n"+
			"With -monitor it prints every update the server stores, as it stores it, read\n"+
			"from the server's admin listener (ADDR is then the admin address), until Ctrl-C;\n"+
			"it sends $"+config.EnvAdminToken+" when that is set.")
	raw := fs.Bool("raw", false, "print WHATSAT JSON as the server sent it instead of indenting it; with -monitor, print each update as JSON")
	monitor := fs.Bool("monitor", false, "stream the updates the server stores, like redis-cli MONITOR")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		fs.Usage()
		return errors.New("client: give at most one address or server name")
	}
	if *monitor {
		addr, err := clientAddr(fs, *cfgPath, fs.Arg(0), adminReach)
		if err != nil {
			return err
		}
		return runMonitor(ctx, addr, env.Getenv(config.EnvAdminToken), env.Stdout, env.Stderr, *raw)
	}
	addr, err := clientAddr(fs, *cfgPath, fs.Arg(0), func(s config.Server) (string, error) { return s.Addr, nil })
	if err != nil {
		return err
	}
	if onTerminal() {
		return runInteractive(ctx, addr, env.Stdout, *raw, historyPath(env.Getenv))
	}
	return runScript(ctx, addr, os.Stdin, env.Stdout, *raw)
}

// clientAddr resolves the client's argument: a host:port is used as is; a
// server name, or no argument for the first server, is looked up in the
// configuration, and pick takes the address wanted from its entry.
func clientAddr(fs *flag.FlagSet, cfgPath, arg string, pick func(config.Server) (string, error)) (string, error) {
	if _, _, err := net.SplitHostPort(arg); err == nil {
		return arg, nil
	}
	cfg, err := loadConfig(fs, cfgPath)
	if err != nil {
		return "", err
	}
	if arg == "" {
		return pick(cfg.Servers[0])
	}
	s, ok := cfg.Server(arg)
	if !ok {
		return "", fmt.Errorf("client: %q is neither host:port nor a server in the configuration (have %v)", arg, cfg.Names())
	}
	return pick(s)
}

// adminReach picks where a server's admin listener is reached.
func adminReach(s config.Server) (string, error) {
	if addr := s.AdminReach(); addr != "" {
		return addr, nil
	}
	return "", fmt.Errorf("client: %s has no admin address in the configuration, and -monitor reads the admin listener", s.Name)
}

// onTerminal reports whether standard input and output are both a terminal,
// so that the client can prompt.
func onTerminal() bool {
	if _, err := liner.TerminalMode(); err != nil {
		return false
	}
	fi, err := os.Stdout.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// runScript sends every line of in to the server at addr without waiting for
// replies, half-closes the connection at the end of in, and prints the
// replies to out as they arrive until the server closes the connection.
func runScript(ctx context.Context, addr string, in io.Reader, out io.Writer, raw bool) error {
	s, err := dialClient(ctx, addr, out, raw)
	if err != nil {
		return err
	}
	defer s.conn.Close()
	stop := context.AfterFunc(ctx, func() { s.conn.Close() })
	defer stop()

	sent := make(chan error, 1)
	go func() {
		err := s.sendAll(in)
		// Report before closing, so that whoever sees the replies end sees this too.
		sent <- err
		if err != nil {
			s.conn.Close()
			return
		}
		s.closeWrite()
	}()

	<-s.done
	if ctx.Err() != nil {
		return errInterrupted
	}
	var sendErr error
	inputSent := false
	select {
	case sendErr = <-sent:
		inputSent = true
	default: // the sender still waits for input, which no one would answer
	}
	switch {
	case sendErr != nil:
		return sendErr
	case s.err != nil:
		return fmt.Errorf("client: %w", s.err)
	case !inputSent:
		return errors.New("client: the server closed the connection before the input ended")
	}
	if n := s.unanswered(); n > 0 {
		return fmt.Errorf("client: the server closed the connection; commands unanswered: %d", n)
	}
	return nil
}

// runInteractive prompts for commands with line editing and history, and
// prints each reply before prompting again. Ctrl-D ends it; Ctrl-C clears
// the line at the prompt and interrupts a wait for a reply.
func runInteractive(ctx context.Context, addr string, out io.Writer, raw bool, history string) error {
	s, err := dialClient(ctx, addr, out, raw)
	if err != nil {
		return err
	}
	defer s.conn.Close()

	ln := liner.NewLiner()
	defer ln.Close()
	ln.SetCtrlCAborts(true)
	loadHistory(ln, history)
	defer saveHistory(ln, history)

	fmt.Fprintf(out, "connected to %s; 'help' lists the commands, Ctrl-D exits\n", addr)
	for {
		line, err := ln.Prompt(clientPrompt)
		switch {
		case errors.Is(err, liner.ErrPromptAborted):
			continue
		case errors.Is(err, io.EOF):
			fmt.Fprintln(out)
			return nil
		case err != nil:
			return fmt.Errorf("client: %w", err)
		}
		if isHelp(line) {
			ln.AppendHistory(line)
			fmt.Fprint(out, clientHelp)
			continue
		}
		cmd, ok := newSentCommand(line, time.Now())
		if !ok {
			continue
		}
		ln.AppendHistory(line)
		if err := s.send(cmd); err != nil {
			return err
		}
		if err := s.flush(); err != nil {
			return err
		}
		if err := s.await(ctx, cmd); err != nil {
			return err
		}
	}
}

// clientHelp is what 'help' prints at the prompt.
const clientHelp = `Commands, sent to the server:
  IAMAT CLIENT ±LAT±LNG [TIME]      tell the herd where CLIENT is (TIME: POSIX seconds, now if left out)
                                    e.g. IAMAT kiwi.cs.ucla.edu +34.068930-118.445127
  WHATSAT CLIENT RADIUS-KM BOUND    the places within RADIUS-KM (at most 50) of CLIENT, at most BOUND (1-20)
                                    e.g. WHATSAT kiwi.cs.ucla.edu 10 5
Here:
  help                              this text
  Ctrl-D                            exit
To watch every update a server stores: herd client -monitor [NAME]
`

// isHelp reports whether an interactive line asks for help instead of
// being a command for the server.
func isHelp(line string) bool {
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "help", "?":
		return true
	}
	return false
}

// historyPath is where the interactive client keeps its history:
// $XDG_STATE_HOME/herd/history, else ~/.herd_history; "" if neither is known.
func historyPath(getenv func(string) string) string {
	if dir := getenv("XDG_STATE_HOME"); dir != "" {
		return filepath.Join(dir, "herd", "history")
	}
	if home := getenv("HOME"); home != "" {
		return filepath.Join(home, ".herd_history")
	}
	return ""
}

// loadHistory reads the history file, if there is one. History is a
// convenience: failing to read it is not worth stopping for.
func loadHistory(ln *liner.State, path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	ln.ReadHistory(f)
}

// saveHistory writes the history file, best effort like loadHistory.
func saveHistory(ln *liner.State, path string) {
	if path == "" {
		return
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	ln.WriteHistory(f)
}

// A sentCommand is one command line on its way to the server, waiting for
// its reply.
type sentCommand struct {
	line string
	// places is set for a WHATSAT, whose reply may be an AT line followed by
	// a JSON body up to a blank line.
	places bool
	// optional is set for a bare AT line: a server without a peer secret
	// takes it as a flooded update and says nothing.
	optional bool
	answered chan struct{} // closed once the reply has been printed
}

// newSentCommand makes the command for one line of input, with the current
// time added to an IAMAT that has none. It reports false for a blank line,
// which is not sent.
func newSentCommand(line string, now time.Time) (*sentCommand, bool) {
	fields := strings.FieldsFunc(line, isProtocolSpace)
	if len(fields) == 0 {
		return nil, false
	}
	if fields[0] == "IAMAT" && len(fields) == 3 {
		line = fmt.Sprintf("%s %d.%09d", strings.TrimRightFunc(line, isProtocolSpace), now.Unix(), now.Nanosecond())
	}
	return &sentCommand{
		line:     line,
		places:   fields[0] == "WHATSAT",
		optional: fields[0] == "AT",
		answered: make(chan struct{}),
	}, true
}

// isProtocolSpace reports whether r separates fields on the wire: only
// ASCII white space does, as client ids may hold any other byte.
func isProtocolSpace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\v', '\f', '\r':
		return true
	}
	return false
}

// A clientSession is one connection to a herd server. Commands go out
// through send and flush; one goroutine reads the replies, pairs them with
// the commands in order and prints each as it arrives.
type clientSession struct {
	conn net.Conn
	w    *bufio.Writer
	out  io.Writer
	raw  bool

	mu      sync.Mutex
	pending []*sentCommand // sent and not answered yet, oldest first

	done chan struct{} // closed when the server closed the connection or reading failed
	err  error         // why reading failed, nil at end of stream; set before done is closed
}

func dialClient(ctx context.Context, addr string, out io.Writer, raw bool) (*clientSession, error) {
	d := net.Dialer{Timeout: clientDialTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	s := &clientSession{conn: conn, w: bufio.NewWriter(conn), out: out, raw: raw, done: make(chan struct{})}
	go s.readReplies()
	return s, nil
}

// send buffers cmd for the server; flush sends what is buffered.
func (s *clientSession) send(cmd *sentCommand) error {
	s.mu.Lock()
	s.pending = append(s.pending, cmd)
	s.mu.Unlock()
	s.w.WriteString(cmd.line)
	if err := s.w.WriteByte('\n'); err != nil {
		return fmt.Errorf("client: send: %w", err)
	}
	return nil
}

func (s *clientSession) flush() error {
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("client: send: %w", err)
	}
	return nil
}

// sendAll sends every line of in, flushing whenever it has sent all the
// input read so far, so that commands are pipelined but never held back.
func (s *clientSession) sendAll(in io.Reader) error {
	br := bufio.NewReader(in)
	for {
		line, err := readLine(br)
		if errors.Is(err, io.EOF) {
			return s.flush()
		}
		if err != nil {
			return fmt.Errorf("client: read input: %w", err)
		}
		if cmd, ok := newSentCommand(line, time.Now()); ok {
			if err := s.send(cmd); err != nil {
				return err
			}
		}
		if br.Buffered() == 0 {
			if err := s.flush(); err != nil {
				return err
			}
		}
	}
}

// closeWrite tells the server that no more commands are coming; it still
// answers those it has, then closes.
func (s *clientSession) closeWrite() {
	if c, ok := s.conn.(interface{ CloseWrite() error }); ok {
		c.CloseWrite()
	}
}

// await waits until cmd's reply has been printed. A bare AT line may get no
// reply, so await does not wait for one.
func (s *clientSession) await(ctx context.Context, cmd *sentCommand) error {
	if cmd.optional {
		return nil
	}
	select {
	case <-cmd.answered:
		return nil
	case <-s.done:
		if s.err != nil {
			return fmt.Errorf("client: %w", s.err)
		}
		return errors.New("client: the server closed the connection")
	case <-ctx.Done():
		return errInterrupted
	}
}

// unanswered counts the commands still waiting for a reply that the server
// owes.
func (s *clientSession) unanswered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, cmd := range s.pending {
		if !cmd.optional {
			n++
		}
	}
	return n
}

// readReplies prints every reply until the connection ends.
func (s *clientSession) readReplies() {
	defer close(s.done)
	br := bufio.NewReader(s.conn)
	for {
		line, err := readLine(br)
		if err != nil {
			s.setErr(err)
			return
		}
		cmd := s.match(line)
		var body []byte
		hasBody := cmd != nil && cmd.places && strings.HasPrefix(line, "AT ")
		if hasBody {
			body, err = readBody(br)
		}
		if perr := s.print(line, body, hasBody); perr != nil {
			s.setErr(perr)
			return
		}
		if cmd != nil {
			close(cmd.answered)
		}
		if err != nil {
			s.setErr(err)
			return
		}
	}
}

func (s *clientSession) setErr(err error) {
	if !errors.Is(err, io.EOF) {
		s.err = err
	}
}

// match takes the command that reply answers off the queue: the oldest one,
// passing over bare AT lines that the server took without a word (had it
// refused one, its reply would be "? " and the line). It returns nil for a
// reply that no command asked for.
func (s *clientSession) match(reply string) *sentCommand {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.pending) > 0 {
		cmd := s.pending[0]
		s.pending = s.pending[1:]
		if !cmd.optional || reply == "? "+cmd.line {
			return cmd
		}
		close(cmd.answered)
	}
	return nil
}

// print writes one reply: its first line and, for a WHATSAT answer, the
// JSON body, indented unless the session is raw, and the blank line that
// ends it.
func (s *clientSession) print(line string, body []byte, hasBody bool) error {
	var b bytes.Buffer
	b.WriteString(line)
	b.WriteByte('\n')
	if hasBody {
		if s.raw || json.Indent(&b, body, "", "  ") != nil {
			b.Write(body)
		}
		b.WriteString("\n\n")
	}
	_, err := s.out.Write(b.Bytes())
	return err
}

// readLine returns the next line without its newline. A last line without
// one comes back with a nil error; after it, io.EOF.
func readLine(br *bufio.Reader) (string, error) {
	line, err := br.ReadString('\n')
	if errors.Is(err, io.EOF) && line != "" {
		err = nil
	}
	return strings.TrimSuffix(line, "\n"), err
}

// readBody reads a WHATSAT reply's JSON up to the blank line that ends it,
// without that line. At the end of the stream it returns what it has and
// io.EOF.
func readBody(br *bufio.Reader) ([]byte, error) {
	var body []byte
	for {
		line, err := readLine(br)
		if err != nil || line == "" {
			return body, err
		}
		if body != nil {
			body = append(body, '\n')
		}
		body = append(body, line...)
	}
}

// runMonitor prints the updates the server whose admin listener is at addr
// stores, as it stores them (GET /api/monitor), until ctx ends or the
// stream does. Each update is one line: the time it arrived, where it came
// from and its AT line; with raw, the event's JSON instead. What the
// monitor says about itself goes to info.
func runMonitor(ctx context.Context, addr, token string, out, info io.Writer, raw bool) error {
	u := url.URL{Scheme: "http", Host: addr, Path: "/api/monitor"}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	req.Header.Set("Accept", "text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := &http.Client{Transport: &http.Transport{
		DialContext:           (&net.Dialer{Timeout: clientDialTimeout}).DialContext,
		ResponseHeaderTimeout: clientDialTimeout,
	}}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("client: monitor %s: %w", addr, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized && token == "":
		return fmt.Errorf("client: the admin listener at %s needs the admin token: set %s", addr, config.EnvAdminToken)
	case resp.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("client: the admin listener at %s refused the token in %s", addr, config.EnvAdminToken)
	case resp.StatusCode != http.StatusOK:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("client: monitor %s: %s: %s", addr, resp.Status, strings.TrimSpace(string(msg)))
	}

	err = readEvents(resp.Body, func(name, data string) error {
		switch {
		case raw && name != "start":
			_, err := fmt.Fprintf(out, "%s\n", data)
			return err
		case name == "start":
			var st admin.MonitorStart
			json.Unmarshal([]byte(data), &st)
			fmt.Fprintf(info, "monitoring %s at %s; Ctrl-C stops\n", st.Server, addr)
		case name == "update":
			var up admin.Update
			if err := json.Unmarshal([]byte(data), &up); err != nil {
				return fmt.Errorf("client: monitor %s sent %q: %w", addr, data, err)
			}
			from := "here"
			if up.From != "" {
				from = "via " + up.From
			}
			_, err := fmt.Fprintf(out, "%s %-14s %s\n", time.Now().Format("15:04:05.000"), "["+from+"]", up.Line)
			return err
		case name == "skipped":
			var sk admin.MonitorSkipped
			json.Unmarshal([]byte(data), &sk)
			fmt.Fprintf(info, "the monitor fell behind: updates %d to %d left out\n", sk.From+1, sk.To)
		}
		return nil
	})
	if ctx.Err() != nil {
		return nil // Ctrl-C: the way a monitor ends
	}
	if err != nil {
		return fmt.Errorf("client: monitor %s: %w", addr, err)
	}
	return fmt.Errorf("client: monitor %s: the server ended the stream", addr)
}

// readEvents reads Server-Sent Events from r, calling fn with each event's
// name and data, until r ends or fn fails.
func readEvents(r io.Reader, fn func(name, data string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	name, data := "", []string(nil)
	for sc.Scan() {
		line := sc.Text()
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch {
		case line == "":
			if data != nil {
				if err := fn(cmp.Or(name, "message"), strings.Join(data, "\n")); err != nil {
					return err
				}
			}
			name, data = "", nil
		case field == "event":
			name = value
		case field == "data":
			data = append(data, value)
		}
	}
	return sc.Err()
}
