package server

import (
	"net"
	"testing"
	"time"
)

// loopbackPair returns both ends of a TCP connection on 127.0.0.1:
// accepted (the server's) and dialed (the client's), dialed from
// 127.0.0.<from>.
func loopbackPair(t *testing.T, ln net.Listener, from byte) (accepted, dialed net.Conn) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, from)}, Timeout: time.Second}
	dialed, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	accepted, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dialed.Close(); accepted.Close() })
	return accepted, dialed
}

func isClosed(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	return err != nil && !isTimeout(err)
}

// A connection on probation that has sent its first line is never the one
// closed to make room, however many silent ones come after it.
func TestAdmission_ProbationKeepsWhoeverHasSpoken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a := newAdmission(0, 1000) // no client slots: everything is on probation
	neighbor, neighborEnd := loopbackPair(t, ln, 1)
	if _, err := neighborEnd.Write([]byte("HERD-HELLO ...\n")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return hasDataToRead(neighbor) })
	if p, _, refused := a.admit(neighbor); refused || !p.probation {
		t.Fatalf("admit = %+v, refused %v; want probation", p, refused)
	}
	var silent []net.Conn
	closed := 0
	for range 3 * probationSize {
		c, _ := loopbackPair(t, ln, 1)
		_, evicted, refused := a.admit(c)
		if refused {
			t.Fatal("a silent newcomer was refused while silent connections could make room")
		}
		if evicted == neighbor {
			t.Fatal("the connection that sent its HELLO was closed to make room for a silent one")
		}
		if evicted != nil {
			closed++
		}
		silent = append(silent, c)
	}
	if want := 2*probationSize + 1; closed != want {
		t.Errorf("%d connections closed to make room; want %d", closed, want)
	}
	if isClosed(neighbor) {
		t.Error("the neighbor's connection is closed")
	}
	// When every connection on probation has spoken, a newcomer is refused.
	for _, c := range silent[len(silent)-probationSize+1:] {
		a.leaveProbation(c)
	}
	for range probationSize - 1 {
		c, end := loopbackPair(t, ln, 1)
		end.Write([]byte("x"))
		waitFor(t, func() bool { return hasDataToRead(c) })
		a.admit(c)
	}
	late, _ := loopbackPair(t, ln, 1)
	if _, evicted, refused := a.admit(late); !refused || evicted != nil {
		t.Errorf("newcomer to a probation full of connections that spoke: refused %v, closed %v; want refused", refused, evicted)
	}
}

// Past max_connections_per_ip an address's connections go on probation,
// while other addresses still get client slots; a slot given back is a
// slot for the next.
func TestAdmission_PerAddressCap(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a := newAdmission(100, 2)
	var passes []pass
	for i, want := range []bool{false, false, true} {
		c, _ := loopbackPair(t, ln, 2)
		p, _, _ := a.admit(c)
		if p.probation != want {
			t.Fatalf("connection %d from 127.0.0.2: probation %v; want %v", i, p.probation, want)
		}
		passes = append(passes, p)
	}
	other, _ := loopbackPair(t, ln, 3)
	if p, _, _ := a.admit(other); p.probation {
		t.Error("127.0.0.3 went on probation for 127.0.0.2's connections")
	}
	a.release(passes[0])
	c, _ := loopbackPair(t, ln, 2)
	if p, _, _ := a.admit(c); p.probation {
		t.Error("after a connection from 127.0.0.2 ended, the next one went on probation")
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

// A connection on probation whose first bytes its reader has already taken
// (a TLS neighbor between its ClientHello and its HELLO, say) has spoken
// too, though nothing waits in its socket.
func TestAdmission_ProbationKeepsWhoeverHasBeenRead(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a := newAdmission(0, 1000)
	tlsNeighbor, _ := loopbackPair(t, ln, 1)
	p, _, _ := a.admit(tlsNeighbor)
	p.spoke.Store(true) // as connReader does once the ClientHello is read
	for range 2 * probationSize {
		c, _ := loopbackPair(t, ln, 1)
		if _, evicted, _ := a.admit(c); evicted == tlsNeighbor {
			t.Fatal("a connection whose first bytes were read was closed to make room for a silent one")
		}
	}
}
