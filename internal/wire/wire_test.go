package wire

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

func TestParse_Valid(t *testing.T) {
	tests := []struct {
		line string
		want Msg
	}{
		{"IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1479413884.392014450", Msg{
			Kind: KindIAMAT, Client: []byte("kiwi.cs.ucla.edu"), Location: []byte("+34.068930-118.445127"),
			Time: []byte("1479413884.392014450"), Loc: Location{34.06893, -118.445127}, T: Time{1479413884, 392014450}}},
		{" \t IAMAT\vk\x00\xff\f-90+180 0.5\r\n", Msg{
			Kind: KindIAMAT, Client: []byte("k\x00\xff"), Location: []byte("-90+180"), Time: []byte("0.5"),
			Loc: Location{-90, 180}, T: Time{0, 500000000}}},
		{"IAMAT c +0-0 1479413884", Msg{
			Kind: KindIAMAT, Client: []byte("c"), Location: []byte("+0-0"), Time: []byte("1479413884"),
			T: Time{1479413884, 0}}},
		{"IAMAT c +1." + strings.Repeat("0", 29) + "+1." + strings.Repeat("0", 29) + " " + strings.Repeat("0", 22) + "1479413884", Msg{
			Kind: KindIAMAT, Client: []byte("c"), Location: []byte("+1." + strings.Repeat("0", 29) + "+1." + strings.Repeat("0", 29)),
			Time: []byte(strings.Repeat("0", 22) + "1479413884"), Loc: Location{1, 1}, T: Time{1479413884, 0}}}, // the longest fields, 64 and 32 bytes
		{"WHATSAT kiwi.cs.ucla.edu 10 5", Msg{Kind: KindWHATSAT, Client: []byte("kiwi.cs.ucla.edu"), RadiusKm: 10, Limit: 5}},
		{"WHATSAT k 50 20", Msg{Kind: KindWHATSAT, Client: []byte("k"), RadiusKm: 50, Limit: 20}},
		{"WHATSAT k 0.001 01", Msg{Kind: KindWHATSAT, Client: []byte("k"), RadiusKm: 0.001, Limit: 1}},
		{"WHATSAT k 0.0000000000000000001 1", Msg{Kind: KindWHATSAT, Client: []byte("k"), RadiusKm: 1e-19, Limit: 1}},
		{"WHATSAT k 050.000000000000000000 1", Msg{Kind: KindWHATSAT, Client: []byte("k"), RadiusKm: 50, Limit: 1}},
		{"AT Alford +0.263873386 k +1." + strings.Repeat("0", 70) + "+1 " + strings.Repeat("0", 30) + "1", Msg{ // longer than a client may send: earlier versions stored such records
			Kind: KindAT, Server: []byte("Alford"), Skew: []byte("+0.263873386"), Client: []byte("k"),
			Location: []byte("+1." + strings.Repeat("0", 70) + "+1"), Time: []byte(strings.Repeat("0", 30) + "1"),
			Loc: Location{1, 1}, T: Time{1, 0}}},
		{"AT Alford +0.263873386 kiwi +34.068930-118.445127 1479413884.392014450", Msg{
			Kind: KindAT, Server: []byte("Alford"), Skew: []byte("+0.263873386"), Client: []byte("kiwi"),
			Location: []byte("+34.068930-118.445127"), Time: []byte("1479413884.392014450"),
			Loc: Location{34.06893, -118.445127}, T: Time{1479413884, 392014450}}},
	}
	for _, tt := range tests {
		got, err := Parse([]byte(tt.line))
		if err != nil || !equalMsg(got, tt.want) {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tt.line, got, err, tt.want)
		}
	}
}

func TestParse_Invalid(t *testing.T) {
	tests := []struct {
		line string
		want error
	}{
		{"", ErrEmpty},
		{" \t\r", ErrEmpty},
		{"HELLO", ErrUnknown},
		{"iamat k +1+1 1", ErrUnknown},
		{"IAMAT kiwi.cs.ucla.edu", ErrFields},
		{"IAMAT k +1+1 1 extra", ErrFields},
		{"IAMAT a b c d e f g h i j", ErrFields},
		{"IAMAT k 34.0-118.0 1", ErrLocation},
		{"IAMAT k +34.0 1", ErrLocation},
		{"IAMAT k +90.0000001+0 1", ErrLocation},
		{"IAMAT k +90.00000000000000000000001+0 1", ErrLocation},
		{"IAMAT k -91+0 1", ErrLocation},
		{"IAMAT k +0+180.5 1", ErrLocation},
		{"IAMAT k +1e1+0 1", ErrLocation},
		{"IAMAT k ++1+0 1", ErrLocation},
		{"IAMAT k +1+2+3 1", ErrLocation},
		{"IAMAT k +1.2.3+0 1", ErrLocation},
		{"IAMAT k +.+0 1", ErrLocation},
		{"IAMAT k +1+1 1.1234567890", ErrTime},
		{"IAMAT k +1+1 1.", ErrTime},
		{"IAMAT k +1+1 -1.5", ErrTime},
		{"IAMAT k +1+1 .5", ErrTime},
		{"IAMAT k +1+1 99999999999999999999.5", ErrTime},
		{"IAMAT k +1+1 1e9", ErrTime},
		{"IAMAT k +1." + strings.Repeat("5", 61) + "+1 1", ErrFieldTooLong},           // 65 bytes
		{"IAMAT k +1+1 " + strings.Repeat("0", 23) + "1520023934.5", ErrFieldTooLong}, // 35 bytes
		{"WHATSAT kiwi.cs.ucla.edu 51 5", ErrRadius},
		{"WHATSAT k 0 5", ErrRadius},
		{"WHATSAT k -1 5", ErrRadius},
		{"WHATSAT k 50.0000000000000000000001 5", ErrRadius},
		{"WHATSAT k 50.000000000000001 5", ErrRadius},
		{"WHATSAT k 0.0000000000000000000 5", ErrRadius},
		{"IAMAT k +90.000000000000001-118 1", ErrLocation},
		{"IAMAT k +0-180.000000000000001 1", ErrLocation},
		{"IAMAT k +1234567890123456789+0 1", ErrLocation},
		{"WHATSAT k 1e1 5", ErrRadius},
		{"WHATSAT k NaN 5", ErrRadius},
		{"WHATSAT k 10 21", ErrLimit},
		{"WHATSAT k 10 0", ErrLimit},
		{"WHATSAT k 10 5.0", ErrLimit},
		{"WHATSAT k 10 +5", ErrLimit},
		{"WHATSAT k 10", ErrFields},
		{"AT Alford 0.263873386 k +1+1 1", ErrSkew},
		{"AT Alford +0.26387338 k +1+1 1", ErrSkew},
		{"AT Alford +0.263873386 k +1+1", ErrFields},
	}
	for _, tt := range tests {
		if got, err := Parse([]byte(tt.line)); !errors.Is(err, tt.want) {
			t.Errorf("Parse(%q) = %+v, %v; want error %v", tt.line, got, err, tt.want)
		}
	}
}

func TestAppendSkew(t *testing.T) {
	tests := []struct {
		received, sent Time
		want           string
	}{
		{Time{1479413884, 656887836}, Time{1479413884, 392014450}, "+0.264873386"},
		{Time{1479413884, 392014450}, Time{1479413884, 656887836}, "-0.264873386"},
		{Time{5, 0}, Time{5, 0}, "+0.000000000"},
		{Time{10, 1}, Time{5, 999999999}, "+4.000000002"},
		{Time{1700000000, 0}, Time{1<<63 - 1, 999999999}, "-9223372035154775807.999999999"},
	}
	for _, tt := range tests {
		if got := string(AppendSkew(nil, tt.received, tt.sent)); got != tt.want {
			t.Errorf("AppendSkew(%v, %v) = %s; want %s", tt.received, tt.sent, got, tt.want)
		}
	}
}

func TestAppendAT(t *testing.T) {
	m, err := Parse([]byte("IAMAT  kiwi.cs.ucla.edu\t+34.068930-118.445127   1479413884.392014450"))
	if err != nil {
		t.Fatal(err)
	}
	got := string(AppendAT(nil, "Alford", Time{1479413884, 656887836}, &m))
	want := "AT Alford +0.264873386 kiwi.cs.ucla.edu +34.068930-118.445127 1479413884.392014450"
	if got != want {
		t.Errorf("AppendAT = %q; want %q", got, want)
	}
}

func TestReceiveTime_InvertsAppendSkew(t *testing.T) {
	tests := []struct{ received, sent Time }{
		{Time{Sec: 1479413884, Nsec: 656263836}, Time{Sec: 1479413884, Nsec: 392014450}},
		{Time{Sec: 1479413884, Nsec: 1}, Time{Sec: 1479413885, Nsec: 999999999}}, // client ahead
		{Time{Sec: 1700000000}, Time{Sec: 0}},
		{Time{Sec: 5}, Time{Sec: 5}},
	}
	for _, tt := range tests {
		skew := AppendSkew(nil, tt.received, tt.sent)
		if got, ok := ReceiveTime(tt.sent, skew); !ok || got != tt.received {
			t.Errorf("ReceiveTime(%+v, %q) = %+v, %v; want %+v", tt.sent, skew, got, ok, tt.received)
		}
	}
	for _, bad := range []string{"", "+1", "0.000000000", "+1.00000000", "+1234567890123456789.000000000"} {
		if _, ok := ReceiveTime(Time{Sec: 1}, []byte(bad)); ok {
			t.Errorf("ReceiveTime of skew %q succeeded", bad)
		}
	}
}

func TestTime_Add(t *testing.T) {
	tests := []struct {
		t     Time
		nanos int64
		want  Time
	}{
		{Time{Sec: 10, Nsec: 5}, 0, Time{Sec: 10, Nsec: 5}},
		{Time{Sec: 10, Nsec: 999_999_999}, 1, Time{Sec: 11}},
		{Time{Sec: 10}, -1, Time{Sec: 9, Nsec: 999_999_999}},
		{Time{Sec: 1_700_000_000, Nsec: 500_000_000}, 86400e9 + 600_000_000, Time{Sec: 1_700_086_401, Nsec: 100_000_000}},
	}
	for _, tt := range tests {
		if got := tt.t.Add(tt.nanos); got != tt.want {
			t.Errorf("%+v.Add(%d) = %+v; want %+v", tt.t, tt.nanos, got, tt.want)
		}
	}
}

func TestUnixTime(t *testing.T) {
	for _, tt := range []struct {
		nanos int64
		want  Time
	}{{1_500_000_000_123, Time{1500, 123}}, {-1, Time{-1, 999999999}}, {0, Time{}}} {
		if got := UnixTime(tt.nanos); got != tt.want {
			t.Errorf("UnixTime(%d) = %v; want %v", tt.nanos, got, tt.want)
		}
	}
}

func TestParse_NoAllocs(t *testing.T) {
	line := []byte("IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1479413884.392014450")
	if n := testing.AllocsPerRun(100, func() { _, _ = Parse(line) }); n != 0 {
		t.Errorf("Parse allocates %v times per IAMAT; want 0", n)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1479413884.392014450",
		"WHATSAT kiwi.cs.ucla.edu 10 5",
		"AT Alford +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1479413884.392014450",
		"WHATSAT k 0.5 20", "IAMAT k -90-180 0", "  IAMAT \x00 +1+1 1.123456789 ",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		m, err := Parse(line)
		if err != nil {
			return
		}
		formatted := m.AppendFormat(nil)
		again, err := Parse(formatted)
		if err != nil {
			t.Fatalf("Parse(Format(Parse(%q))) = %v", line, err)
		}
		if !equalMsg(m, again) {
			t.Fatalf("round trip of %q: %+v became %+v", line, m, again)
		}
		if !bytes.Equal(again.AppendFormat(nil), formatted) {
			t.Fatalf("Format is not stable for %q", line)
		}
	})
}

func equalMsg(a, b Msg) bool {
	return a.Kind == b.Kind && bytes.Equal(a.Server, b.Server) && bytes.Equal(a.Skew, b.Skew) &&
		bytes.Equal(a.Client, b.Client) && bytes.Equal(a.Location, b.Location) && bytes.Equal(a.Time, b.Time) &&
		a.Loc == b.Loc && a.T == b.T && a.RadiusKm == b.RadiusKm && a.Limit == b.Limit
}

func TestAppendPlacesReply_FoldsNewlines(t *testing.T) {
	const at = "AT Alford +0.500000000 kiwi +1+2 3.5"
	tests := []struct{ body, want string }{
		{"{}", "{}"},
		{"{\n}\n", "{\n}"},
		{"{\n\n\n   \"a\" : 1,\n\n}\n\n\n", "{\n   \"a\" : 1,\n}"},
		{"\n\n{}", "\n{}"},
		{"a\n\nb\n\n\nc\nd", "a\nb\nc\nd"},
		{"\n\n\n", ""},
		{"", ""},
	}
	for _, tt := range tests {
		want := "x" + at + "\n" + tt.want + "\n\n"
		if got := string(AppendPlacesReply([]byte("x"), at, []byte(tt.body))); got != want {
			t.Errorf("AppendPlacesReply(%q) = %q, want %q", tt.body, got, want)
		}
		// The body already in place after the AT line, as a provider that
		// appends leaves it.
		buf := []byte("x" + at + "\n" + tt.body)
		line := len(buf) - len(tt.body)
		if got := string(AppendPlacesBody(buf[:line], buf[line:])); got != want {
			t.Errorf("AppendPlacesBody(%q) in place = %q, want %q", tt.body, got, want)
		}
	}
}

// FuzzParseDecimal checks the fast path of parseDecimal against
// strconv.ParseFloat: every decimal it accepts must have ParseFloat's value.
func FuzzParseDecimal(f *testing.F) {
	for _, s := range []string{"0", "34.068930", "118.445127", ".5", "12.", "90.000000000000001",
		"123456789012345", "1234567890123456", "0.000000000000001", "999999999999999.", "7.000000000000000000001"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := parseDecimal([]byte(s))
		if !ok {
			return
		}
		if v, err := strconv.ParseFloat(s, 64); err != nil || v != d.value {
			t.Fatalf("parseDecimal(%q) = %v; ParseFloat gives %v, %v", s, d.value, v, err)
		}
	})
}

func TestMsg_IsCanonical(t *testing.T) {
	tests := []struct {
		line string
		want bool
	}{
		{"AT Alford +0.500000000 kiwi +1+2 3.5", true},
		{"IAMAT kiwi +1+2 3.5", true},
		{"AT Alford +0.500000000 kiwi +1+2 3.5 ", false},
		{" AT Alford +0.500000000 kiwi +1+2 3.5", false},
		{"AT Alford  +0.500000000 kiwi +1+2 3.5", false},
		{"AT Alford\t+0.500000000 kiwi +1+2 3.5", false},
		{"AT Alford +0.500000000 kiwi +1+2 3.5\r", false},
		{"WHATSAT kiwi 10 5", false},
	}
	for _, tt := range tests {
		m, err := Parse([]byte(tt.line))
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.line, err)
		}
		if got := m.IsCanonical([]byte(tt.line)); got != tt.want {
			t.Errorf("IsCanonical(%q) = %v, want %v", tt.line, got, tt.want)
		}
		if got := string(m.AppendFormat(nil)) == tt.line; got != tt.want && m.Kind != KindWHATSAT {
			t.Errorf("AppendFormat(%q) round trip = %v, disagrees with IsCanonical", tt.line, got)
		}
	}
}

func TestHasByteBelowBang(t *testing.T) {
	for b := range 256 {
		for pos := range 8 {
			var word [8]byte
			for i := range word {
				word[i] = 'a' | 0x80*byte(i%2) // bytes above '!', some with the high bit set
			}
			word[pos] = byte(b)
			w := uint64(0)
			for i := 7; i >= 0; i-- {
				w = w<<8 | uint64(word[i])
			}
			if got, want := hasByteBelowBang(w), b < '!'; got != want {
				t.Fatalf("hasByteBelowBang(% x) = %v; want %v", word, got, want)
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 1_000_000 {
		w := r.Uint64()
		want := false
		for i := range 8 {
			want = want || byte(w>>(8*i)) < '!'
		}
		if got := hasByteBelowBang(w); got != want {
			t.Fatalf("hasByteBelowBang(%#016x) = %v; want %v", w, got, want)
		}
	}
}
