package logfmt

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"
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

func TestAppendQuoted_ReadsBackWithUnquote(t *testing.T) {
	for _, s := range []string{"plain", "two words", "tab\there", "quote\"back\\slash", "\x00\x01\x7f", "é✓", "\xff\xfe", ""} {
		q := string(appendQuoted(nil, []byte(s)))
		if !needsQuoting(s) {
			if q != s {
				t.Errorf("appendQuoted(%q) = %s; want it unquoted", s, q)
			}
			continue
		}
		got, err := strconv.Unquote(q)
		if err != nil || got != s {
			t.Errorf("appendQuoted(%q) = %s, which reads back as %q, %v", s, q, got, err)
		}
	}
}

func BenchmarkHandler(b *testing.B) {
	line := []byte("IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1479413884.392014450")
	for _, tc := range []struct {
		name string
		h    slog.Handler
	}{{"logfmt", NewHandler(io.Discard, nil)}, {"slog.TextHandler", slog.NewTextHandler(io.Discard, nil)}} {
		b.Run(tc.name, func(b *testing.B) {
			log := slog.New(tc.h).With("server", "Alford")
			b.ReportAllocs()
			for b.Loop() {
				log.Info("in", "remote", "127.0.0.1:34022", "line", line)
			}
		})
	}
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
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		buf = appendQuoted(buf[:0], body)
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
