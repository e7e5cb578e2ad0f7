package server

import (
	"bufio"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herd-dev/herd/internal/logthrottle"
	"github.com/herd-dev/herd/internal/wire"
)

// LinkStatus is what a server knows of its links with one neighbor.
type LinkStatus struct {
	Peer       string    `json:"peer"`
	Addr       string    `json:"addr"`
	OutUp      bool      `json:"out_up"` // our link to them is authenticated and streaming
	InUp       bool      `json:"in_up"`  // their link to us is
	Since      time.Time `json:"since"`
	Reconnects uint64    `json:"reconnects"`
	Sent       uint64    `json:"sent_seq"`  // our sequence number last sent
	Acked      uint64    `json:"acked_seq"` // and acknowledged
	Behind     uint64    `json:"behind"`    // our head minus Acked
	LastError  string    `json:"last_error,omitempty"`

	UpdatesOut uint64 `json:"updates_out"` // updates sent to the neighbor
	BytesOut   uint64 `json:"bytes_out"`   // bytes of feed sent
	UpdatesIn  uint64 `json:"updates_in"`  // updates received from it
	BytesIn    uint64 `json:"bytes_in"`    // bytes of feed received
	// LastUpdateIn is when an update last arrived from the neighbor; zero
	// if none has since this server started.
	LastUpdateIn time.Time `json:"last_update_in"`
}

// link is what a server knows of its two links with one neighbor: its own
// outbound link, which streams this server's change feed to the neighbor,
// and the inbound one the neighbor opened. The links update it without the
// server's lock.
type link struct {
	peer, addr string

	outUp, inUp atomic.Bool
	since       atomic.Int64 // Unix nanoseconds when the outbound link last went up or down
	reconnects  atomic.Uint64
	sent, acked atomic.Uint64 // our sequence numbers last sent and acknowledged

	updatesOut, bytesOut atomic.Uint64
	updatesIn, bytesIn   atomic.Uint64
	lastUpdateIn         atomic.Int64 // Unix nanoseconds

	refusals logthrottle.Throttle // warnings that the neighbor refused the link
	// propagation records how long updates from the neighbor took to get
	// here (see Metrics.Propagation).
	propagation func(time.Duration)

	mu        sync.Mutex
	lastError string
	inbound   net.Conn // the neighbor's current inbound link
}

// outboundUp records that the outbound link came up, resuming after cursor.
func (l *link) outboundUp(cursor uint64) {
	l.sent.Store(cursor)
	l.acked.Store(cursor)
	l.reconnects.Add(1)
	l.since.Store(time.Now().UnixNano())
	l.outUp.Store(true)
	l.mu.Lock()
	l.lastError = ""
	l.mu.Unlock()
}

// outboundDown records that the outbound link failed with err.
func (l *link) outboundDown(err error) {
	if l.outUp.Swap(false) {
		l.since.Store(time.Now().UnixNano())
	}
	l.mu.Lock()
	l.lastError = err.Error()
	l.mu.Unlock()
}

// setInbound records conn as the neighbor's inbound link, closing the one it
// replaces (a neighbor that restarted leaves a half-dead connection behind).
func (l *link) setInbound(conn net.Conn) {
	l.mu.Lock()
	old := l.inbound
	l.inbound = conn
	l.inUp.Store(true)
	l.mu.Unlock()
	if old != nil {
		old.Close()
	}
}

// clearInbound forgets conn, if it is still the neighbor's inbound link.
func (l *link) clearInbound(conn net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inbound == conn {
		l.inbound = nil
		l.inUp.Store(false)
	}
}

// status reports the link, with head as the server's latest sequence number.
func (l *link) status(head uint64) LinkStatus {
	st := LinkStatus{
		Peer: l.peer, Addr: l.addr,
		OutUp: l.outUp.Load(), InUp: l.inUp.Load(),
		Reconnects: l.reconnects.Load(),
		Sent:       l.sent.Load(), Acked: l.acked.Load(),
		UpdatesOut: l.updatesOut.Load(), BytesOut: l.bytesOut.Load(),
		UpdatesIn: l.updatesIn.Load(), BytesIn: l.bytesIn.Load(),
	}
	if last := l.lastUpdateIn.Load(); last != 0 {
		st.LastUpdateIn = time.Unix(0, last)
	}
	if since := l.since.Load(); since != 0 {
		st.Since = time.Unix(0, since)
	}
	if head > st.Acked && st.Acked > 0 {
		st.Behind = head - st.Acked
	}
	l.mu.Lock()
	st.LastError = l.lastError
	l.mu.Unlock()
	return st
}

// maxPeerLine bounds a peer line: an AT line of the longest client id a
// configuration allows (config.MaxLineBytesLimit), its sequence number and
// MAC. It keeps every stored record well inside store.MaxEntrySize.
const maxPeerLine = 512 << 10

var errPeerLineTooLong = errors.New("server: peer line too long")

// readPeerLine reads one line of a peer link, without white space at its
// ends.
func readPeerLine(br *bufio.Reader) ([]byte, error) {
	var long []byte
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long, line...)
			if len(long) > maxPeerLine {
				return nil, errPeerLineTooLong
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
