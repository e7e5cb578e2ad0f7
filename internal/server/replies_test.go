package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herd-dev/herd/internal/herd"
	"github.com/herd-dev/herd/internal/places"
)

// scriptConn is a connection whose reads come from a channel, one chunk per
// read (closing it ends the input), and which records every write, so a
// test sees exactly what each write(2) would have carried.
type scriptConn struct {
	reads chan []byte
	rest  []byte // what the last chunk still holds

	mu     sync.Mutex
	writes [][]byte
	wrote  chan struct{} // gets a value (coalesced) after each write
}

func newScriptConn() *scriptConn {
	return &scriptConn{reads: make(chan []byte, 16), wrote: make(chan struct{}, 1)}
}

func (c *scriptConn) Read(p []byte) (int, error) {
	if len(c.rest) == 0 {
		chunk, ok := <-c.reads
		if !ok {
			return 0, io.EOF
		}
		c.rest = chunk
	}
	n := copy(p, c.rest)
	c.rest = c.rest[n:]
	return n, nil
}

func (c *scriptConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, bytes.Clone(p))
	c.mu.Unlock()
	select {
	case c.wrote <- struct{}{}:
	default:
	}
	return len(p), nil
}

// Writes returns what each write carried so far.
func (c *scriptConn) Writes() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slicesClone(c.writes)
}

func slicesClone(w [][]byte) [][]byte { return append([][]byte(nil), w...) }

// waitFor polls the writes until ok accepts them, or fails the test.
func (c *scriptConn) waitFor(t *testing.T, what string, ok func(all []byte) bool) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		if ok(bytes.Join(c.Writes(), nil)) {
			return
		}
		select {
		case <-c.wrote:
		case <-deadline:
			t.Fatalf("no %s within 5s; written so far: %q", what, bytes.Join(c.Writes(), nil))
		}
	}
}

func (c *scriptConn) Close() error { return nil }
func (c *scriptConn) LocalAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 11550}
}
func (c *scriptConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// bigPlaces answers every lookup with limit results of about 1.7 KB each,
// as Google's Nearby Search does.
type bigPlaces struct{}

func (bigPlaces) Nearby(_ context.Context, q places.Query) ([]byte, error) {
	var b strings.Builder
	b.WriteString(`{"html_attributions":[],"results":[`)
	for i := range q.Limit {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"name":"place %d","vicinity":"%s"}`, i, strings.Repeat("v", 1700))
	}
	b.WriteString(`],"status":"OK"}`)
	return []byte(b.String()), nil
}

// serveScript runs one accepted connection over conn until its input ends,
// and returns a channel closed when the connection is done.
func serveScript(t *testing.T, conn *scriptConn, opt Options) <-chan struct{} {
	t.Helper()
	if opt.Name == "" {
		opt.Name = "Alford"
	}
	if opt.Node == nil {
		opt.Node = herd.NewNode(opt.Name, nil)
	}
	if opt.Places == nil {
		opt.Places = bigPlaces{}
	}
	s, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.serveConn(t.Context(), conn, pass{conn: conn})
	}()
	return done
}

const testIAMAT = "IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1479413884.392014450"

// Every reply leaves in one write, however large, so a client that reads
// once after a half-close gets all of it; replies to pipelined commands may
// share a write.
func TestReplies_EachLeavesInOneWrite(t *testing.T) {
	longID := strings.Repeat("k", 9000)
	longLine := "FOO " + strings.Repeat("x", 9000)
	tests := []struct {
		name    string
		input   []string // one chunk each
		replies []string // prefixes of the replies, in order
	}{
		{"whatsat bound 20", []string{testIAMAT + "\n", "WHATSAT kiwi.cs.ucla.edu 10 20\n"}, []string{"AT ", "AT "}},
		{"whatsat bound 5 after buffered replies", []string{testIAMAT + "\nWHATSAT kiwi.cs.ucla.edu 10 2\nWHATSAT kiwi.cs.ucla.edu 10 5\n"}, []string{"AT ", "AT ", "AT "}},
		{"long client id", []string{"IAMAT " + longID + " +34.068930-118.445127 1479413884.392014450\n"}, []string{"AT "}},
		{"long invalid line", []string{longLine[:3000], longLine[3000:6000], longLine[6000:] + "\n"}, []string{"? FOO"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := newScriptConn()
			done := serveScript(t, conn, Options{MaxLineBytes: 64 << 10})
			for _, chunk := range tt.input {
				conn.reads <- []byte(chunk)
			}
			close(conn.reads)
			<-done
			var replies int
			for i, w := range conn.Writes() {
				rest := string(w)
				for rest != "" {
					end := replyEnd(rest)
					if end < 0 {
						t.Fatalf("write %d ends inside a reply: %q", i, tail(rest))
					}
					if replies >= len(tt.replies) || !strings.HasPrefix(rest, tt.replies[replies]) {
						t.Fatalf("reply %d = %q; want one starting %q", replies, head(rest), tt.replies)
					}
					rest = rest[end:]
					replies++
				}
			}
			if replies != len(tt.replies) {
				t.Errorf("got %d whole replies; want %d", replies, len(tt.replies))
			}
		})
	}
}

// replyEnd returns the length of the first reply in s, or -1 if s ends
// inside it. A WHATSAT reply (an AT line followed by JSON) ends at its
// blank line; any other reply at its newline.
func replyEnd(s string) int {
	line, rest, ok := strings.Cut(s, "\n")
	if !ok {
		return -1
	}
	if strings.HasPrefix(line, "AT ") && strings.HasPrefix(rest, "{") {
		if i := strings.Index(rest, "\n\n"); i >= 0 {
			return len(line) + 1 + i + 2
		}
		return -1
	}
	return len(line) + 1
}

func head(s string) string { return s[:min(len(s), 60)] }
func tail(s string) string { return s[max(0, len(s)-60):] }

// A reply goes out as soon as its line is complete, even while the client
// is still sending the next line and keeps its side open.
func TestReplies_NotHeldForTheNextLine(t *testing.T) {
	tests := []struct {
		name, input, want string
	}{
		{"iamat before a partial line", testIAMAT + "\nWHATS", "AT Alford "},
		{"invalid before a partial line", "FOO\nBA", "? FOO\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := newScriptConn()
			done := serveScript(t, conn, Options{})
			conn.reads <- []byte(tt.input)
			conn.waitFor(t, "reply", func(all []byte) bool { return bytes.Contains(all, []byte(tt.want)) })
			close(conn.reads)
			<-done
		})
	}
}
