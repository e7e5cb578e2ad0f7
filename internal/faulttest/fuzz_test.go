package faulttest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/herd-dev/herd/internal/herdtest"
)

// FuzzClientStream sends arbitrary bytes, in two writes, to a server over
// TCP, half-closes, and checks that the server answers and closes the
// connection (rather than hanging or crashing) and still answers an IAMAT
// on a fresh connection. The server has a neighbor and a peer secret, so
// HELLO and AUTH lines reach the peer handshake. Without -fuzz only the
// seeds run.
func FuzzClientStream(f *testing.F) {
	for _, seed := range [][2]string{
		{"IAMAT kiwi +34.068930-118.445127 1479413884.392014450\n", "WHATSAT kiwi 10 5\n"},
		{"IAMAT kiwi +34.06", "8930-118.445127 1.5\r\nWHATSAT kiwi 10 5"},
		{"HERD-HELLO 1 Back Front 1 0 00112233445566778899aabbccddeeff\n", "HERD-AUTH 00\nIAMAT after-auth +1+1 1.5\n"},
		{"HERD-HELLO 1 Front Front 1 0 00112233445566778899aabbccddeeff\n", ""},
		{"AT Back +0.1 kiwi +1+1 2.5\n", "WHATSAT kiwi 1 1\n"},
		{"HERD-AT 1 AT x +0.1 k +1+1 1.5 mac\n", "HERD-PING\nHERD-ACK 5\n"},
		{"\x00\xff\r\n\t\v\f \n", strings.Repeat("x", 70000)},
		{"\x16\x03\x01\x00\xa5", "\x01\x00"}, // the start of a TLS ClientHello
		{"", ""},
		{"\n\n\n", "WHATSAT kiwi 50 20\nWHATSAT kiwi 0 1\nWHATSAT kiwi 1 21\n"},
	} {
		f.Add([]byte(seed[0]), []byte(seed[1]))
	}
	h := herdtest.Start(f, herdtest.Options{Topology: pair, Secret: "fuzz-secret-0123456789"})
	addr := h.Addr("Front")
	var n atomic.Int64

	f.Fuzz(func(t *testing.T, a, b []byte) {
		conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer conn.Close()
		conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write(a); err == nil {
			conn.Write(b) // the server may have closed already: that is fine
		}
		conn.(*net.TCPConn).CloseWrite()
		got, err := readUntilClosed(conn, 5*time.Second)
		if isTimeout(err) {
			t.Fatalf("the server neither answered and closed nor dropped the connection within 5s (%d bytes read)", len(got))
		}
		if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("read: %v", err)
		}

		c := herdtest.DialAddr(t, addr)
		client := fmt.Sprintf("fuzz-probe-%d", n.Add(1))
		if reply := c.Ask(fmt.Sprintf("IAMAT %s +1+1 %s", client, nowTime())); !strings.HasPrefix(reply, "AT Front ") {
			t.Fatalf("after the fuzz input, IAMAT on a fresh connection = %q", reply)
		}
		c.Conn.Close()
	})
}
