package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// respConn is a minimal Redis client: enough RESP to send a command and
// read its whole reply, for setting up, checking and comparing the Redis
// servers the bench measures herd against. The load itself goes through
// the load generator as inline commands.
type respConn struct {
	c  net.Conn
	br *bufio.Reader
}

// respTimeout bounds one command, reply included.
const respTimeout = 30 * time.Second

func dialRESP(addr string) (*respConn, error) {
	c, err := net.DialTimeout("tcp", addr, dialTimeout)
	if err != nil {
		return nil, err
	}
	return &respConn{c: c, br: bufio.NewReaderSize(c, readBufferSize)}, nil
}

func (rc *respConn) close() { rc.c.Close() }

// do sends a command and writes its raw reply to w (nil discards it). An
// error reply is returned as an error.
func (rc *respConn) do(w io.Writer, args ...string) error {
	var b []byte
	b = fmt.Appendf(b, "*%d\r\n", len(args))
	for _, a := range args {
		b = fmt.Appendf(b, "$%d\r\n%s\r\n", len(a), a)
	}
	rc.c.SetDeadline(time.Now().Add(respTimeout))
	if _, err := rc.c.Write(b); err != nil {
		return err
	}
	if w == nil {
		w = io.Discard
	}
	if err := readRESP(rc.br, w); err != nil {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	return nil
}

// text sends a command whose reply is a string (simple or bulk) or an
// integer, and returns it.
func (rc *respConn) text(args ...string) (string, error) {
	var b bytes.Buffer
	if err := rc.do(&b, args...); err != nil {
		return "", err
	}
	reply := b.String()
	switch reply[0] { // do read at least a line
	case '+', ':':
		return strings.TrimSuffix(reply[1:], "\r\n"), nil
	case '$':
		_, body, _ := strings.Cut(reply, "\r\n")
		return strings.TrimSuffix(body, "\r\n"), nil
	}
	return "", fmt.Errorf("%s: unexpected reply %.40q", args[0], reply)
}

// info returns the fields of INFO section as a map.
func (rc *respConn) info(section string) (map[string]string, error) {
	s, err := rc.text("INFO", section)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for line := range strings.Lines(s) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			out[k] = v
		}
	}
	return out, nil
}

// errRESP is an error reply from the server.
var errRESP = errors.New("error reply")

// readRESP copies one whole reply from br to w: a simple string, error,
// integer, bulk string or array (of any depth). An error reply is copied
// and also returned.
func readRESP(br *bufio.Reader, w io.Writer) error {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return fmt.Errorf("malformed reply line %.40q", line)
	}
	if _, err := w.Write(line); err != nil {
		return err
	}
	head := string(line[1 : len(line)-2])
	switch line[0] {
	case '+', ':':
		return nil
	case '-':
		return fmt.Errorf("%w: %s", errRESP, head)
	case '$':
		n, err := strconv.Atoi(head)
		if err != nil || n < -1 {
			return fmt.Errorf("malformed bulk length %q", head)
		}
		if n == -1 {
			return nil
		}
		_, err = io.CopyN(w, br, int64(n)+2)
		return err
	case '*':
		n, err := strconv.Atoi(head)
		if err != nil || n < -1 {
			return fmt.Errorf("malformed array length %q", head)
		}
		for range max(n, 0) {
			if err := readRESP(br, w); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("unknown reply type %q", line[0])
}
