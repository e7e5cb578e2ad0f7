package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"time"

	"github.com/herd-dev/herd/internal/herd"
	"github.com/herd-dev/herd/internal/peer"
)

// Reconnect backoff for outbound links: doubled after each failure, capped,
// and jittered so that servers restarted together do not dial in lockstep.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// Batching of the change feed onto a link. After each write a link waits
// linkPace before the next, so that under load one write carries every
// record that arrived meanwhile, while an idle link still sends a new record
// at once. Writes per link stay under about 2,000 a second whatever the
// load, so the syscalls and wake-ups on both ends are shared by many
// records; the price is at most linkPace per hop of propagation delay.
const (
	feedBatch  = 256
	writeChunk = 32 << 10
	linkPace   = 500 * time.Microsecond
)

// welcomeWait is how long a link without a peer secret waits for WELCOME
// before it streams anyway. Without a secret nothing in WELCOME is needed
// to start, only its cursor, which saves resending what the neighbor has.
const welcomeWait = time.Second

// runLink keeps this server's outbound link to one neighbor up until ctx is
// cancelled, redialing after every failure.
func (s *Server) runLink(ctx context.Context, l *link) {
	backoff := minBackoff
	for ctx.Err() == nil {
		start := time.Now()
		err := s.linkOnce(ctx, l)
		if ctx.Err() != nil {
			return
		}
		l.outboundDown(err)
		if time.Since(start) > 10*maxBackoff {
			backoff = minBackoff
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		if errors.Is(err, peer.ErrRefused) || errors.Is(err, peer.ErrAuth) {
			// A configuration mistake, not a passing fault: say so plainly,
			// but not at every redial.
			if ok, suppressed := l.refusals.Allow(time.Now()); ok {
				s.log.Warn("neighbor refused the peer link; check both servers' configuration and HERD_PEER_SECRET",
					"peer", l.peer, "err", err, "this_server_has_secret", len(s.opt.Secret) > 0, "refused_since_last_warning", suppressed)
			}
		} else {
			s.log.Info("peer link failed; redialing", "peer", l.peer, "err", err, "in", wait)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// linkOnce dials the neighbor, shakes hands, and streams the change feed
// from the neighbor's cursor until the link fails or ctx is cancelled.
func (s *Server) linkOnce(ctx context.Context, l *link) error {
	conn, err := s.dialPeer(ctx, l)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() }) // shutdown cuts a write in progress
	defer stop()

	br := bufio.NewReaderSize(conn, readBufferSize)
	head, epoch := s.node.Head(), s.opt.Store.Epoch()
	sess, cursor, err := s.shakeHands(conn, br, l.peer, epoch, head)
	if err != nil {
		return err
	}
	if s.lostRecords(l, cursor, head) {
		if s.renewEpoch(epoch) {
			return errors.New("epoch renewed after lost records; redialing")
		}
		cursor = 0 // no new epoch: send everything on this link at least
	}
	s.log.Info("peer link up", "peer", l.peer, "direction", "out", "addr", l.addr, "resume_after", cursor, "head", head)
	l.outboundUp(cursor)
	defer s.log.Info("peer link down", "peer", l.peer, "direction", "out")

	linkCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	readDone := make(chan error, 1)
	if !s.goSafe(func() {
		readDone <- s.readAcks(conn, br, sess, l)
		cancel()
	}) {
		return errShuttingDown
	}
	err = s.stream(linkCtx, conn, l, &feedSender{node: s.node, sess: sess, peer: l.peer, cursor: cursor, catchUpEnd: head})
	conn.Close() // ends readAcks, if the link failed on this side
	readErr := <-readDone
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		return err
	}
	return readErr
}

// dialPeer opens a connection to the neighbor, over TLS if peer TLS is on.
func (s *Server) dialPeer(ctx context.Context, l *link) (net.Conn, error) {
	conn, err := s.opt.Dial(ctx, l.addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", l.addr, err)
	}
	if s.opt.TLS == nil {
		return conn, nil
	}
	cfg := s.opt.TLS.Clone()
	cfg.ServerName = l.peer
	tc := tls.Client(conn, cfg)
	tc.SetDeadline(time.Now().Add(s.opt.DeadAfter))
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("tls with %s: %w", l.peer, err)
	}
	tc.SetDeadline(time.Time{})
	return tc, nil
}

// shakeHands runs the dialing side of the handshake (see peer.Dialer) and
// returns the link's session and the neighbor's cursor into this server's
// change feed.
func (s *Server) shakeHands(conn net.Conn, br *bufio.Reader, peerName string, epoch, head uint64) (*peer.Session, uint64, error) {
	d := peer.NewDialer(s.opt.Secret, s.opt.Name, peerName, epoch, head)
	open := len(s.opt.Secret) == 0
	wait := s.opt.DeadAfter
	if open {
		wait = min(wait, welcomeWait)
	}
	conn.SetDeadline(time.Now().Add(wait))
	defer conn.SetDeadline(time.Time{})
	start := d.Start()
	s.logPeerLines(time.Now(), slog.LevelInfo, "out", peerName, start)
	if _, err := conn.Write(start); err != nil {
		return nil, 0, fmt.Errorf("hello to %s: %w", peerName, err)
	}
	line, err := readPeerLine(br)
	if open && isTimeout(err) {
		s.log.Warn("neighbor has not answered HELLO; streaming the whole change feed", "peer", peerName, "waited", wait)
		sess, err := d.Unwelcomed()
		return sess, 0, err
	}
	if err != nil {
		return nil, 0, fmt.Errorf("welcome from %s: %w", peerName, err)
	}
	s.logPeerLines(time.Now(), slog.LevelInfo, "in", peerName, line)
	auth, sess, cursor, err := d.Welcome(line)
	if errors.Is(err, peer.ErrAuth) {
		s.log.Error("neighbor failed authentication: check HERD_PEER_SECRET", "peer", peerName)
	}
	if err != nil {
		return nil, 0, err
	}
	if len(auth) > 0 {
		s.logPeerLines(time.Now(), slog.LevelInfo, "out", peerName, auth)
		if _, err := conn.Write(auth); err != nil {
			return nil, 0, fmt.Errorf("auth to %s: %w", peerName, err)
		}
	}
	return sess, cursor, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// lostRecords reports whether cursor, the neighbor's cursor into this
// server's change feed, shows that the data directory lost records the
// neighbor had read. That happens when journal segments are lost, or the
// directory is restored from a backup, while META keeps its epoch: this
// process then numbers its records from a block an earlier one used, and
// resuming from the cursor would skip them. The signs are a cursor past the
// head, or, before this process has linked to the neighbor, past where its
// numbering began.
func (s *Server) lostRecords(l *link, cursor, head uint64) bool {
	runStart := s.node.RunStart()
	first := l.reconnects.Load() == 0
	if cursor <= head && (!first || cursor <= runStart) {
		return false
	}
	s.log.Error("neighbor has read records this server's data directory no longer holds",
		"peer", l.peer, "resume_after", cursor, "head", head, "run_start", runStart)
	return true
}

// renewEpoch gives the data directory a new epoch, unless another link
// renewed it after this one read used, and reports whether the link should
// redial with the current epoch. Neighbors keep cursors per epoch, so under
// a new one each of them reads the whole change feed, however often its
// link drops meanwhile.
func (s *Server) renewEpoch(used uint64) bool {
	epoch, err := s.opt.Store.RenewEpoch(used)
	if err != nil {
		s.log.Error("cannot renew the epoch; sending this neighbor the whole change feed", "err", err)
		return false
	}
	s.log.Warn("redialing under the data directory's new epoch", "peer_epoch_was", used, "epoch", epoch)
	return true
}

// stream writes the change feed to the neighbor until ctx is done (nil) or
// a write fails. Idle, it sends a heartbeat so that the neighbor can tell a
// quiet link from a dead one.
func (s *Server) stream(ctx context.Context, conn net.Conn, l *link, f *feedSender) error {
	watch, unwatch := s.node.Watch()
	defer unwatch()
	// Ticking at half the heartbeat keeps every silence under one heartbeat.
	heartbeat := time.NewTicker(s.opt.Heartbeat / 2)
	defer heartbeat.Stop()
	pace := time.NewTimer(linkPace)
	defer pace.Stop()
	lastWrite := time.Now()
	for {
		for f.fill() && !f.full() {
		}
		if f.pending() {
			full := f.full()
			if err := s.writeBatch(conn, l, f.take()); err != nil {
				return err
			}
			lastWrite = time.Now()
			if full {
				continue // more is waiting
			}
			pace.Reset(linkPace)
			select {
			case <-ctx.Done():
				return nil
			case <-pace.C:
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-watch:
		case <-heartbeat.C:
			if time.Since(lastWrite) >= s.opt.Heartbeat/2 {
				f.ping()
			}
		}
	}
}

// progressChunk is how much of a write must cross a link within DeadAfter.
const progressChunk = 4 << 10

// writeBatch sends one sealed batch of the feed with one write. A link is
// dead when it stops moving, not when a large batch takes longer than
// DeadAfter to cross a slow network: the write may take DeadAfter for each
// progressChunk it holds. (A link that stops moving altogether is caught
// sooner, by readAcks.)
func (s *Server) writeBatch(conn net.Conn, l *link, b feedBatchOut) error {
	s.logPeerLines(time.Now(), heartbeatLevel(b.records), "out", l.peer, b.lines)
	chunks := time.Duration(len(b.lines)+progressChunk-1) / progressChunk
	conn.SetWriteDeadline(time.Now().Add(max(chunks, 1) * s.opt.DeadAfter))
	if _, err := conn.Write(b.lines); err != nil {
		return fmt.Errorf("write to %s: %w", l.peer, err)
	}
	s.stats.FloodOut.Add(uint64(b.records))
	s.stats.CatchUpSent.Add(uint64(b.catchUp))
	l.updatesOut.Add(uint64(b.records))
	l.bytesOut.Add(uint64(len(b.lines)))
	l.sent.Store(b.cursor)
	return nil
}

// readAcks reads the neighbor's acknowledgements until the link fails. A
// neighbor that stays silent past DeadAfter is dead, even if TCP says
// nothing (a black hole).
func (s *Server) readAcks(conn net.Conn, br *bufio.Reader, sess *peer.Session, l *link) error {
	var acked uint64 // by the latest ACK, counted once its seal checks out
	for {
		conn.SetReadDeadline(time.Now().Add(s.opt.DeadAfter))
		line, err := readPeerLine(br)
		if err != nil {
			return fmt.Errorf("read from %s: %w", l.peer, err)
		}
		s.logPeerLines(time.Now(), slog.LevelDebug, "in", l.peer, line)
		kw, body, sealed, err := sess.Receive(line)
		if err != nil || kw != "" && kw != peer.KeyAck {
			return fmt.Errorf("%s sent %q: %w", l.peer, line, peer.ErrMalformed)
		}
		if kw == peer.KeyAck {
			if acked, err = peer.ParseSeq(body); err != nil {
				return fmt.Errorf("%s sent %q: %w", l.peer, line, err)
			}
		}
		if sealed {
			l.acked.Store(acked)
		}
	}
}

// feedSender turns the node's change feed into sealed writes for one
// neighbor, from the neighbor's cursor on. Records up to catchUpEnd (this
// server's head when the link opened) are catch-up: the neighbor may have
// lost what it sent, so they go out even if they came from it.
type feedSender struct {
	node       *herd.Node
	sess       *peer.Session
	peer       string
	cursor     uint64
	catchUpEnd uint64

	recs []*herd.Record // scratch for Node.Changes
	out  feedBatchOut   // messages not yet taken
}

// feedBatchOut is one write's worth of the feed.
type feedBatchOut struct {
	lines   []byte
	records int    // AT messages in lines
	catchUp int    // of which catch-up
	cursor  uint64 // where the feed resumes after lines
}

// fill appends the next changes after the cursor and reports whether the
// cursor moved. Records the neighbor gave this server are skipped, and a
// MARK tells the neighbor the cursor moved past them.
func (f *feedSender) fill() bool {
	skip := f.peer
	catchingUp := f.cursor < f.catchUpEnd
	if catchingUp {
		skip = ""
	}
	var next uint64
	f.recs, next = f.node.Changes(f.recs[:0], f.cursor, feedBatch, skip)
	if next == f.cursor {
		return false
	}
	for _, r := range f.recs {
		f.out.lines = f.sess.AppendUpdate(f.out.lines, r.Seq, r.Line)
	}
	if len(f.recs) == 0 || f.recs[len(f.recs)-1].Seq != next {
		f.out.lines = f.sess.AppendMark(f.out.lines, next)
	}
	f.out.records += len(f.recs)
	if catchingUp {
		f.out.catchUp += len(f.recs)
	}
	f.cursor, f.out.cursor = next, next
	return true
}

// ping appends a heartbeat.
func (f *feedSender) ping() {
	f.out.lines = f.sess.Append(f.out.lines, peer.KeyPing, nil)
}

func (f *feedSender) pending() bool { return len(f.out.lines) > 0 }

// full reports whether the messages gathered make a write's worth.
func (f *feedSender) full() bool { return len(f.out.lines) >= writeChunk }

// take seals the gathered messages and returns them as one batch. Its lines
// stay valid until the next fill or ping.
func (f *feedSender) take() feedBatchOut {
	b := f.out
	b.lines = f.sess.Seal(b.lines)
	f.out = feedBatchOut{lines: b.lines[:0], cursor: f.cursor}
	return b
}
