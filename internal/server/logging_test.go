package server

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/herd-dev/herd/internal/logfmt"
)

// TestLogPeerLines_RecordsFitTheCollectors logs peer lines of every kind in
// both log formats: no record is over maxLogRecord bytes, however many of
// its bytes need escaping, the records hold every line, and a line too long
// for a record of its own is cut and says how long it was.
func TestLogPeerLines_RecordsFitTheCollectors(t *testing.T) {
	line := func(id string) string { return "HERD-AT 12 AT Alford +0.000000001 " + id + " +1+1 1.5" }
	var plain, escaped []string
	for range 400 {
		plain = append(plain, line(strings.Repeat("p", 40)))
		escaped = append(escaped, line(strings.Repeat("\x01\"\xff", 40)))
	}
	long := line(strings.Repeat("\x01", 3000))
	for _, tc := range []struct {
		name     string
		lines    []string
		wantCuts int
	}{
		{"plain", plain, 0},
		{"escaped", escaped, 0},
		{"one line longer than a record", []string{plain[0], long, plain[1]}, 1},
	} {
		for _, format := range []string{"text", "json"} {
			t.Run(tc.name+"/"+format, func(t *testing.T) {
				var out bytes.Buffer
				h := logfmt.NewHandler(&out, slog.LevelDebug)
				if format == "json" {
					h = logfmt.NewJSONHandler(&out, slog.LevelDebug)
				}
				s := &Server{log: slog.New(h).With("server", "Alford")}
				s.logPeerLines(time.Now(), slog.LevelInfo, "in", "Hamilton", []byte(strings.Join(tc.lines, "\n")+"\n"),
					slog.Int("stored", 3), slog.Int("duplicates", 0))
				records := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
				cuts := 0
				for _, r := range records {
					if len(r) > maxLogRecord {
						t.Errorf("a record of %d bytes; want at most %d", len(r), maxLogRecord)
					}
					if strings.Contains(r, "line_bytes") {
						cuts++
					}
				}
				if cuts != tc.wantCuts {
					t.Errorf("%d records cut a line; want %d", cuts, tc.wantCuts)
				}
				if !strings.Contains(records[len(records)-1], "stored") {
					t.Errorf("the last record does not end with the counts: %.200s", records[len(records)-1])
				}
				if format == "json" && tc.wantCuts == 0 {
					var got []string
					for _, r := range records {
						var rec struct{ Lines string }
						if err := json.Unmarshal([]byte(r), &rec); err != nil {
							t.Fatal(err)
						}
						got = append(got, rec.Lines)
					}
					// JSON writes a byte of invalid UTF-8 as U+FFFD.
					want := strings.ToValidUTF8(strings.Join(tc.lines, "\n"), "\uFFFD")
					if strings.Join(got, "\n") != want {
						t.Errorf("the records do not hold the lines, in order")
					}
				}
			})
		}
	}
}
