package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/herd-dev/herd/internal/herd"
	"github.com/herd-dev/herd/internal/peer"
	"github.com/herd-dev/herd/internal/wire"
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

// runLink keeps this server's outbound link to one neighbor up until ctx is
// cancelled, redialing after every failure.
func (s *Server) runLink(ctx context.Context, peerName, addr string) {
	backoff := minBackoff
	for ctx.Err() == nil {
		start := time.Now()
		err := s.linkOnce(ctx, peerName, addr)
		if ctx.Err() != nil {
			return
		}
		s.updateLink(peerName, func(l *LinkStatus) {
			if l.OutUp {
				l.Since = time.Now()
			}
			l.OutUp = false
			l.LastError = err.Error()
		})
		if time.Since(start) > 10*maxBackoff {
			backoff = minBackoff
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		s.log.Info("peer link failed; redialing", "peer", peerName, "err", err, "in", wait)
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
func (s *Server) linkOnce(ctx context.Context, peerName, addr string) error {
	conn, err := s.opt.Dial(ctx, addr)
	if err != nil {
		return fmt.Errorf("dial %s: %w", addr, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() }) // shutdown cuts a write in progress
	defer stop()
	if s.opt.TLS != nil {
		cfg := s.opt.TLS.Clone()
		cfg.ServerName = peerName
		tc := tls.Client(conn, cfg)
		tc.SetDeadline(time.Now().Add(s.opt.DeadAfter))
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("tls with %s: %w", peerName, err)
		}
		conn = tc
	}
	br := bufio.NewReaderSize(conn, readBufferSize)
	catchUpEnd := s.node.Head()
	epoch := s.opt.Store.Epoch()
	sess, cursor, welcomeLate, err := s.dialHandshake(conn, br, peerName, epoch, catchUpEnd)
	if err != nil {
		return err
	}
	if s.lostRecords(peerName, cursor, catchUpEnd) {
		if s.renewEpoch(epoch) {
			return errors.New("epoch renewed after lost records; redialing")
		}
		cursor = 0 // no new epoch: send everything on this link at least
	}
	s.log.Info("peer link up", "peer", peerName, "direction", "out", "addr", addr, "resume_after", cursor, "head", catchUpEnd)
	s.updateLink(peerName, func(l *LinkStatus) {
		l.OutUp, l.Since, l.LastError = true, time.Now(), ""
		l.Reconnects++
		l.Sent, l.Acked = cursor, cursor
	})
	defer s.log.Info("peer link down", "peer", peerName, "direction", "out")

	linkCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	readErr := make(chan error, 1)
	if !s.goSafe(func() {
		readErr <- s.readAcks(conn, br, sess, peerName, welcomeLate)
		cancel()
	}) {
		return errors.New("server shutting down")
	}
	defer func() { conn.Close() }() // unblocks readAcks before the deferred cancel returns

	watch, unwatch := s.node.Watch()
	defer unwatch()
	// Ticking at half the heartbeat keeps every silence under one heartbeat.
	heartbeat := time.NewTicker(s.opt.Heartbeat / 2)
	defer heartbeat.Stop()
	pacer := time.NewTimer(linkPace)
	pacer.Stop()
	defer pacer.Stop()
	var (
		recs      = make([]*herd.Record, 0, feedBatch)
		out       = make([]byte, 0, writeChunk+4096)
		body      = make([]byte, 0, 128)
		lastWrite = time.Now()
	)
	// linkDown reports why the link ended: shutdown, or what the reader saw.
	linkDown := func() error {
		conn.Close()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return <-readErr
	}
	write := func() error {
		if len(out) == 0 {
			return nil
		}
		out = sess.Seal(out)
		s.logTraffic("out", slog.String("peer", peerName), slog.Any("lines", out))
		err := s.writeWithProgress(conn, out)
		out, lastWrite = out[:0], time.Now()
		return err
	}
	for {
		skip := peerName
		if cursor < catchUpEnd {
			skip = "" // catching up: the neighbor may have lost what it sent us
		}
		var next uint64
		recs, next = s.node.Changes(recs[:0], cursor, feedBatch, skip)
		progressed := next != cursor
		if progressed {
			for _, r := range recs {
				body = peer.AppendUpdate(body[:0], r.Seq, r.Line)
				out = sess.Append(out, peer.KeyAT, body)
			}
			if len(recs) == 0 || recs[len(recs)-1].Seq != next {
				body = strconv.AppendUint(body[:0], next, 10)
				out = sess.Append(out, peer.KeyMark, body)
			}
			s.stats.FloodOut.Add(uint64(len(recs)))
			if cursor < catchUpEnd {
				s.stats.CatchUpSent.Add(uint64(len(recs)))
			}
			cursor = next
			s.updateLink(peerName, func(l *LinkStatus) { l.Sent = cursor })
			if len(out) < writeChunk {
				continue // gather more before writing
			}
		}
		wrote := len(out) > 0
		if err := write(); err != nil {
			return fmt.Errorf("write to %s: %w", peerName, err)
		}
		if progressed {
			continue
		}
		if wrote {
			pacer.Reset(linkPace)
			select {
			case <-linkCtx.Done():
				return linkDown()
			case <-pacer.C:
			}
			continue
		}
		select {
		case <-linkCtx.Done():
			return linkDown()
		case <-watch:
		case <-heartbeat.C:
			if time.Since(lastWrite) >= s.opt.Heartbeat/2 {
				out = sess.Append(out, peer.KeyPing, nil)
				if err := write(); err != nil {
					return fmt.Errorf("write to %s: %w", peerName, err)
				}
			}
		}
	}
}

// lostRecords reports whether cursor, the neighbor's cursor into this
// server's change feed, shows that the data directory lost records the
// neighbor had read. That happens when journal segments are lost, or the
// directory is restored from a backup, while META keeps its epoch: this
// process then numbers its records from a block an earlier one used, and
// resuming from the cursor would skip them. The signs are a cursor past the
// head, or, before this process has linked to the neighbor, past where its
// numbering began.
func (s *Server) lostRecords(peerName string, cursor, head uint64) bool {
	runStart := s.node.RunStart()
	s.mu.Lock()
	first := s.links[peerName] != nil && s.links[peerName].Reconnects == 0
	s.mu.Unlock()
	if cursor <= head && (!first || cursor <= runStart) {
		return false
	}
	s.log.Error("neighbor has read records this server's data directory no longer holds",
		"peer", peerName, "resume_after", cursor, "head", head, "run_start", runStart)
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

// progressChunk is how much of a link write must cross within DeadAfter.
const progressChunk = 4 << 10

// writeWithProgress writes p in pieces, each with its own DeadAfter
// deadline: a link is dead when it stops moving, not when a large batch
// takes longer than DeadAfter to cross a slow network.
func (s *Server) writeWithProgress(conn net.Conn, p []byte) error {
	for len(p) > 0 {
		n := min(len(p), progressChunk)
		conn.SetWriteDeadline(time.Now().Add(s.opt.DeadAfter))
		if _, err := conn.Write(p[:n]); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// welcomeWait is how long a link without a peer secret waits for WELCOME
// before it streams anyway. Without a secret nothing in WELCOME is needed
// to start, only its cursor, which saves resending what the neighbor has.
const welcomeWait = time.Second

// dialHandshake sends HELLO, checks WELCOME and answers AUTH. It returns the
// session, the neighbor's cursor into this server's change feed, and
// whether WELCOME is still to come (see welcomeWait).
func (s *Server) dialHandshake(conn net.Conn, br *bufio.Reader, peerName string, epoch, head uint64) (sess *peer.Session, cursor uint64, welcomeLate bool, err error) {
	open := len(s.opt.Secret) == 0
	wait := s.opt.DeadAfter
	if open {
		wait = min(wait, welcomeWait)
	}
	conn.SetDeadline(time.Now().Add(wait))
	defer conn.SetDeadline(time.Time{})
	h := peer.Hello{From: s.opt.Name, To: peerName, Epoch: epoch, Head: head, Nonce: peer.NewNonce()}
	h.Proof = peer.HelloProof(s.opt.Secret, h)
	out := append(h.Format(), '\n')
	s.log.Info("out", "peer", peerName, "line", out[:len(out)-1])
	if open { // AUTH needs nothing from WELCOME: send it at once
		sess = peer.NewSession(nil, h, "", 0, true)
		auth := peer.KeyAuth + " " + sess.AuthProof()
		s.log.Info("out", "peer", peerName, "line", auth)
		out = append(append(out, auth...), '\n')
	}
	if _, err := conn.Write(out); err != nil {
		return nil, 0, false, fmt.Errorf("hello to %s: %w", peerName, err)
	}
	line, err := readPeerLine(br)
	var ne net.Error
	if open && errors.As(err, &ne) && ne.Timeout() {
		s.log.Warn("neighbor has not answered HELLO; streaming the whole change feed", "peer", peerName, "waited", wait)
		return sess, 0, true, nil
	}
	if err != nil {
		return nil, 0, false, fmt.Errorf("welcome from %s: %w", peerName, err)
	}
	s.log.Info("in", "peer", peerName, "line", line)
	w, err := peer.ParseWelcome(line)
	if err != nil || w.From != peerName {
		return nil, 0, false, fmt.Errorf("%s refused the link: %q", peerName, line)
	}
	if open {
		return sess, w.Cursor, false, nil
	}
	sess = peer.NewSession(s.opt.Secret, h, w.Nonce, w.Cursor, true)
	if err := peer.CheckProof(w.Proof, sess.WelcomeProof()); err != nil {
		s.log.Error("neighbor failed authentication: check HERD_PEER_SECRET", "peer", peerName)
		return nil, 0, false, fmt.Errorf("%s: %w", peerName, err)
	}
	auth := peer.KeyAuth + " " + sess.AuthProof()
	s.log.Info("out", "peer", peerName, "line", auth)
	if _, err := conn.Write([]byte(auth + "\n")); err != nil {
		return nil, 0, false, fmt.Errorf("auth to %s: %w", peerName, err)
	}
	return sess, w.Cursor, false, nil
}

// readAcks reads the neighbor's acknowledgements until the link fails. A
// neighbor that stays silent past DeadAfter is dead, even if TCP says
// nothing (a black hole).
func (s *Server) readAcks(conn net.Conn, br *bufio.Reader, sess *peer.Session, peerName string, welcomeLate bool) error {
	var acked uint64 // by the latest ACK, counted once its seal checks out
	for {
		conn.SetReadDeadline(time.Now().Add(s.opt.DeadAfter))
		line, err := readPeerLine(br)
		if err != nil {
			return fmt.Errorf("read from %s: %w", peerName, err)
		}
		if welcomeLate && bytes.HasPrefix(line, []byte(peer.KeyWelcome)) {
			s.log.Info("in", "peer", peerName, "line", line)
			welcomeLate = false
			continue
		}
		s.logTraffic("in", slog.String("peer", peerName), slog.Any("line", line))
		kw, body, sealed, err := sess.Receive(line)
		if err != nil || kw != "" && kw != peer.KeyAck {
			return fmt.Errorf("%s sent %q: %w", peerName, line, peer.ErrMalformed)
		}
		if kw == peer.KeyAck {
			if acked, err = peer.ParseSeq(body); err != nil {
				return fmt.Errorf("%s sent %q: %w", peerName, line, err)
			}
		}
		if sealed {
			s.updateLink(peerName, func(l *LinkStatus) { l.Acked = acked })
		}
	}
}

// maxPeerLine bounds a peer line: an AT line of the longest client id a
// configuration allows (config.MaxLineBytesLimit), its sequence number and
// MAC. It keeps every stored record well inside store.MaxEntrySize.
const maxPeerLine = 512 << 10

func readPeerLine(br *bufio.Reader) ([]byte, error) {
	var long []byte
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long, line...)
			if len(long) > maxPeerLine {
				return nil, errors.New("peer line too long")
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		if long != nil {
			line = append(long, line...)
		}
		return wire.TrimSpace(line), nil
	}
}

// servePeer runs an inbound link from a neighbor whose first line was
// HELLO. It returns false if the neighbor could not prove itself: then the
// connection goes on as a client's, and the failed line was answered as one.
func (c *clientConn) servePeer(ctx context.Context, line []byte) bool {
	s := c.s
	s.log.Info("in", "remote", c.remote, "line", line)
	h, err := peer.ParseHello(line)
	_, known := s.opt.Neighbors[h.From]
	if err == nil {
		err = peer.CheckProof(h.Proof, peer.HelloProof(s.opt.Secret, h))
	}
	if err != nil || !known || h.To != s.opt.Name || (s.opt.TLS != nil && !c.tlsPeerIs(h.From)) || !s.nonces.Fresh(h.Nonce) {
		s.log.Warn("rejected peer hello", "remote", c.remote, "from", h.From, "to", h.To, "err", err)
		c.invalid(line)
		return false
	}
	cursor := uint64(0)
	if cur := s.node.Cursor(h.From); cur.Epoch == h.Epoch {
		cursor = cur.Seq
	}
	sess := peer.NewSession(s.opt.Secret, h, peer.NewNonce(), cursor, false)
	w := peer.Welcome{From: s.opt.Name, Cursor: cursor, Nonce: sess.AcceptorNonce(), Proof: sess.WelcomeProof()}
	welcome := w.Format()
	s.log.Info("out", "remote", c.remote, "line", welcome)
	c.replies = append(append(c.replies, welcome...), '\n')
	if !c.flush() {
		return true
	}
	c.readTimeout = s.opt.DeadAfter
	auth, tooLong, err := c.readLine()
	if len(auth) == 0 && err != nil {
		return true
	}
	if proof, perr := peer.ParseAuth(auth); perr != nil || peer.CheckProof(proof, sess.AuthProof()) != nil {
		s.log.Warn("peer failed authentication", "remote", c.remote, "claims", h.From)
		c.readTimeout = s.opt.IdleTimeout
		c.handle(ctx, auth, tooLong)
		return err != nil
	}
	c.receiveFeed(ctx, h, sess)
	return true
}

func (c *clientConn) tlsPeerIs(name string) bool {
	tc, ok := c.conn.(*tls.Conn)
	if !ok {
		return false
	}
	certs := tc.ConnectionState().PeerCertificates
	return len(certs) > 0 && certs[0].VerifyHostname(name) == nil
}

// receiveFeed applies a neighbor's change feed until the link fails, and
// acknowledges it every heartbeat.
func (c *clientConn) receiveFeed(ctx context.Context, h peer.Hello, sess *peer.Session) {
	s := c.s
	from := h.From
	c.readTimeout = s.opt.DeadAfter
	s.log.Info("peer link up", "peer", from, "direction", "in", "remote", c.remote)
	s.setInbound(from, c.conn)
	defer s.clearInbound(from, c.conn)

	var applied atomic.Uint64
	applied.Store(sess.Cursor())
	stopAcks := make(chan struct{})
	defer close(stopAcks)
	s.goSafe(func() { s.sendAcks(c.conn, from, sess, &applied, stopAcks) })

	// Messages are held until the seal that covers them checks out, then
	// applied in batches.
	var (
		held      []*herd.Record // received, not yet sealed
		heldLast  = sess.Cursor()
		heldCatch int
		batch     = make([]*herd.Record, 0, feedBatch) // sealed, to apply
		last      = sess.Cursor()                      // where the neighbor resumed: nothing before it is re-sent
		catchUp   int                                  // records in batch that the neighbor had before it dialed
	)
	apply := func() {
		if len(batch) == 0 && last == applied.Load() {
			return
		}
		stored := s.node.OfferFrom(from, herd.Cursor{Epoch: h.Epoch, Seq: last}, batch)
		s.stats.FloodIn.Add(uint64(len(batch)))
		s.stats.CatchUpReceived.Add(uint64(catchUp))
		catchUp = 0
		s.stats.FloodDup.Add(uint64(len(batch) - stored))
		applied.Store(last)
		batch = batch[:0]
	}
	// Lines read are logged together, when the batch they belong to is
	// applied, or when the link ends.
	var lines []byte
	logLines := func() {
		if len(lines) > 0 {
			s.logTraffic("in", slog.String("peer", from), slog.Any("lines", lines))
			lines = lines[:0]
		}
	}
	defer logLines()
	defer apply()
	for {
		line, err := readPeerLine(c.br)
		if err != nil {
			s.log.Info("peer link down", "peer", from, "direction", "in", "reason", closeReason(err, s.stopped.Load()))
			return
		}
		lines = append(append(lines, line...), '\n')
		if len(lines) >= writeChunk { // a neighbor that never pauses
			logLines()
		}
		kw, body, sealed, err := sess.Receive(line)
		if err != nil {
			s.log.Error("peer link down: message failed authentication", "peer", from, "direction", "in", "remote", c.remote)
			return
		}
		switch kw {
		case "": // a seal
		case peer.KeyAT:
			seq, at, err := peer.ParseUpdate(body)
			m, perr := wire.Parse(at)
			if err != nil || perr != nil || m.Kind != wire.KindAT {
				s.log.Error("peer link down: malformed update", "peer", from, "direction", "in", "line", line)
				return
			}
			held = append(held, herd.NewRecord(at, &m))
			heldLast = seq
			if seq <= h.Head {
				heldCatch++
			}
		case peer.KeyMark:
			if heldLast, err = peer.ParseSeq(body); err != nil {
				s.log.Error("peer link down: malformed mark", "peer", from, "direction", "in", "line", line)
				return
			}
		case peer.KeyPing:
		default:
			s.log.Error("peer link down: unexpected message", "peer", from, "direction", "in", "line", line)
			return
		}
		if sealed {
			batch = append(batch, held...)
			held, last, catchUp = held[:0], heldLast, catchUp+heldCatch
			heldCatch = 0
		} else if len(held) > maxUnsealed {
			s.log.Error("peer link down: too many messages without a seal", "peer", from, "direction", "in")
			return
		}
		if len(batch) >= feedBatch || c.br.Buffered() == 0 {
			logLines()
			apply()
		}
	}
}

// maxUnsealed bounds the messages a receiver holds while it waits for
// their seal; a sender seals every write (at most writeChunk bytes, plus
// one batch).
const maxUnsealed = 4 * feedBatch

// sendAcks tells the neighbor, every heartbeat, how far its feed has been
// applied. It also proves to the neighbor that this end is alive.
func (s *Server) sendAcks(conn net.Conn, peerName string, sess *peer.Session, applied *atomic.Uint64, stop <-chan struct{}) {
	t := time.NewTicker(s.opt.Heartbeat)
	defer t.Stop()
	var line, body []byte
	for {
		body = strconv.AppendUint(body[:0], applied.Load(), 10)
		line = sess.Seal(sess.Append(line[:0], peer.KeyAck, body))
		s.logTraffic("out", slog.String("peer", peerName), slog.Any("lines", line))
		if err := s.writeWithProgress(conn, line); err != nil {
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

// setInbound records conn as the neighbor's inbound link, closing the one it
// replaces (a neighbor that restarted leaves a half-dead connection behind).
func (s *Server) setInbound(peerName string, conn net.Conn) {
	s.mu.Lock()
	old := s.inbound[peerName]
	s.inbound[peerName] = conn
	if l, ok := s.links[peerName]; ok {
		l.InUp = true
	}
	s.mu.Unlock()
	if old != nil {
		old.Close()
	}
}

func (s *Server) clearInbound(peerName string, conn net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inbound[peerName] == conn {
		delete(s.inbound, peerName)
		if l, ok := s.links[peerName]; ok {
			l.InUp = false
		}
	}
}
