package wire_test

import (
	"testing"

	"github.com/herd-dev/herd/internal/wire"
)

// Lines as clients send them, with the seed paper's example client.
var (
	benchIAMAT   = []byte("IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1479413884.392014450")
	benchWHATSAT = []byte("WHATSAT kiwi.cs.ucla.edu 10 5")
)

func BenchmarkParseIAMAT(b *testing.B) {
	benchmarkParse(b, benchIAMAT, wire.KindIAMAT)
}

func BenchmarkParseWHATSAT(b *testing.B) {
	benchmarkParse(b, benchWHATSAT, wire.KindWHATSAT)
}

func benchmarkParse(b *testing.B, line []byte, kind wire.Kind) {
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		m, err := wire.Parse(line)
		if err != nil || m.Kind != kind {
			b.Fatalf("Parse(%q) = %v, %v", line, m.Kind, err)
		}
	}
	if n := testing.AllocsPerRun(100, func() { wire.Parse(line) }); n != 0 {
		b.Errorf("Parse allocates %v times per line; it must not allocate", n)
	}
}

func BenchmarkAppendAT(b *testing.B) {
	m, err := wire.Parse(benchIAMAT)
	if err != nil {
		b.Fatal(err)
	}
	received := wire.Time{Sec: 1479413884, Nsec: 656143234}
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		buf = wire.AppendAT(buf[:0], "Alford", received, &m)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkAppendPlacesReply(b *testing.B) {
	at := "AT Alford +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1479413884.392014450"
	body := placesBody(5)
	buf := make([]byte, 0, len(at)+len(body)+8)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		buf = wire.AppendPlacesReply(buf[:0], at, body)
	}
}

// placesBody is a Nearby Search answer of n results laid out as Google
// lays it out, with the runs of blank lines the reply folds.
func placesBody(n int) []byte {
	body := []byte("{\n   \"html_attributions\" : [],\n   \"results\" : [\n")
	for i := range n {
		if i > 0 {
			body = append(body, ",\n"...)
		}
		body = append(body, `      {
         "geometry" : {
            "location" : {
               "lat" : 34.0736204,
               "lng" : -118.4003563
            }
         },


         "icon" : "https://maps.gstatic.com/mapfiles/place_api/icons/geocode-71.png",
         "name" : "Beverly Hills",
         "place_id" : "ChIJq0WMPnS7woAR8PiNxYYDTDs",
         "types" : [ "locality", "political" ],
         "vicinity" : "Beverly Hills"
      }`...)
	}
	return append(body, "\n   ],\n   \"status\" : \"OK\"\n}\n\n\n"...)
}
