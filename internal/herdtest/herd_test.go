package herdtest

import (
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/herd-dev/herd/internal/config"
)

var atLine = regexp.MustCompile(`^AT (\S+) ([+-]\d+\.\d{9}) (\S+) (\S+) (\S+)$`)

func now() string {
	t := time.Now()
	return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond())
}

func TestHerd_IAMATFloodsToEveryServer(t *testing.T) {
	h := Start(t, Options{})
	reply := h.Dial("Alford").Ask("IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 " + now())
	m := atLine.FindStringSubmatch(reply)
	if m == nil || m[1] != "Alford" || m[3] != "kiwi.cs.ucla.edu" {
		t.Fatalf("IAMAT reply = %q", reply)
	}
	for name := range SeedTopology {
		Eventually(t, 3*time.Second, func() error {
			got, err := LookupAT(h.Addr(name), "kiwi.cs.ucla.edu")
			if err != nil {
				return err
			}
			if got != reply {
				return fmt.Errorf("%s: %q, want %q", name, got, reply)
			}
			return nil
		})
	}
}

func TestHerd_WHATSATAnswersInNearbySearchFormat(t *testing.T) {
	h := Start(t, Options{})
	reply := h.Dial("Alford").Ask("IAMAT kiwi +34.068930-118.445127 " + now())
	c := h.Dial("Holiday")
	var first, body string
	Eventually(t, 3*time.Second, func() error {
		first, body = c.WhatsAt("kiwi", 10, 5)
		if first != reply {
			return fmt.Errorf("WHATSAT first line %q, want %q", first, reply)
		}
		return nil
	})
	var obj struct {
		Status  string           `json:"status"`
		Token   string           `json:"next_page_token"`
		Results []map[string]any `json:"results"`
	}
	if err := json.Unmarshal([]byte(body), &obj); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, body)
	}
	if obj.Status != "OK" || len(obj.Results) != 5 || obj.Token != "stub-token" || obj.Results[0]["x_unknown_field"] == nil {
		t.Errorf("body: status %q, %d results, token %q, first %v", obj.Status, len(obj.Results), obj.Token, obj.Results[0])
	}
	if strings.Contains(body, "\n\n") {
		t.Error("body holds a blank line")
	}
	q := h.Stub.Queries()
	last := q[len(q)-1]
	if last["location"] != "34.06893,-118.445127" || last["radius"] != "10000" || last["key"] != StubKey {
		t.Errorf("upstream query = %v", last)
	}
}

func TestHerd_InvalidCommands(t *testing.T) {
	h := Start(t, Options{})
	c := h.Dial("Ball")
	for _, bad := range []string{
		"HELLO", "IAMAT kiwi.cs.ucla.edu", "WHATSAT kiwi.cs.ucla.edu 51 5", "WHATSAT nobody 10 5",
		"IAMAT k +91+0 1.5", "WHATSAT k 10 21", "", "  spaced   out  ", "HERD-ACK - 5", "IAMAT k\x00 +1+1 x\xff",
		"BOGUS\r", // CR is white space, but part of the line as received
	} {
		if got := c.Ask(bad); got != "? "+bad {
			t.Errorf("reply to %q = %q; want %q", bad, got, "? "+bad)
		}
	}
	// The connection is still usable.
	if got := c.Ask("IAMAT k +1+1 1.5"); !strings.HasPrefix(got, "AT Ball ") {
		t.Errorf("after invalid commands, IAMAT reply = %q", got)
	}
}

func TestHerd_PipelinedSplitAndHalfClosed(t *testing.T) {
	h := Start(t, Options{})
	c := h.Dial("Welsh")
	// Several commands in one packet, one split over packets, and a last
	// line with no newline before the client shuts its sending side.
	c.Send("IAMAT a +1+1 1.1\nIAMAT b +2+2 2.2\nBOGUS\nIAM")
	time.Sleep(20 * time.Millisecond) // force a second packet; not a synchronisation
	c.Send("AT c\t+3+3   3.3\r\nIAMAT d +4+4 4.4")
	c.Conn.(*net.TCPConn).CloseWrite()
	want := []string{"AT Welsh +", "AT Welsh +", "? BOGUS", "AT Welsh +", "AT Welsh +"}
	clients := []string{"a", "b", "", "c", "d"}
	for i, prefix := range want {
		got := c.Line()
		if !strings.HasPrefix(got, prefix) || clients[i] != "" && !strings.Contains(got, " "+clients[i]+" ") {
			t.Errorf("reply %d = %q; want %s... for %q", i, got, prefix, clients[i])
		}
	}
	if l, err := c.ReadLine(2 * time.Second); err == nil {
		t.Errorf("extra reply %q; want the server to close", l)
	}
}

func TestHerd_NewestWinsAcrossServers(t *testing.T) {
	h := Start(t, Options{})
	newer := h.Dial("Ball").Ask("IAMAT kiwi +1+1 2000.5")
	h.Dial("Alford").Ask("IAMAT kiwi +2+2 1000.5")
	for name := range SeedTopology {
		Eventually(t, 3*time.Second, func() error {
			got, err := LookupAT(h.Addr(name), "kiwi")
			if got != newer {
				return fmt.Errorf("%s: %q %v; want %q", name, got, err, newer)
			}
			return nil
		})
	}
}

func TestHerd_ServerDownThenBackCatchesUp(t *testing.T) {
	h := Start(t, Options{})
	h.Stop("Hamilton")
	var replies []string
	for i := range 20 {
		replies = append(replies, h.Dial("Alford").Ask(fmt.Sprintf("IAMAT c%d +1+1 %s", i, now())))
	}
	// Alford's updates reach Holiday the long way round while Hamilton is down.
	Eventually(t, 3*time.Second, func() error {
		got, _ := LookupAT(h.Addr("Holiday"), "c19")
		if got != replies[19] {
			return fmt.Errorf("Holiday has %q", got)
		}
		return nil
	})
	h.Restart("Hamilton")
	for i, want := range replies {
		Eventually(t, 5*time.Second, func() error {
			got, err := LookupAT(h.Addr("Hamilton"), fmt.Sprintf("c%d", i))
			if got != want {
				return fmt.Errorf("Hamilton: %q %v; want %q", got, err, want)
			}
			return nil
		})
	}
	// And a new update made at Holiday reaches it too.
	fresh := h.Dial("Holiday").Ask("IAMAT fresh +1+1 " + now())
	Eventually(t, 5*time.Second, func() error {
		got, _ := LookupAT(h.Addr("Hamilton"), "fresh")
		if got != fresh {
			return fmt.Errorf("Hamilton has %q", got)
		}
		return nil
	})
}

func TestHerd_StateSurvivesRestartOfEveryServer(t *testing.T) {
	h := Start(t, Options{})
	reply := h.Dial("Alford").Ask("IAMAT kiwi +1+1 " + now())
	h.StopAll()
	for name := range SeedTopology {
		h.Restart(name)
	}
	for name := range SeedTopology {
		Eventually(t, 3*time.Second, func() error {
			got, err := LookupAT(h.Addr(name), "kiwi")
			if got != reply {
				return fmt.Errorf("%s: %q %v; want %q", name, got, err, reply)
			}
			return nil
		})
	}
}

func TestHerd_SlowUpstreamBlocksNoOneElse(t *testing.T) {
	h := Start(t, Options{Configure: func(c *config.Config) { c.Places.Timeout = config.Duration(300 * time.Millisecond) }})
	h.Stub.SetDelay(time.Hour)
	h.Dial("Alford").Ask("IAMAT kiwi +1+1 " + now())
	slow := h.Dial("Alford")
	slow.Send("WHATSAT kiwi 10 5\n")
	// Other clients are served meanwhile.
	if got := h.Dial("Alford").Ask("IAMAT other +1+1 " + now()); !strings.HasPrefix(got, "AT Alford ") {
		t.Fatalf("IAMAT during a slow lookup = %q", got)
	}
	first := slow.Line()
	body := slow.UntilBlank()
	if !strings.HasPrefix(first, "AT Alford ") || !strings.Contains(body, `"UNKNOWN_ERROR"`) || !strings.Contains(body, "error_message") {
		t.Errorf("timed-out WHATSAT = %q\n%s", first, body)
	}
	if got := slow.Ask("IAMAT again +1+1 " + now()); !strings.HasPrefix(got, "AT Alford ") {
		t.Errorf("connection after a timed-out lookup answers %q", got)
	}
}

func TestHerd_PeerSecretRejectsStrangers(t *testing.T) {
	h := Start(t, Options{Secret: "s3cret-s3cret-s3cret"})
	reply := h.Dial("Alford").Ask("IAMAT kiwi +1+1 " + now())
	Eventually(t, 3*time.Second, func() error {
		got, _ := LookupAT(h.Addr("Holiday"), "kiwi")
		if got != reply {
			return fmt.Errorf("authenticated peers did not flood: Holiday has %q", got)
		}
		return nil
	})
	stranger := h.Dial("Ball")
	forged := "AT Alford +0.000000000 kiwi +9+9 " + now()
	if got := stranger.Ask(forged); got != "? "+forged {
		t.Errorf("forged AT got %q; want it rejected", got)
	}
	// A HELLO without the proof only a secret-holder can make is refused
	// like any invalid command, and so is what would follow it.
	stranger = h.Dial("Ball")
	for _, bad := range []string{
		"HERD-HELLO 1 Welsh Ball 1 0 0123456789abcdef0123456789abcdef -",
		"HERD-HELLO 1 Welsh Ball 1 0 0123456789abcdef0123456789abcdef " + strings.Repeat("ab", 32),
		"HERD-AUTH 00",
		"HERD-AT - 1 " + forged,
	} {
		if got := stranger.Ask(bad); got != "? "+bad {
			t.Errorf("stranger's %q got %q; want it rejected", bad, got)
		}
	}
	if got, _ := LookupAT(h.Addr("Ball"), "kiwi"); got != reply {
		t.Errorf("after forgeries Ball has %q; want %q", got, reply)
	}
}

func TestHerd_InjectedATWithoutSecretFloods(t *testing.T) {
	h := Start(t, Options{})
	line := "AT Elsewhere +0.500000000 kiwi +1+1 " + now()
	c := h.Dial("Alford")
	c.Send(line + "\n")
	Eventually(t, 3*time.Second, func() error {
		got, _ := LookupAT(h.Addr("Ball"), "kiwi")
		if got != line {
			return fmt.Errorf("Ball has %q", got)
		}
		return nil
	})
}

func TestHerd_LongLineIsCutAndServerGoesOn(t *testing.T) {
	h := Start(t, Options{Configure: func(c *config.Config) { c.Limits.MaxLineBytes = 1000 }})
	c := h.Dial("Alford")
	c.Send(strings.Repeat("x", 1<<20) + "\n")
	if got := c.Line(); got != "? "+strings.Repeat("x", 1000) {
		t.Errorf("reply to a long line has %d bytes; want the first 1000 echoed", len(got))
	}
	if got := c.Ask("IAMAT k +1+1 1.5"); !strings.HasPrefix(got, "AT Alford ") {
		t.Errorf("after a long line, IAMAT got %q", got)
	}
}

func TestHerd_CatchUpOfManyUpdates(t *testing.T) {
	h := Start(t, Options{})
	h.Stop("Hamilton")
	h.Stop("Holiday") // Hamilton's other way in: it must learn from Alford alone
	c := h.Dial("Alford")
	const n = 5000
	last := pipelineIAMATs(t, c, "many", n)
	h.Restart("Hamilton")
	Eventually(t, 10*time.Second, func() error {
		if got := h.Member("Hamilton").Node.Len(); got != n {
			return fmt.Errorf("Hamilton knows %d clients; want %d", got, n)
		}
		return nil
	})
	if got, err := LookupAT(h.Addr("Hamilton"), fmt.Sprintf("many%d", n-1)); got != last {
		t.Errorf("Hamilton has %q, %v; want %q", got, err, last)
	}
}

// TestHerd_ReconnectSendsOnlyWhatChanged: a server that restarts after its
// neighbors' tables stopped changing is sent nothing it already has, however
// many clients the herd knows.
func TestHerd_ReconnectSendsOnlyWhatChanged(t *testing.T) {
	h := Start(t, Options{})
	c := h.Dial("Alford")
	const n = 2000
	pipelineIAMATs(t, c, "quiet", n)
	h.WaitQuiet(10 * time.Second)
	h.Stop("Hamilton")
	moved := h.Dial("Alford").Ask("IAMAT quiet7 +2+2 5000.5") // one change while it is down
	sentBefore := map[string]uint64{}
	for _, name := range []string{"Alford", "Holiday"} {
		sentBefore[name] = h.Member(name).Server.Stats().CatchUpSent
	}
	h.Restart("Hamilton")
	Eventually(t, 5*time.Second, func() error {
		got, err := LookupAT(h.Addr("Hamilton"), "quiet7")
		if got != moved {
			return fmt.Errorf("Hamilton has %q, %v; want %q", got, err, moved)
		}
		return nil
	})
	var sent uint64
	for name, before := range sentBefore {
		sent += h.Member(name).Server.Stats().CatchUpSent - before
	}
	if sent > 2 {
		t.Errorf("neighbors sent %d catch-up records to a restarted server that missed 1 update of %d clients", sent, n)
	}
}

// TestHerd_SecondRestartSendsOnlyWhatChanged: a link that opens with nothing
// new to send must not lose the receiver's place, or the next restart
// resends the whole table.
func TestHerd_SecondRestartSendsOnlyWhatChanged(t *testing.T) {
	h := Start(t, Options{})
	c := h.Dial("Alford")
	const n = 3000
	pipelineIAMATs(t, c, "twice", n)
	h.WaitQuiet(10 * time.Second)
	h.Stop("Holiday")
	h.Restart("Holiday")
	h.WaitQuiet(10 * time.Second)
	if err := h.Member("Holiday").Store.Compact(); err != nil {
		t.Fatal(err)
	}
	h.Stop("Holiday")
	moved := h.Dial("Alford").Ask("IAMAT twice7 +2+2 99999.5")
	h.Restart("Holiday")
	Eventually(t, 5*time.Second, func() error {
		if got, err := LookupAT(h.Addr("Holiday"), "twice7"); got != moved {
			return fmt.Errorf("Holiday has %q, %v; want %q", got, err, moved)
		}
		return nil
	})
	h.WaitQuiet(10 * time.Second)
	if in := h.Member("Holiday").Server.Stats().FloodIn; in > 2 {
		t.Errorf("after its second restart Holiday was sent %d records for 1 missed update", in)
	}
}

// pipelineIAMATs sends n IAMATs for clients prefix0... in one write, reads
// every reply, and returns the last.
func pipelineIAMATs(t *testing.T, c *Client, prefix string, n int) (last string) {
	t.Helper()
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "IAMAT %s%d +1+1 %d.5\n", prefix, i, 1000+i)
	}
	c.Send(b.String())
	for range n {
		last = c.Line()
	}
	return last
}
