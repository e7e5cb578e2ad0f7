package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/herd-dev/herd/internal/peer"
)

// readBufferSize is the per-connection read buffer. Longer lines, up to
// MaxLineBytes, are gathered in a separate buffer.
const readBufferSize = 4 << 10

// flushAt is how many bytes of replies a connection gathers before it
// writes them without waiting for its input to run dry.
const flushAt = 64 << 10

// sendBufferSize caps the kernel's send buffer for an accepted connection.
// Linux would grow it to 4 MB, and wakes a blocked writer only once a
// third of the buffer has drained: a client reading steadily but slowly
// could then be dropped for not reading within WriteTimeout. The cap keeps
// that to some 170 KiB, bounds the kernel memory a non-reader holds, and
// still lets a pipelining client over a 100 ms link get 5 MB/s.
const sendBufferSize = 256 << 10 // the kernel doubles it

// acceptedConn is one accepted connection. It speaks the client protocol
// (client.go) until a first line of HELLO turns it into a neighbor's
// inbound peer link (inbound.go).
type acceptedConn struct {
	s      *Server
	conn   net.Conn // the connection, or its TLS layer
	raw    net.Conn // the accepted connection
	remote string
	br     *bufio.Reader
	// readTimeout drops the connection when it sends nothing for this
	// long: IdleTimeout for clients, DeadAfter for peers.
	readTimeout time.Duration
	// lineDeadline is when the line under way must be whole (see
	// connReader); zero while no part of a line has come.
	lineDeadline time.Time
	long         []byte // gathers lines longer than the read buffer
	gathering    bool   // long holds the start of the line under way
	// replies holds whole replies not yet written. Each reply is appended
	// whole and the buffer is only ever written whole, with one Write, so
	// no reply is split across writes (see flush).
	replies []byte
	// replyStart is where the reply to the command being handled begins
	// in replies.
	replyStart int
	dirty      bool // the node changed since the journal was last committed
	// durableFrom is where, in replies, the first reply that needs the
	// commit starts, while dirty.
	durableFrom int
	// writeErr is the first error writing to the connection; the
	// connection is closed once it is set.
	writeErr error
	// peerOnly: accepted past the connection limit, so it must open a peer
	// link with its first line or be closed. spoke, then, is set once its
	// first bytes have been read (see admission).
	peerOnly bool
	spoke    *atomic.Bool
	// peerLink: the connection is a neighbor's inbound link, whose lines
	// (a long record over a slow network) may take any time to arrive
	// as long as bytes keep coming.
	peerLink bool
}

// serveConn runs one accepted connection, admitted with p. A connection on
// probation (accepted past limits.max_connections or
// limits.max_connections_per_ip) is kept only if it opens a peer link, so
// clients can never lock neighbors out.
func (s *Server) serveConn(ctx context.Context, conn net.Conn, p pass) {
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetWriteBuffer(sendBufferSize)
	}
	c := &acceptedConn{s: s, conn: conn, raw: conn, remote: conn.RemoteAddr().String(),
		peerOnly: p.probation, spoke: p.spoke, readTimeout: s.opt.IdleTimeout}
	c.br = bufio.NewReaderSize(connReader{c, conn}, readBufferSize)
	if s.opt.TLS != nil && !c.maybeTLS() {
		return
	}
	c.run(ctx)
}

// connReader is what a connection's buffered reader reads through. Each
// read from the socket gets a deadline: a connection is dropped when it has
// sent nothing for readTimeout, and a client's line must be whole within
// readTimeout of its first bytes, so a client trickling a byte at a time
// cannot hold a connection forever. It sets the deadline before it looks at shutdown, and
// shutdown marks itself before it expires every deadline, so no read
// outlives it.
type connReader struct {
	c    *acceptedConn
	conn net.Conn // c.conn when the reader was made (TLS wraps it later)
}

func (r connReader) Read(p []byte) (int, error) {
	c := r.c
	deadline := time.Now().Add(c.readTimeout)
	if !c.peerLink && (c.gathering || c.br.Buffered() > 0) { // part of a client's line has come
		if c.lineDeadline.IsZero() {
			c.lineDeadline = deadline
		}
		deadline = c.lineDeadline
	} else {
		c.lineDeadline = time.Time{}
	}
	r.conn.SetReadDeadline(deadline)
	if c.s.stopped.Load() {
		return 0, errShuttingDown
	}
	n, err := r.conn.Read(p)
	if n > 0 && c.spoke != nil {
		c.spoke.Store(true)
	}
	return n, err
}

var (
	errShuttingDown = errors.New("server shutting down")
	errNotDurable   = errors.New("the journal failed to commit its updates; their replies are withheld")
)

// maybeTLS switches the connection to TLS if its first byte opens a TLS
// handshake: neighbors connect that way when peer TLS is on, clients never.
func (c *acceptedConn) maybeTLS() bool {
	first, err := c.br.Peek(1)
	if err != nil || first[0] != 0x16 { // 0x16: TLS handshake record
		return err == nil
	}
	tc := tls.Server(&bufferedConn{Conn: c.conn, r: c.br}, c.s.opt.TLS)
	c.conn = tc
	c.br = bufio.NewReaderSize(connReader{c, tc}, readBufferSize)
	return true
}

// bufferedConn reads through a bufio.Reader that already holds some of the
// connection's bytes.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

func (c *acceptedConn) run(ctx context.Context) {
	s := c.s
	s.log.Info("client connected", "remote", c.remote)
	if c.peerOnly {
		c.admitPeer(ctx)
		return
	}
	first := true
	for {
		limit := s.opt.MaxLineBytes
		if first { // it may be a neighbor's HELLO
			limit = max(limit, peer.MaxHandshakeLine)
		}
		line, tooLong, err := c.readLine(limit)
		// A last line without newline is a command only if the client
		// ended its input (half-close), not if the read timed out or broke.
		if err == nil || len(line) > 0 && errors.Is(err, io.EOF) {
			if first && (isTLSPeer(c.conn) || bytes.HasPrefix(line, []byte(peer.KeyHello))) {
				if c.servePeer(ctx, line) {
					return
				}
			} else {
				c.handle(ctx, s.opt.Now(), line, tooLong)
			}
			first = false
		}
		if err != nil {
			c.finish(c.closeReason(err))
			return
		}
		// The line is answered: a long one's buffer goes now, not after a
		// flush that may wait WriteTimeout for a client that does not read.
		c.releaseLongLine()
		// Replies go out once no complete line waits to be handled, so a
		// client sending its next line in pieces still gets this reply
		// now. A failed write ends the connection at once, even in the
		// middle of pipelined input: its replies could no longer be sent.
		if (c.writeErr != nil || len(c.replies) >= flushAt || !c.lineBuffered()) && !c.flush() {
			return
		}
		c.releaseReplies()
	}
}

// lineBuffered reports whether a complete line is already read and waiting.
func (c *acceptedConn) lineBuffered() bool {
	buffered, _ := c.br.Peek(c.br.Buffered())
	return bytes.IndexByte(buffered, '\n') >= 0
}

// releaseLongLine drops the buffer that a long line grew, and
// releaseReplies the one that large replies grew once they are sent, so
// that idle connections hold little memory.
func (c *acceptedConn) releaseLongLine() {
	if cap(c.long) > readBufferSize {
		c.long = nil
	}
}

func (c *acceptedConn) releaseReplies() {
	if len(c.replies) == 0 && cap(c.replies) > flushAt {
		c.replies = nil
	}
}

// admitPeer runs a connection accepted past the connection limit: only a
// neighbor that opens its link with its first line, within DeadAfter, is
// served; anything else is refused and closed. A probe (ProbeLine) is
// answered first, so that a server full of clients still shows it is alive
// to herd status and to its own health check.
func (c *acceptedConn) admitPeer(ctx context.Context) {
	s := c.s
	c.readTimeout = s.opt.DeadAfter
	line, _, err := c.readLine(max(s.opt.MaxLineBytes, peer.MaxHandshakeLine))
	s.admission.leaveProbation(c.raw)
	c.readTimeout = s.opt.IdleTimeout
	switch {
	case err == nil && bytes.HasPrefix(line, []byte(peer.KeyHello)):
		if !c.servePeer(ctx, line) {
			c.flush() // its "? line", before the connection closes
		}
	case err == nil && string(line) == ProbeLine:
		c.handle(ctx, s.opt.Now(), line, false)
		c.flush()
	case errors.Is(err, net.ErrClosed):
		// Closed to make room for a newer connection: counted then.
	default:
		s.refuse(c.raw)
	}
}

func isTLSPeer(conn net.Conn) bool {
	_, ok := conn.(*tls.Conn)
	return ok
}

// closeReason says why reading from the connection ended with err.
func (c *acceptedConn) closeReason(err error) string {
	switch {
	case errors.Is(err, io.EOF):
		return "client closed"
	case c.s.stopped.Load() || errors.Is(err, errShuttingDown):
		return "server shutting down"
	case isTimeout(err) && !c.lineDeadline.IsZero():
		return "a line did not arrive whole in time"
	case isTimeout(err):
		return "idle timeout"
	}
	return err.Error()
}

// finish answers what was read, then closes.
func (c *acceptedConn) finish(reason string) {
	c.flush()
	c.s.log.Info("client disconnected", "remote", c.remote, "reason", reason)
}

// readLine returns the next line without its line ending, \n. (A CR before
// it is white space, which parsing ignores, and part of the line as
// received, which "? line" echoes.) At end of input it returns a last
// unterminated line with io.EOF. A line over limit bytes comes back cut to
// that length with tooLong set; the rest of it is read and dropped, so
// memory stays bounded.
func (c *acceptedConn) readLine(limit int) (line []byte, tooLong bool, err error) {
	c.lineDeadline = time.Time{} // each line has a window of its own
	line, err = c.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		c.long = append(c.long[:0], line...)
		c.gathering = true
		held := 0 // of the server's LongLineMemory
		defer func() {
			c.gathering = false
			c.s.longLines.Add(-int64(held))
		}()
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = c.br.ReadSlice('\n')
			if room := limit + len("\r\n") - len(c.long); room < len(line) {
				tooLong = true
				line = line[:max(room, 0)]
			}
			if need := len(c.long) + len(line); need > cap(c.long) {
				// Grown here rather than by append, so that what is held
				// is counted whole.
				grown := min(max(2*cap(c.long), need), limit+len("\r\n"))
				if c.holdLongLine(grown - cap(c.long)) {
					held += grown - cap(c.long)
					c.long = append(make([]byte, 0, grown), c.long...)
				} else {
					tooLong, limit = true, len(c.long)
					line = line[:min(len(line), cap(c.long)-len(c.long))]
				}
			}
			c.long = append(c.long, line...)
		}
		line = c.long
	}
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	if tooLong || len(line) > limit {
		return line[:min(len(line), limit)], true, err
	}
	return line, false, err
}

// holdLongLine reports whether n more bytes of a line still arriving fit
// the server's LongLineMemory, and if so counts them; when they do not,
// the line is cut where it is, so clients that each hold an unfinished long
// line cannot together take the server's memory.
func (c *acceptedConn) holdLongLine(n int) bool {
	s := c.s
	if n == 0 {
		return true
	}
	if s.longLines.Add(int64(n)) <= int64(s.opt.LongLineMemory) {
		return true
	}
	s.longLines.Add(-int64(n))
	if ok, suppressed := s.longLineWarnings.Allow(time.Now()); ok {
		s.log.Warn("unfinished long lines hold the server's memory for them; cutting this one",
			"remote", c.remote, "long_line_memory", s.opt.LongLineMemory, "cut_since_last_warning", suppressed)
	}
	return false
}

// flush writes the buffered replies with one Write, so each leaves whole.
// It first commits the journal if the connection changed the node, so no
// acknowledgement ever leaves before its update is durable: if the commit
// fails, only the replies before the first that needed it are sent, and the
// connection is closed. The write gets a deadline: a client that does not
// read its replies for WriteTimeout is dropped, and no one else waits for
// it. flush reports whether the connection is still usable.
func (c *acceptedConn) flush() bool {
	notDurable := false
	if c.writeErr == nil && len(c.replies) > 0 {
		if c.dirty && !c.s.commit() {
			c.replies, notDurable = c.replies[:c.durableFrom], true
		}
		c.dirty = false
	}
	if c.writeErr == nil && len(c.replies) > 0 {
		c.conn.SetWriteDeadline(time.Now().Add(c.s.opt.WriteTimeout))
		_, c.writeErr = c.conn.Write(c.replies)
		c.replies, c.replyStart = c.replies[:0], 0
	}
	if c.writeErr == nil && notDurable {
		c.writeErr = errNotDurable
	}
	switch {
	case errors.Is(c.writeErr, errNotDurable):
		c.s.log.Warn("client dropped: its updates could not be made durable, so their replies were withheld", "remote", c.remote)
		return false
	case c.writeErr != nil:
		c.s.log.Info("client dropped: cannot write", "remote", c.remote, "err", c.writeErr)
		return false
	}
	return true
}
