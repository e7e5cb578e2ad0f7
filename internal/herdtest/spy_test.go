package herdtest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// spy accepts every connection to ln and records what is sent to it,
// answering nothing.
type spy struct {
	mu  sync.Mutex
	got bytes.Buffer
}

func startSpy(t *testing.T, ln net.Listener) *spy {
	sp := &spy{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			go func() {
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					sp.mu.Lock()
					sp.got.Write(buf[:n])
					sp.mu.Unlock()
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return sp
}

func (sp *spy) bytes() []byte {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return bytes.Clone(sp.got.Bytes())
}

// Without a secret, a neighbor that accepts the link but never answers
// still receives the flood: the dialer does not need its WELCOME to start.
func TestHerd_FloodsToANeighborThatNeverAnswers(t *testing.T) {
	h := Start(t, Options{Silent: []string{"Welsh"}})
	sp := startSpy(t, h.Listener("Welsh"))
	h.Dial("Alford").Ask("IAMAT kiwi.spy +34.068930-118.445127 " + now())
	Eventually(t, 5*time.Second, func() error {
		if got := sp.bytes(); !bytes.Contains(got, []byte(" kiwi.spy +34.068930-118.445127 ")) {
			return fmt.Errorf("the silent neighbor received %q; want the update", got)
		}
		return nil
	})
	if got := sp.bytes(); bytes.Contains(got, []byte("geonames")) || bytes.Contains(got, []byte("results")) {
		t.Errorf("places crossed a peer link: %q", got)
	}
}

// With a secret, what a server sends a neighbor it cannot authenticate holds
// no secret, and replayed to another server it is refused line by line and
// changes nothing.
func TestHerd_CapturedPeerTrafficReplaysAsInvalid(t *testing.T) {
	const secret = "correct horse battery staple"
	h := Start(t, Options{Secret: secret, Silent: []string{"Welsh"}})
	sp := startSpy(t, h.Listener("Welsh"))
	h.Dial("Alford").Ask("IAMAT kiwi.replay +1+1 " + now())
	Eventually(t, 5*time.Second, func() error {
		if !bytes.Contains(sp.bytes(), []byte("HERD-HELLO")) {
			return fmt.Errorf("nothing captured yet")
		}
		return nil
	})
	captured := sp.bytes()
	if bytes.Contains(captured, []byte(secret)) {
		t.Fatalf("the secret crossed the wire: %q", captured)
	}
	h.WaitQuiet(5 * time.Second)
	heads := map[string]uint64{}
	for _, name := range []string{"Ball", "Alford", "Hamilton"} {
		heads[name] = h.Member(name).Node.Head()
	}
	for target, head := range heads {
		c := h.Dial(target)
		c.Send(string(captured))
		c.Conn.(*net.TCPConn).CloseWrite()
		replies, _ := io.ReadAll(bufio.NewReader(c.Conn))
		lines := strings.Split(strings.TrimSuffix(string(captured), "\n"), "\n")
		got := strings.Split(strings.TrimSuffix(string(replies), "\n"), "\n")
		if len(got) != len(lines) {
			t.Fatalf("%s answered %d lines to %d replayed: %q", target, len(got), len(lines), replies)
		}
		for i, l := range lines {
			if got[i] != "? "+l {
				t.Errorf("%s answered %q to replayed %q", target, got[i], l)
			}
		}
		if now := h.Member(target).Node.Head(); now != head {
			t.Errorf("the replay changed %s: head %d -> %d", target, head, now)
		}
	}
}
