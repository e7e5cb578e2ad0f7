package citydata

import (
	"bytes"
	"compress/gzip"
	"reflect"
	"strings"
	"testing"
)

func sample() *Table {
	return &Table{
		Countries: []Country{{"US", "United States"}, {"AD", "Andorra"}},
		Admins:    []string{"CA", "02", ""},
		Features:  []string{"PPL", "PPLC", "PPLX"},
		Cities: []City{
			{ID: 5368361, Name: "Los Angeles", Lat: 3405223, Lng: -11824368, Population: 3971883, Country: 0, Admin: 0, Feature: 0},
			{ID: 3041563, Name: "Andorra la Vella", Lat: 4250779, Lng: 152109, Population: 20430, Country: 1, Admin: 1, Feature: 1},
			{ID: 1, Name: "", Lat: -9000000, Lng: 18000000, Country: 1, Admin: 2, Feature: 2},
			{ID: 4294967295, Name: "Ünïcødé \"name\"", Lat: 9000000, Lng: -18000000, Population: 4294967295},
		},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, tab := range []*Table{sample(), {Countries: []Country{}, Admins: []string{}, Features: []string{}, Cities: []City{}}} {
		var buf bytes.Buffer
		if err := Encode(&buf, tab); err != nil {
			t.Fatal(err)
		}
		got, err := Decode(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, tab) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, tab)
		}
	}
}

func TestEncodeRejectsBadIndex(t *testing.T) {
	tab := sample()
	tab.Cities[0].Feature = 3
	if err := Encode(&bytes.Buffer{}, tab); err == nil || !strings.HasPrefix(err.Error(), "citydata: ") {
		t.Errorf("Encode with an index out of range: err = %v", err)
	}
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func TestDecodeRejectsCorruptData(t *testing.T) {
	var good bytes.Buffer
	if err := Encode(&good, sample()); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(good.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	var raw bytes.Buffer
	raw.ReadFrom(zr)

	tests := []struct {
		name string
		data []byte
	}{
		{"not gzip", []byte("herd-cities\x01")},
		{"empty", gz(nil)},
		{"wrong magic", gz([]byte("herd-cities\x02"))},
		{"truncated", gz(raw.Bytes()[:raw.Len()-3])},
		{"stray bytes", gz(append(bytes.Clone(raw.Bytes()), 0))},
		{"huge count", gz(append([]byte(magic), 0xff, 0xff, 0xff, 0xff, 0x0f))},
		{"truncated gzip", good.Bytes()[:good.Len()/2]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Decode(bytes.NewReader(tt.data)); err == nil || !strings.HasPrefix(err.Error(), "citydata: ") {
				t.Errorf("Decode: err = %v, want a citydata error", err)
			}
		})
	}
}
