package server

import (
	"context"
	"errors"
	"time"

	"github.com/herd-dev/herd/internal/herd"
	"github.com/herd-dev/herd/internal/places"
	"github.com/herd-dev/herd/internal/wire"
)

// ProbeLine is what herd up and herd status send to tell a herd server
// from anything else on an address. It is not a command, so a server
// answers it "? herd-probe" as any invalid line, which no other kind of
// listener would; but it is counted as a probe, and not logged as client
// traffic.
const ProbeLine = "herd-probe"

// handle answers one client line, read at now. Its reply is appended to
// c.replies, whole, and the line and its reply are logged together.
func (c *acceptedConn) handle(ctx context.Context, now time.Time, line []byte, tooLong bool) {
	s := c.s
	if len(line) > s.opt.MaxLineBytes { // read as a possible handshake line
		line, tooLong = line[:s.opt.MaxLineBytes], true
	}
	if string(line) == ProbeLine {
		c.replies = append(append(c.replies, "? "...), ProbeLine+"\n"...)
		s.log.Debug("probed", "remote", c.remote)
		s.opt.Metrics.Command(KindProbe, OutcomeOK, time.Since(now))
		return
	}
	c.replyStart = len(c.replies)
	kind, outcome := c.dispatch(ctx, now, line, tooLong)
	s.logExchange(now, c.remote, line, c.replies[c.replyStart:], kind, outcome)
	s.opt.Metrics.Command(kind, outcome, time.Since(now))
}

// dispatch runs one client command and says what it was and what became of
// it.
func (c *acceptedConn) dispatch(ctx context.Context, now time.Time, line []byte, tooLong bool) (Kind, Outcome) {
	if tooLong {
		c.s.log.Warn("line too long; answered with its first bytes", "remote", c.remote, "max", c.s.opt.MaxLineBytes)
		c.invalid(line)
		return KindInvalid, OutcomeRejected
	}
	m, err := wire.Parse(line)
	switch {
	case err != nil:
		c.invalid(line)
		return KindInvalid, OutcomeRejected
	case m.Kind == wire.KindIAMAT:
		return KindIAMAT, c.iamat(now, line, &m)
	case m.Kind == wire.KindWHATSAT:
		return KindWHATSAT, c.whatsat(ctx, now, line, &m)
	default:
		return KindAT, c.injected(now, line, &m)
	}
}

// iamat takes a client's location.
func (c *acceptedConn) iamat(now time.Time, line []byte, m *wire.Msg) Outcome {
	s := c.s
	if err := s.opt.Store.Err(); err != nil {
		// No acknowledgement for an update a crash could take back: the
		// client gets "? line" and takes it to another server.
		c.invalid(line)
		if ok, suppressed := s.notDurableWarnings.Allow(now); ok {
			s.log.Warn("journal has failed: IAMATs are refused until the server restarts on a working disk",
				"err", err, "refused_since_last_warning", suppressed)
		}
		return OutcomeNotDurable
	}
	reply, stored, err := s.node.IAMAT(wire.UnixTime(now.UnixNano()), m)
	if err != nil {
		c.invalid(line)
		return c.refused(now, err)
	}
	s.stats.IAMAT.Add(1)
	// Even a stale IAMAT waits for the commit: the newer record it lost to
	// may not be durable yet.
	c.needsCommit()
	c.replies = append(append(c.replies, reply...), '\n')
	return outcome(stored)
}

// needsCommit marks the replies from here on as waiting for the journal's
// commit.
func (c *acceptedConn) needsCommit() {
	if !c.dirty {
		c.dirty, c.durableFrom = true, len(c.replies)
	}
}

func outcome(stored bool) Outcome {
	if stored {
		return OutcomeOK
	}
	return OutcomeStale
}

// refused reports a client's update that the node's limits refused: the
// outcome for metrics and, once a minute at most, a warning when the
// client table is full.
func (c *acceptedConn) refused(now time.Time, err error) Outcome {
	switch {
	case errors.Is(err, herd.ErrClientIDTooLong):
		return OutcomeIDTooLong
	case errors.Is(err, herd.ErrClockAhead):
		return OutcomeClockAhead
	}
	if ok, suppressed := c.s.tableFullWarnings.Allow(now); ok {
		c.s.log.Warn("client table is full (limits.max_clients): updates for new clients are refused",
			"max_clients", c.s.node.Limits().MaxClients, "refused_since_last_warning", suppressed)
	}
	return OutcomeClientCap
}

// invalid answers "? " and the line as received.
func (c *acceptedConn) invalid(line []byte) {
	c.s.stats.Invalid.Add(1)
	c.replies = append(append(append(c.replies, "? "...), line...), '\n')
}

// whatsat answers a WHATSAT and returns its outcome for metrics.
func (c *acceptedConn) whatsat(ctx context.Context, now time.Time, line []byte, m *wire.Msg) Outcome {
	s := c.s
	rec, ok := s.node.Lookup(m.Client)
	if !ok {
		c.invalid(line)
		return OutcomeUnknownClient
	}
	s.stats.WHATSAT.Add(1)
	// A slow lookup must not hold back the replies before it.
	if s.opt.PlacesMayBlock && !c.flush() {
		return OutcomeOK
	}
	loc := rec.Location()
	// A lookup under way when shutdown begins still finishes (within the
	// shutdown grace period), so the client gets its reply.
	qctx := context.WithoutCancel(ctx)
	if s.opt.PlacesMayBlock {
		var cancel context.CancelFunc
		qctx, cancel = context.WithTimeout(qctx, s.opt.PlacesTimeout)
		defer cancel()
	}
	c.replies = append(append(c.replies, rec.Line...), '\n')
	bodyStart := len(c.replies)
	err := c.appendPlaces(qctx, places.Query{Lat: loc.Lat, Lng: loc.Lng, RadiusMeters: m.RadiusKm * 1000, Limit: m.Limit})
	result := OutcomeOK
	if err != nil {
		s.stats.PlacesErrors.Add(1)
		s.log.Warn("places lookup failed", "remote", c.remote, "err", err, "latency", time.Since(now))
		c.replies = wire.AppendPlacesBody(c.replies[:bodyStart], places.ErrorBody(err))
		result = OutcomePlacesError
	}
	return result
}

// appendPlaces asks the places provider and appends its answer, folded, to
// c.replies. A provider that can append writes straight into c.replies,
// where the answer is folded in place. On error c.replies is unchanged.
func (c *acceptedConn) appendPlaces(ctx context.Context, q places.Query) error {
	if a, ok := c.s.opt.Places.(places.Appender); ok {
		start := len(c.replies)
		out, err := a.AppendNearby(ctx, c.replies, q)
		if err != nil {
			return err
		}
		c.replies = wire.AppendPlacesBody(out[:start], out[start:])
		return nil
	}
	body, err := c.s.opt.Places.Nearby(ctx, q)
	if err != nil {
		return err
	}
	c.replies = wire.AppendPlacesBody(c.replies, body)
	return nil
}

// injected takes an AT line from a connection that is not an authenticated
// peer: the seed's flooding format. Without a peer secret anyone may flood,
// as in the seed; with one, it is an invalid command and changes nothing.
func (c *acceptedConn) injected(now time.Time, line []byte, m *wire.Msg) Outcome {
	s := c.s
	if len(s.opt.Secret) > 0 {
		s.log.Warn("rejected AT line from an unauthenticated connection", "remote", c.remote)
		c.invalid(line)
		return OutcomeRejected
	}
	if !m.ClientFieldsFit() {
		c.invalid(line)
		return OutcomeRejected
	}
	stored, err := s.node.Offer(wire.UnixTime(now.UnixNano()), herd.NewRecord(line, m))
	if err != nil {
		c.invalid(line)
		c.refused(now, err)
		return OutcomeRejected
	}
	s.stats.Injected.Add(1)
	if stored {
		c.needsCommit()
	}
	s.log.Info("took AT line from a client connection", "remote", c.remote, "stored", stored)
	return outcome(stored)
}
