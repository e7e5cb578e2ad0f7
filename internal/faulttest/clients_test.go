package faulttest

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/herd-dev/herd/internal/config"
	"github.com/herd-dev/herd/internal/herdtest"
)

// readOnce plays the most common client of this protocol (the CS131
// graders and many seed-era student clients): it sends request, shuts down
// its sending side, and calls read() once.
func readOnce(addr, request string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte(request)); err != nil {
		return "", err
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		return "", err
	}
	buf := make([]byte, 256<<10)
	n, err := conn.Read(buf)
	if n == 0 {
		return "", err
	}
	return string(buf[:n]), nil
}

// A client that reads once after a half-close gets each reply whole, on
// every provider and for replies of every size: WHATSAT bodies with 20
// places, AT lines for long client ids, and "? " echoes of long lines.
func TestOutsideClient_ReadOnceGetsTheWholeReply(t *testing.T) {
	if testing.Short() {
		t.Skip("hundreds of connections")
	}
	longID := strings.Repeat("k", 9000)
	longLine := "FOO " + strings.Repeat("x", 9000)
	for _, provider := range []string{config.ProviderOffline, config.ProviderGoogle} {
		t.Run(provider, func(t *testing.T) {
			h := herdtest.Start(t, herdtest.Options{
				Topology: map[string][]string{"Solo": nil},
				Configure: func(c *config.Config) {
					c.Places.Provider = provider
					c.Limits.MaxClientIDBytes = 16 << 10
				},
			})
			addr := h.Addr("Solo")
			h.Dial("Solo").Ask("IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 " + nowTime())
			cases := []struct {
				request string
				check   func(reply string) error
			}{
				{"WHATSAT kiwi.cs.ucla.edu 50 20\n", wholeWHATSAT},
				{"IAMAT " + longID + " +34.068930-118.445127 " + nowTime() + "\n", func(r string) error {
					return wholeLine(r, "AT Solo ", len(longID)+40)
				}},
				{longLine + "\n", func(r string) error { return wholeLine(r, "? "+longLine, len(longLine)+3) }},
			}
			for _, c := range cases {
				split := 0
				var last error
				for range 100 {
					reply, err := readOnce(addr, c.request)
					if err != nil {
						t.Fatalf("read: %v", err)
					}
					if err := c.check(reply); err != nil {
						split++
						last = err
					}
				}
				if split > 0 {
					t.Errorf("%q: %d of 100 single reads got a partial reply; last: %v", head(c.request), split, last)
				}
			}
		})
	}
}

func head(s string) string { return s[:min(len(s), 40)] }

// wholeWHATSAT checks that reply is one whole WHATSAT reply: an AT line,
// then JSON that parses with more than 5 results, then a blank line.
func wholeWHATSAT(reply string) error {
	first, body, ok := strings.Cut(reply, "\n")
	if !ok || !strings.HasPrefix(first, "AT ") {
		return fmt.Errorf("first line %q", head(reply))
	}
	body, ok = strings.CutSuffix(body, "\n\n")
	if !ok {
		return fmt.Errorf("%d bytes, no blank line at the end", len(reply))
	}
	var obj struct {
		Results []json.RawMessage `json:"results"`
	}
	if err := json.Unmarshal([]byte(body), &obj); err != nil {
		return fmt.Errorf("%d bytes: %v", len(reply), err)
	}
	if len(obj.Results) <= 5 {
		return fmt.Errorf("%d results, want more than 5", len(obj.Results))
	}
	return nil
}

// wholeLine checks that reply is one line starting with prefix, of at
// least minLen bytes with its newline.
func wholeLine(reply, prefix string, minLen int) error {
	if !strings.HasPrefix(reply, prefix) || !strings.HasSuffix(reply, "\n") || strings.Count(reply, "\n") != 1 || len(reply) < minLen {
		return fmt.Errorf("%d bytes starting %q", len(reply), head(reply))
	}
	return nil
}

// A client that sends its next command in pieces, and waits for the reply
// to the previous one before it goes on, gets that reply at once.
func TestOutsideClient_ChunkedSenderIsAnsweredAtOnce(t *testing.T) {
	h := herdtest.Start(t, herdtest.Options{Topology: map[string][]string{"Solo": nil}})
	for _, tt := range []struct{ send, want string }{
		{"IAMAT kiwi +34.068930-118.445127 " + nowTime() + "\nWHATS", "AT Solo "},
		{"FOO\nBA", "? FOO"},
	} {
		c := h.Dial("Solo")
		c.Send(tt.send)
		line, err := c.ReadLine(2 * time.Second)
		if err != nil || !strings.HasPrefix(line, tt.want) {
			t.Errorf("after %q: read %q, %v; want a line starting %q at once", tt.send, line, err, tt.want)
		}
	}
}
