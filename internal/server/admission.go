package server

import (
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
)

// probationSize bounds the connections that wait to show whether they are
// neighbors (see admission).
const probationSize = 64

// admission decides how a server takes each accepted connection. Within
// limits.max_connections, and limits.max_connections_per_ip for its
// address, a connection is a client's. Past either limit it is put on
// probation: it is served only if its first line opens a peer link, so
// that clients, however many, never lock a neighbor out. Probation holds at
// most probationSize connections; when it is full, the oldest one that has
// sent nothing is closed to make room, and a neighbor, which sends its
// HELLO (or its TLS handshake) at once, is never that one. Only when every
// connection on probation has sent something is the newcomer refused
// instead; those are read and settled within DeadAfter.
type admission struct {
	maxPerIP int
	slots    chan struct{} // one per client connection, up to max_connections

	mu        sync.Mutex
	perIP     map[netip.Addr]int // client connections open per address
	probation []probationer      // oldest first
}

// probationer is a connection on probation.
type probationer struct {
	conn net.Conn
	// spoke is set once the connection's first bytes have been read
	// (bytes still in the kernel's buffer count too; see hasDataToRead).
	spoke *atomic.Bool
}

// silent reports whether p has sent nothing at all.
func (p probationer) silent() bool { return !p.spoke.Load() && !hasDataToRead(p.conn) }

func newAdmission(maxConns, maxPerIP int) *admission {
	return &admission{maxPerIP: maxPerIP, slots: make(chan struct{}, maxConns), perIP: map[netip.Addr]int{}}
}

// pass is how a connection was admitted; release gives back what it holds.
type pass struct {
	conn      net.Conn
	ip        netip.Addr
	probation bool // false: it holds a client slot and counts for its address
	// spoke, on probation, is for the connection's reader to set once
	// bytes have come.
	spoke *atomic.Bool
}

// admit takes conn as a client's, or on probation. It may close another
// connection on probation to make room (closed), or refuse conn itself
// (refused: conn is then closed, and nothing is held).
func (a *admission) admit(conn net.Conn) (p pass, closed net.Conn, refused bool) {
	p = pass{conn: conn, ip: remoteIP(conn)}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.perIP[p.ip] < a.maxPerIP {
		select {
		case a.slots <- struct{}{}:
			a.perIP[p.ip]++
			return p, nil, false
		default:
		}
	}
	p.probation, p.spoke = true, new(atomic.Bool)
	if len(a.probation) == probationSize {
		i := slices.IndexFunc(a.probation, probationer.silent)
		if i < 0 {
			conn.Close()
			return pass{}, nil, true
		}
		closed = a.probation[i].conn
		closed.Close()
		a.probation = slices.Delete(a.probation, i, i+1)
	}
	a.probation = append(a.probation, probationer{conn: conn, spoke: p.spoke})
	return p, closed, false
}

// leaveProbation takes conn off probation, if it is on it: its first line
// has come.
func (a *admission) leaveProbation(conn net.Conn) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if i := slices.IndexFunc(a.probation, func(p probationer) bool { return p.conn == conn }); i >= 0 {
		a.probation = slices.Delete(a.probation, i, i+1)
	}
}

// release gives back what p holds, when its connection has ended.
func (a *admission) release(p pass) {
	if p.probation {
		a.leaveProbation(p.conn)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.perIP[p.ip]--; a.perIP[p.ip] == 0 {
		delete(a.perIP, p.ip)
	}
	<-a.slots
}

func remoteIP(conn net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(conn.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// hasDataToRead reports whether conn has bytes waiting in its receive
// buffer (or has been closed by its peer), without reading them and without
// blocking. A connection that cannot tell counts as having data, so it is
// not the one closed.
func hasDataToRead(conn net.Conn) bool {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	waiting := true
	rc.Control(func(fd uintptr) {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		waiting = err != syscall.EAGAIN
	})
	return waiting
}
