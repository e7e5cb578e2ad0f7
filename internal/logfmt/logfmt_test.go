package logfmt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestHandler_Format(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewHandler(&buf, nil)).With("server", "Alford")
	log.Info("in", "remote", "127.0.0.1:5", "line", []byte("IAMAT k\x00\xff é +1+1 1.5"), "n", 3, "took", 2*time.Millisecond,
		"err", errors.New(`bad "x"`), "ok", true, "empty", "", "eq", "a=b")
	log.Debug("hidden")
	log.WithGroup("g").Warn("multi\nline", slog.Group("sub", "k", 1.5))
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines; want 2 (debug is below the level):\n%s", len(lines), buf.String())
	}
	_, first, _ := strings.Cut(lines[0], " ")
	want := `level=INFO msg=in server=Alford remote=127.0.0.1:5 line="IAMAT k\x00\xff é +1+1 1.5" n=3 took=2ms err="bad \"x\"" ok=true empty="" eq="a=b"`
	if first != want {
		t.Errorf("line = %s\nwant   %s", first, want)
	}
	if !strings.HasPrefix(lines[0], "time=") {
		t.Errorf("no time in %q", lines[0])
	}
	_, second, _ := strings.Cut(lines[1], " ")
	if want := `level=WARN msg="multi\nline" server=Alford g.sub.k=1.5`; second != want {
		t.Errorf("line = %s\nwant   %s", second, want)
	}
}

func TestJSONHandler_Format(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewJSONHandler(&buf, slog.LevelDebug)).With("server", "Alford")
	log.Info("in", "remote", "127.0.0.1:5", "line", []byte("IAMAT k\x00\xff é +1+1 1.5"), "n", 3, "took", 2*time.Millisecond,
		"err", errors.New(`bad "x"`), "ok", true, "empty", "", "f", math.Inf(1), "at", time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC))
	log.WithGroup("g").Debug("multi\nline", slog.Group("sub", "k", 1.5))
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines; want 2:\n%s", len(lines), buf.String())
	}
	for i, want := range []string{
		`"level":"INFO","msg":"in","server":"Alford","remote":"127.0.0.1:5","line":"IAMAT k\u0000\ufffd é +1+1 1.5","n":3,"took":"2ms","err":"bad \"x\"","ok":true,"empty":"","f":"+Inf","at":"2026-01-02T03:04:05.000000006Z"}`,
		`"level":"DEBUG","msg":"multi\nline","server":"Alford","g.sub.k":1.5}`,
	} {
		var record map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &record); err != nil {
			t.Errorf("line %d is not JSON: %v\n%s", i+1, err, lines[i])
		}
		if _, ok := record["time"].(string); !ok || !strings.HasPrefix(lines[i], `{"time":"`) {
			t.Errorf("line %d does not start with its time: %s", i+1, lines[i])
		}
		if _, rest, _ := strings.Cut(lines[i], `Z",`); rest != want {
			t.Errorf("line %d = %s\nwant    ...%s", i+1, lines[i], want)
		}
	}
}

// quotingCases include strings longer than 8 bytes with a byte to escape
// at each place of an 8-byte word, for the word-at-a-time scan.
var quotingCases = func() []string {
	cases := []string{"plain", "two words", "tab\there", "quote\"back\\slash", "\x00\x01\x1f\x7f", "é✓", "\xff\xfe",
		"ok\xe2\x82", "a\u2028b", "<&>", "", "IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1479413884.392014450"}
	for _, special := range []string{"\n", "\"", "\\", "\x7f", "\x1f", "é", "\xff", " ", "="} {
		for at := range 17 {
			cases = append(cases, strings.Repeat("x", at)+special+strings.Repeat("y", 20))
		}
	}
	return cases
}()

func TestAppendString_ReadsBackWithUnquote(t *testing.T) {
	for _, s := range quotingCases {
		checkAppendString(t, s)
	}
}

func TestAppendQuoted_JSONReadsBackLikeEncodingJSON(t *testing.T) {
	for _, s := range quotingCases {
		checkAppendQuotedJSON(t, s)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range quotingCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkAppendString(t, s)
		checkAppendQuotedJSON(t, s)
	})
}

// checkAppendString checks that s is written as it is where logfmt allows,
// and otherwise quoted, in printable characters, so that strconv.Unquote
// gives s back.
func checkAppendString(t *testing.T, s string) {
	t.Helper()
	q := string(appendString(nil, s))
	if qb := string(appendString(nil, []byte(s))); qb != q {
		t.Errorf("appendString(%q) = %s as a string but %s as bytes", s, q, qb)
	}
	if !needsQuoting(s) {
		if q != s {
			t.Errorf("appendString(%q) = %s; want it unquoted", s, q)
		}
		return
	}
	got, err := strconv.Unquote(q)
	if err != nil || got != s {
		t.Errorf("appendString(%q) = %s, which reads back as %q, %v", s, q, got, err)
	}
	if !utf8.ValidString(q) || strings.ContainsFunc(q, func(r rune) bool { return !strconv.IsPrint(r) }) {
		t.Errorf("appendString(%q) = %q, which holds characters that do not print", s, q)
	}
}

// checkAppendQuotedJSON checks that s is written as a JSON string that
// reads back as it does from encoding/json.
func checkAppendQuotedJSON(t *testing.T, s string) {
	t.Helper()
	q := appendQuoted(nil, s, true)
	if qb := appendQuoted(nil, []byte(s), true); string(qb) != string(q) {
		t.Errorf("appendQuoted(json %q) = %s as a string but %s as bytes", s, q, qb)
	}
	var got, want string
	if err := json.Unmarshal(q, &got); err != nil {
		t.Errorf("appendQuoted(json %q) = %s, not JSON: %v", s, q, err)
		return
	}
	std, _ := json.Marshal(s)
	json.Unmarshal(std, &want)
	if got != want {
		t.Errorf("appendQuoted(json %q) = %s, which reads back as %q; encoding/json gives %q", s, q, got, want)
	}
}

// BenchmarkHandler logs as the server does (a record built without slog's
// caller lookup, handed to the handler) a client's line, and a peer batch
// of about 4 KB or 32 KB: HERD-AT lines of about 100 bytes each.
func BenchmarkHandler(b *testing.B) {
	line := []byte("IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1479413884.392014450")
	for _, format := range []struct {
		name string
		new  func(io.Writer, slog.Leveler) *Handler
	}{{"text", NewHandler}, {"json", NewJSONHandler}} {
		h := format.new(io.Discard, nil).WithAttrs([]slog.Attr{slog.String("server", "Alford")})
		b.Run(format.name+"/client", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r := slog.NewRecord(time.Now(), slog.LevelInfo, "in", 0)
				r.AddAttrs(slog.String("remote", "127.0.0.1:5555"), slog.Any("line", line))
				h.Handle(context.Background(), r)
			}
		})
		for _, size := range []int{4 << 10, 32 << 10} {
			batch := peerBatch(size)
			b.Run(fmt.Sprintf("%s/batch-%dK", format.name, size>>10), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(batch)))
				for b.Loop() {
					r := slog.NewRecord(time.Now(), slog.LevelInfo, "in", 0)
					r.AddAttrs(slog.String("peer", "Ball"), slog.Any("lines", batch))
					h.Handle(context.Background(), r)
				}
			})
		}
	}
}

// peerBatch returns HERD-AT lines, each ending in a newline, of about size
// bytes together.
func peerBatch(size int) []byte {
	var batch []byte
	for i := 0; len(batch) < size; i++ {
		batch = fmt.Appendf(batch, "HERD-AT 4294967297 %d Alford +0.263873386 client-%d +34.068930-118.445127 1479413884.392014450 4e1c0a7f\n", i, i)
	}
	return batch
}

// BenchmarkAppendQuoted_PlacesBody quotes a WHATSAT reply's JSON body, the
// longest value herd logs.
func BenchmarkAppendQuoted_PlacesBody(b *testing.B) {
	var body []byte
	body = append(body, "{\n   \"html_attributions\" : [],\n   \"results\" : [\n"...)
	for range 5 {
		body = append(body, `      {
         "geometry" : { "location" : { "lat" : 34.01945, "lng" : -118.49119 } },
         "name" : "Santa Monica",
         "place_id" : "geonames:5393212",
         "types" : [ "locality", "political" ],
         "vicinity" : "CA, United States"
      },
`...)
	}
	body = append(body, "   ],\n   \"status\" : \"OK\"\n}"...)
	buf := make([]byte, 0, 2*len(body))
	for _, json := range []bool{false, true} {
		b.Run(map[bool]string{false: "text", true: "json"}[json], func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				buf = appendQuoted(buf[:0], body, json)
			}
		})
	}
}

func TestAppendTime_MatchesTimeFormat(t *testing.T) {
	base := time.Date(2026, 11, 25, 20, 42, 23, 0, time.FixedZone("X", 3600))
	for _, d := range []time.Duration{0, time.Millisecond, 999 * time.Millisecond, 999999999, time.Second + 5*time.Millisecond, -time.Nanosecond, 40 * 24 * time.Hour} {
		tm := base.Add(d)
		want := tm.UTC().Format("2006-01-02T15:04:05.000Z07:00")
		if got := string(appendTime(nil, tm)); got != want {
			t.Errorf("appendTime(%v) = %s, want %s", tm, got, want)
		}
	}
}

func BenchmarkAppendQuoted_Batch(b *testing.B) {
	batch := peerBatch(4 << 10)
	buf := make([]byte, 0, 2*len(batch))
	b.SetBytes(int64(len(batch)))
	for b.Loop() {
		buf = appendQuoted(buf[:0], batch, true)
	}
}
