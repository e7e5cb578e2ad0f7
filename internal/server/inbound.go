package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/herd-dev/herd/internal/herd"
	"github.com/herd-dev/herd/internal/peer"
	"github.com/herd-dev/herd/internal/wire"
)

// servePeer runs an inbound link from a neighbor whose first line was
// HELLO. It returns false if the neighbor could not prove itself: then the
// connection goes on as a client's, and the failed line was answered as one.
func (c *acceptedConn) servePeer(ctx context.Context, hello []byte) bool {
	s := c.s
	s.log.Info("in", "remote", c.remote, "lines", hello)
	hs, err := s.acceptor.Hello(hello)
	if err == nil && s.opt.TLS != nil && !c.tlsPeerIs(hs.Hello().From) {
		err = fmt.Errorf("%w: the TLS certificate does not name %s", peer.ErrAuth, hs.Hello().From)
	}
	if err != nil {
		s.log.Warn("rejected peer hello", "remote", c.remote, "err", err)
		c.handle(ctx, time.Now(), hello, false) // answered as a client's line
		return false
	}
	h := hs.Hello()
	cursor := uint64(0)
	if cur := s.node.Cursor(h.From); cur.Epoch == h.Epoch {
		cursor = cur.Seq
	}
	welcome := hs.Welcome(cursor)
	s.log.Info("out", "remote", c.remote, "lines", welcome)
	c.replies = append(c.replies, welcome...)
	if !c.flush() {
		return true
	}
	c.readTimeout = s.opt.DeadAfter
	auth, tooLong, err := c.readLine(max(s.opt.MaxLineBytes, peer.MaxHandshakeLine))
	if err != nil && (len(auth) == 0 || !errors.Is(err, io.EOF)) {
		return true // no whole line came after WELCOME: the connection ends
	}
	sess, authErr := hs.Auth(auth)
	if authErr != nil {
		// Not a neighbor after all: the line is a client's command, and
		// the connection goes on as a client's (run sends its reply).
		s.log.Warn("peer failed authentication", "remote", c.remote, "claims", h.From, "err", authErr)
		c.readTimeout = s.opt.IdleTimeout
		c.handle(ctx, time.Now(), auth, tooLong)
		return false
	}
	c.receiveFeed(h, sess)
	return true
}

func (c *acceptedConn) tlsPeerIs(name string) bool {
	tc, ok := c.conn.(*tls.Conn)
	if !ok {
		return false
	}
	certs := tc.ConnectionState().PeerCertificates
	return len(certs) > 0 && certs[0].VerifyHostname(name) == nil
}

// receiveFeed applies a neighbor's change feed until the link fails, and
// acknowledges it every heartbeat.
func (c *acceptedConn) receiveFeed(h peer.Hello, sess *peer.Session) {
	s := c.s
	l := s.links[h.From]
	c.readTimeout, c.peerLink = s.opt.DeadAfter, true
	// A busy neighbor writes up to writeChunk at a time: read it in one go,
	// not a client-sized piece at a time.
	c.br = bufio.NewReaderSize(c.br, peerReadBuffer)
	s.log.Info("peer link up", "peer", h.From, "direction", "in", "remote", c.remote)
	l.setInbound(c.conn)
	defer l.clearInbound(c.conn)

	r := newFeedReceiver(s.node, h, sess)
	stopAcks := make(chan struct{})
	defer close(stopAcks)
	s.goSafe(func() { s.sendAcks(c.conn, h.From, sess, &r.applied, stopAcks) })

	// Lines read are logged together when the records they hold are
	// applied, with how many of those were stored, or when the link ends.
	var lines []byte
	updates := 0
	flush := func() {
		a := r.apply()
		s.applied(l, a)
		if len(lines) > 0 {
			s.logPeerLines(time.Now(), heartbeatLevel(updates+a.received), "in", h.From, lines,
				slog.Int("stored", a.stored), slog.Int("duplicates", a.received-a.stored))
			lines, updates = lines[:0], 0
		}
	}
	defer flush()
	for {
		line, err := readPeerLine(c.br)
		if err != nil {
			s.log.Info("peer link down", "peer", h.From, "direction", "in", "reason", c.closeReason(err))
			return
		}
		lines = append(append(lines, line...), '\n')
		l.bytesIn.Add(uint64(len(line) + 1))
		if bytes.HasPrefix(line, []byte(peer.KeyAT+" ")) {
			updates++
		}
		if err := r.receive(line); err != nil {
			s.log.Error("peer link down", "peer", h.From, "direction", "in", "remote", c.remote, "err", err)
			return
		}
		if r.full() || len(lines) >= writeChunk || c.br.Buffered() == 0 {
			flush()
		}
	}
}

// applied counts what one applied batch of a neighbor's feed did, and how
// long its new updates took to get here.
func (s *Server) applied(l *link, a appliedBatch) {
	if a.received == 0 {
		return
	}
	s.stats.FloodIn.Add(uint64(a.received))
	s.stats.FloodDup.Add(uint64(a.received - a.stored))
	s.stats.CatchUpReceived.Add(uint64(a.catchUp))
	now := time.Now()
	l.updatesIn.Add(uint64(a.received))
	l.lastUpdateIn.Store(now.UnixNano())
	for _, rec := range a.new {
		if at, ok := rec.ReceivedAt(); ok {
			l.propagation(time.Duration(now.UnixNano() - at.Sec*1e9 - int64(at.Nsec)))
		}
	}
}

// sendAcks tells the neighbor, every heartbeat, how far its feed has been
// applied. It also proves to the neighbor that this end is alive.
func (s *Server) sendAcks(conn net.Conn, peerName string, sess *peer.Session, applied *atomic.Uint64, stop <-chan struct{}) {
	t := time.NewTicker(s.opt.Heartbeat)
	defer t.Stop()
	var out []byte
	for {
		out = sess.Seal(sess.AppendAck(out[:0], applied.Load()))
		s.logPeerLines(time.Now(), slog.LevelDebug, "out", peerName, out)
		conn.SetWriteDeadline(time.Now().Add(s.opt.DeadAfter))
		if _, err := conn.Write(out); err != nil {
			conn.Close()
			return
		}
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

// peerReadBuffer is the read buffer of an inbound peer link.
const peerReadBuffer = 2 * writeChunk

// maxUnsealed bounds the messages a receiver holds while it waits for
// their seal; a sender seals every write (at most writeChunk bytes, plus
// one batch).
const maxUnsealed = 4 * feedBatch

// feedReceiver applies one neighbor's change feed to the node. Messages are
// held until the seal that covers them checks out, then offered to the node
// in batches; the cursor moves with each applied batch.
type feedReceiver struct {
	node *herd.Node
	sess *peer.Session
	from string
	// epoch and head are the neighbor's when it dialed: records up to head
	// are catch-up.
	epoch, head uint64

	held        []*herd.Record // received, not yet sealed
	heldLast    uint64         // the cursor after them
	heldCatchUp int            // how many of them are catch-up

	batch   []*herd.Record // sealed, not yet applied
	last    uint64         // the cursor after them
	catchUp int
	stored  []*herd.Record // of the last batch applied, those stored

	applied atomic.Uint64 // the cursor of the last applied batch, for ACKs
}

// appliedBatch is what applying one batch did.
type appliedBatch struct {
	received, stored, catchUp int
	// new holds the records stored, until the next apply. Catch-up
	// records are left out: they did not come as they happened.
	new []*herd.Record
}

func newFeedReceiver(node *herd.Node, h peer.Hello, sess *peer.Session) *feedReceiver {
	r := &feedReceiver{node: node, sess: sess, from: h.From, epoch: h.Epoch, head: h.Head,
		heldLast: sess.Cursor(), last: sess.Cursor()}
	r.applied.Store(sess.Cursor())
	return r
}

var errTooManyUnsealed = errors.New("server: too many messages without a seal")

// receive takes one line of the feed. An error is fatal to the link.
func (r *feedReceiver) receive(line []byte) error {
	kw, body, sealed, err := r.sess.Receive(line)
	if err != nil {
		return fmt.Errorf("message failed authentication: %w", err)
	}
	switch kw {
	case "": // a seal
	case peer.KeyAT:
		seq, at, err := peer.ParseUpdate(body)
		m, perr := wire.Parse(at)
		if err != nil || perr != nil || m.Kind != wire.KindAT {
			return fmt.Errorf("malformed update %q: %w", line, peer.ErrMalformed)
		}
		r.held = append(r.held, herd.NewRecord(at, &m))
		r.heldLast = seq
		if seq <= r.head {
			r.heldCatchUp++
		}
	case peer.KeyMark:
		if r.heldLast, err = peer.ParseSeq(body); err != nil {
			return fmt.Errorf("malformed mark %q: %w", line, err)
		}
	case peer.KeyPing:
	default:
		return fmt.Errorf("unexpected message %q: %w", line, peer.ErrMalformed)
	}
	if sealed {
		r.batch = append(r.batch, r.held...)
		r.last, r.catchUp = r.heldLast, r.catchUp+r.heldCatchUp
		r.held, r.heldCatchUp = r.held[:0], 0
	} else if len(r.held) > maxUnsealed {
		return errTooManyUnsealed
	}
	return nil
}

// full reports whether a batch's worth of sealed records waits.
func (r *feedReceiver) full() bool { return len(r.batch) >= feedBatch }

// apply offers the sealed records to the node and moves the cursor past
// them.
func (r *feedReceiver) apply() appliedBatch {
	if len(r.batch) == 0 && r.last == r.applied.Load() {
		return appliedBatch{}
	}
	stored := r.node.OfferFrom(r.from, herd.Cursor{Epoch: r.epoch, Seq: r.last}, r.batch)
	a := appliedBatch{received: len(r.batch), stored: stored, catchUp: r.catchUp}
	if r.catchUp == 0 && stored > 0 {
		r.stored = r.stored[:0]
		for _, rec := range r.batch {
			if rec.Seq != 0 { // numbered: stored
				r.stored = append(r.stored, rec)
			}
		}
		a.new = r.stored
	}
	r.batch, r.catchUp = r.batch[:0], 0
	r.applied.Store(r.last)
	return a
}
