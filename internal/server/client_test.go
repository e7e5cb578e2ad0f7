package server

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herd-dev/herd/internal/herd"
)

// recordedMetrics keeps every command a server reports.
type recordedMetrics struct {
	mu   sync.Mutex
	seen []string
}

func (m *recordedMetrics) Command(k Kind, o Outcome, _ time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seen = append(m.seen, k.String()+"/"+o.String())
}

func (m *recordedMetrics) Propagation(string) func(time.Duration) { return func(time.Duration) {} }

// converse sends lines to a fresh connection and returns what it answered
// and what it reported to metrics.
func converse(t *testing.T, opt Options, lines ...string) (replies string, reported []string) {
	t.Helper()
	metrics := &recordedMetrics{}
	opt.Metrics = metrics
	conn := newScriptConn()
	done := serveScript(t, conn, opt)
	conn.reads <- []byte(strings.Join(lines, "\n") + "\n")
	close(conn.reads)
	<-done
	return string(bytes.Join(conn.Writes(), nil)), metrics.seen
}

func TestClient_Commands(t *testing.T) {
	const kiwi = "IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1479413884.392014450"
	tests := []struct {
		name     string
		secret   string
		lines    []string
		want     []string // reply lines, by prefix; "" is the blank line
		reported []string
	}{
		{"iamat", "", []string{kiwi},
			[]string{"AT Alford +"}, []string{"iamat/ok"}},
		{"same iamat twice", "", []string{kiwi, kiwi},
			[]string{"AT Alford ", "AT Alford "}, []string{"iamat/ok", "iamat/stale"}},
		{"whatsat for an unknown client", "", []string{"WHATSAT nobody 10 5"},
			[]string{"? WHATSAT nobody 10 5"}, []string{"whatsat/unknown_client"}},
		{"whatsat", "", []string{kiwi, "WHATSAT kiwi.cs.ucla.edu 10 1"},
			[]string{"AT Alford ", "AT Alford ", `{"html_attributions":[],"results":[{"name":"place 0"`, ""}, []string{"iamat/ok", "whatsat/ok"}},
		{"invalid, echoed byte for byte", "", []string{"  FOO\tbar \r"},
			[]string{"?   FOO\tbar \r"}, []string{"invalid/rejected"}},
		{"radius out of range", "", []string{"WHATSAT kiwi 51 5"},
			[]string{"? WHATSAT kiwi 51 5"}, []string{"invalid/rejected"}},
		{"AT line without a secret is taken", "", []string{"AT Hamilton +0.100000000 kiwi +34.068930-118.445127 1479413884.392014450"},
			nil, []string{"at/ok"}},
		{"AT line without a secret but with a location past a client's cap", "", []string{"AT Hamilton +0.100000000 kiwi +34." + strings.Repeat("0", 70) + "-118 1.0"},
			[]string{"? AT Hamilton"}, []string{"at/rejected"}},
		{"AT line with a secret is refused", "s3cret", []string{"AT Hamilton +0.100000000 kiwi +34.068930-118.445127 1479413884.392014450"},
			[]string{"? AT Hamilton"}, []string{"at/rejected"}},
		{"probe from herd up or status", "", []string{"herd-probe"},
			[]string{"? herd-probe"}, []string{"probe/ok"}},
		{"forged peer line", "s3cret", []string{"HERD-AT 1 AT Hamilton +0.1 kiwi +1+1 1.0"},
			[]string{"? HERD-AT 1"}, []string{"invalid/rejected"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			replies, reported := converse(t, Options{Secret: []byte(tt.secret)}, tt.lines...)
			got := strings.Split(strings.TrimSuffix(replies, "\n"), "\n")
			if replies == "" {
				got = nil
			}
			if len(got) != len(tt.want) {
				t.Fatalf("replies %q; want %d lines starting %q", replies, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(got[i], w) || w == "" && got[i] != "" {
					t.Errorf("reply line %d = %q; want it to start with %q", i, got[i], w)
				}
			}
			if strings.Join(reported, ",") != strings.Join(tt.reported, ",") {
				t.Errorf("metrics saw %v; want %v", reported, tt.reported)
			}
		})
	}
}

// A line over MaxLineBytes is answered with its first MaxLineBytes bytes.
func TestClient_LongLineIsCut(t *testing.T) {
	replies, _ := converse(t, Options{MaxLineBytes: 100}, "FOO "+strings.Repeat("x", 500))
	if want := "? FOO " + strings.Repeat("x", 96) + "\n"; replies != want {
		t.Errorf("reply = %q; want %q", replies, want)
	}
}

// Updates the node's limits refuse are answered "? line", and counted by
// why.
func TestClient_Limits(t *testing.T) {
	now := time.Now()
	ahead := fmt.Sprintf("IAMAT kiwi +1+1 %d.0", now.Add(2*time.Hour).Unix())
	tests := []struct {
		name  string
		lines []string
		want  []string
	}{
		{"long id", []string{"IAMAT " + strings.Repeat("k", 17) + " +1+1 1.0"}, []string{"iamat/id_too_long"}},
		{"clock ahead", []string{ahead}, []string{"iamat/clock_ahead"}},
		{"table full", []string{"IAMAT a +1+1 1.0", "IAMAT b +1+1 1.0", "IAMAT a +1+1 2.0"}, []string{"iamat/ok", "iamat/client_cap", "iamat/ok"}},
		{"injected AT line for a new client at the cap", []string{"IAMAT a +1+1 1.0", "AT Hamilton +0.000000000 b +1+1 1.0"}, []string{"iamat/ok", "at/rejected"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			node := herd.NewNode("Alford", nil)
			node.SetLimits(herd.Limits{MaxClientIDBytes: 16, MaxClockAheadNanos: int64(time.Hour), MaxClients: 1})
			replies, reported := converse(t, Options{Node: node}, tt.lines...)
			if strings.Join(reported, ",") != strings.Join(tt.want, ",") {
				t.Errorf("metrics saw %v; want %v", reported, tt.want)
			}
			for i, line := range strings.Split(strings.TrimSuffix(replies, "\n"), "\n") {
				refused := !strings.HasSuffix(tt.want[i], "/ok")
				if refused && line != "? "+tt.lines[i] || !refused && !strings.HasPrefix(line, "AT Alford ") {
					t.Errorf("reply %d = %q to %q (%s)", i, line, tt.lines[i], tt.want[i])
				}
			}
		})
	}
}

// A huge line is logged cut, with its length, in and out.
func TestClient_HugeLinesAreLoggedCut(t *testing.T) {
	var logs bytes.Buffer
	huge := "FOO " + strings.Repeat("x", 60<<10)
	replies, _ := converse(t, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}, huge)
	if replies != "? "+huge+"\n" {
		t.Fatalf("reply is %d bytes; want the whole line echoed", len(replies))
	}
	if logs.Len() > 4*maxLoggedClientLine {
		t.Errorf("logging a %d-byte line in and out took %d bytes of log; want about %d", len(huge), logs.Len(), 2*maxLoggedClientLine)
	}
	for _, want := range []string{fmt.Sprintf("in_bytes=%d", len(huge)), fmt.Sprintf("out_bytes=%d", len(huge)+2), "kind=invalid outcome=rejected"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log does not say %s:\n%s", want, logs.String())
		}
	}
}

// Each command is logged once, with its reply and what became of it.
func TestClient_EachCommandLoggedWithItsReply(t *testing.T) {
	var logs bytes.Buffer
	converse(t, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))},
		testIAMAT, testIAMAT, "WHATSAT kiwi.cs.ucla.edu 10 1", "HELLO")
	var records []string
	for l := range strings.SplitSeq(logs.String(), "\n") {
		if strings.Contains(l, "msg=client ") {
			records = append(records, l)
		}
	}
	want := [][]string{
		{`in="` + testIAMAT + `"`, `out="AT Alford `, "kind=iamat outcome=ok"},
		{`in="` + testIAMAT + `"`, `out="AT Alford `, "kind=iamat outcome=stale"},
		{`in="WHATSAT kiwi.cs.ucla.edu 10 1"`, `out="AT Alford `, `body="{\"html_attributions\"`, "kind=whatsat outcome=ok"},
		{`in="HELLO" out="? HELLO"`, "kind=invalid outcome=rejected"},
	}
	if len(records) != len(want) {
		t.Fatalf("%d client records; want %d:\n%s", len(records), len(want), logs.String())
	}
	for i, parts := range want {
		for _, p := range parts {
			if !strings.Contains(records[i], p) {
				t.Errorf("record %d = %s\nwant it to hold %s", i, records[i], p)
			}
		}
	}
}

// TestClient_FirstLineHeldToTheClientLimit covers the first line of a
// connection, read under the longer limit of a neighbor's HELLO: a
// client's is still cut to MaxLineBytes, like every later one.
func TestClient_FirstLineHeldToTheClientLimit(t *testing.T) {
	long := "IAMAT " + strings.Repeat("x", 300) + " +1+1 1"
	replies, reported := converse(t, Options{MaxLineBytes: 100}, long, long)
	if want := strings.Repeat("? "+long[:100]+"\n", 2); replies != want {
		t.Errorf("two 313-byte lines with a 100-byte limit got\n%q\nwant\n%q", replies, want)
	}
	if want := []string{"invalid/rejected", "invalid/rejected"}; fmt.Sprint(reported) != fmt.Sprint(want) {
		t.Errorf("reported %v, want %v", reported, want)
	}
	// Likewise a first line that looks like a HELLO and is refused as one.
	hello := "HERD-HELLO " + strings.Repeat("x", 300)
	if replies, _ := converse(t, Options{MaxLineBytes: 100}, hello); replies != "? "+hello[:100]+"\n" {
		t.Errorf("a refused 311-byte HELLO with a 100-byte limit got\n%q\nwant it cut to 100 bytes", replies)
	}
}

// TestLongLines_ShareABoundedMemory covers many clients each holding an
// unfinished long line: together they hold at most LongLineMemory, and a
// line that would pass it is cut and answered "? " with its first bytes,
// while lines that fit are answered whole.
func TestLongLines_ShareABoundedMemory(t *testing.T) {
	const budget = 64 << 10
	s, err := New(Options{Name: "Alford", Node: herd.NewNode("Alford", nil), Places: bigPlaces{}, LongLineMemory: budget})
	if err != nil {
		t.Fatal(err)
	}
	serve := func() (*scriptConn, <-chan struct{}) {
		conn := newScriptConn()
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.serveConn(t.Context(), conn, pass{conn: conn})
		}()
		return conn, done
	}
	line := func(n int) string { return "IAMAT " + strings.Repeat("x", n) }

	// 40 KB past the 4 KiB read buffer: its buffer grows to 64 KiB, of
	// which all but the first 4 KiB counts.
	holder, holderDone := serve()
	holder.reads <- []byte(line(40 << 10)) // no newline: still arriving
	deadline := time.Now().Add(5 * time.Second)
	for s.longLines.Load() < budget-4<<10 {
		if time.Now().After(deadline) {
			t.Fatalf("the unfinished line holds %d bytes of the long-line memory; want %d", s.longLines.Load(), budget-4<<10)
		}
		time.Sleep(time.Millisecond)
	}

	over, overDone := serve()
	over.reads <- []byte(line(40<<10) + "\n")
	close(over.reads)
	<-overDone
	got := string(bytes.Join(over.Writes(), nil))
	if !strings.HasPrefix(got, "? IAMAT xxx") || len(got) >= 40<<10 || !strings.HasSuffix(got, "\n") {
		t.Errorf("a long line past the memory left for long lines got %d bytes %.40q; want it cut and answered", len(got), got)
	}

	holder.reads <- []byte("\n")
	close(holder.reads)
	<-holderDone
	if got := string(bytes.Join(holder.Writes(), nil)); got != "? "+line(40<<10)+"\n" {
		t.Errorf("the line that fit got %d bytes %.40q; want it whole", len(got), got)
	}
	if held := s.longLines.Load(); held != 0 {
		t.Errorf("%d bytes still counted once no line is arriving; want 0", held)
	}
}

// failingStore is a journal whose commits fail, as on a full disk.
type failingStore struct{}

func (failingStore) Commit() error {
	return errors.New("write seg-0000000001.log: no space left on device")
}
func (failingStore) Err() error                        { return nil }
func (failingStore) Epoch() uint64                     { return 1 }
func (failingStore) RenewEpoch(uint64) (uint64, error) { return 1, nil }

// TestFlush_WithholdsWhatIsNotDurable: when the commit behind an update
// fails, its AT reply and every reply after it are withheld and the
// connection closes; replies to the commands before it still go out.
func TestFlush_WithholdsWhatIsNotDurable(t *testing.T) {
	replies, _ := converse(t, Options{Store: failingStore{}},
		"WHATSAT nobody 10 5", "IAMAT kiwi +1+1 1479413884.5", "WHATSAT kiwi 10 1")
	if want := "? WHATSAT nobody 10 5\n"; replies != want {
		t.Errorf("replies %q; want only %q", replies, want)
	}
}
