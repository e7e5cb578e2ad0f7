package offline

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/herd-dev/herd/internal/places"
	"github.com/herd-dev/herd/internal/places/offline/internal/citydata"
	"github.com/paulmach/osm"
)

// haversine is the great-circle distance in metres, written apart from the
// package's own so that the tests check it.
func haversine(lat1, lng1, lat2, lng2 float64) float64 {
	const r = 6371008.8
	rad := math.Pi / 180
	dLat, dLng := (lat2-lat1)*rad, (lng2-lng1)*rad
	a := math.Pow(math.Sin(dLat/2), 2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Pow(math.Sin(dLng/2), 2)
	return 2 * r * math.Asin(math.Sqrt(a))
}

// answer is a Nearby Search body; decoding with DisallowUnknownFields checks
// that it holds nothing else.
type answer struct {
	HTMLAttributions []string `json:"html_attributions"`
	Results          []result `json:"results"`
	Status           string   `json:"status"`
}

type result struct {
	Geometry struct {
		Location struct {
			Lat float64 `json:"lat"`
			Lng float64 `json:"lng"`
		} `json:"location"`
	} `json:"geometry"`
	Name                     string   `json:"name"`
	PlaceID                  string   `json:"place_id"`
	Types                    []string `json:"types"`
	Vicinity                 string   `json:"vicinity"`
	CountryCode              string   `json:"country_code"`
	FeatureCode              string   `json:"feature_code"`
	Population               int      `json:"population"`
	InternationalPhoneNumber string   `json:"international_phone_number"`
	FormattedPhoneNumber     string   `json:"formatted_phone_number"`
	OSMOpeningHours          string   `json:"osm_opening_hours"`
	Website                  string   `json:"website"`
}

// decode checks that body is a well-formed, canonically indented answer.
func decode(t *testing.T, body []byte) answer {
	t.Helper()
	var compact, indented bytes.Buffer
	if err := json.Compact(&compact, body); err != nil {
		t.Fatalf("invalid JSON: %v\n%s", err, body)
	}
	if err := json.Indent(&indented, compact.Bytes(), "", "   "); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(indented.Bytes(), body) {
		t.Errorf("body is not indented as json.MarshalIndent would:\n%s", body)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var a answer
	if err := dec.Decode(&a); err != nil {
		t.Fatalf("decode: %v\n%s", err, body)
	}
	return a
}

func nearby(t *testing.T, p *Provider, q places.Query) answer {
	t.Helper()
	body, err := p.Nearby(context.Background(), q)
	if err != nil {
		t.Fatalf("Nearby(%+v): %v", q, err)
	}
	return decode(t, body)
}

func placeIDs(a answer) []string {
	ids := make([]string, len(a.Results))
	for i, r := range a.Results {
		ids[i] = r.PlaceID
	}
	return ids
}

func builtin(t testing.TB) *Provider {
	t.Helper()
	p, err := New(context.Background(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// osmModule locates the module github.com/paulmach/osm, whose testdata
// folder holds small extracts; `go mod download` fetches it.
var osmModule = sync.OnceValues(func() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-json", "github.com/paulmach/osm").Output()
	if err != nil {
		return "", err
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil {
		return "", err
	}
	if mod.Dir == "" {
		return "", errors.New("the module is not downloaded")
	}
	return mod.Dir, nil
})

// osmTestdata returns the path of an extract in github.com/paulmach/osm's
// testdata folder, and skips the test only when the module is absent.
func osmTestdata(t testing.TB, name string) string {
	t.Helper()
	dir, err := osmModule()
	if err != nil {
		t.Skipf("skipping: cannot locate github.com/paulmach/osm (run `go mod download`): %v", err)
	}
	path := filepath.Join(dir, "testdata", name)
	if _, err := os.Stat(path); err != nil {
		t.Skipf("skipping: %v; run `go mod download github.com/paulmach/osm`", err)
	}
	return path
}

// andorra loads the Andorra extract once for every test that needs it.
var andorra = sync.OnceValues(func() (*Provider, error) {
	dir, err := osmModule()
	if err != nil {
		return nil, err
	}
	return New(context.Background(), []string{filepath.Join(dir, "testdata", "andorra-latest.osm.bz2")}, nil)
})

func andorraProvider(t *testing.T) *Provider {
	t.Helper()
	osmTestdata(t, "andorra-latest.osm.bz2") // skips when absent
	p, err := andorra()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// synthetic builds a provider from made-up cities and points of interest.
func synthetic(cities []citydata.City, pois []poi) *Provider {
	t := &citydata.Table{
		Countries: []citydata.Country{{Code: "US", Name: "United States"}, {Code: "AD", Name: "Andorra"}},
		Admins:    []string{"CA", "02"},
		Features:  []string{"PPL", "PPLC", "PPLX"},
		Cities:    cities,
	}
	return newProvider(newCityIndex(t), dedupePOIs(pois))
}

func TestBuiltinTable(t *testing.T) {
	ci, err := builtinCities()
	if err != nil {
		t.Fatal(err)
	}
	tab := ci.table
	if n := len(tab.Cities); n < 130000 || n > 140000 {
		t.Errorf("%d built-in cities, want about 135,000", n)
	}
	if ci.tree.Len() != len(tab.Cities) {
		t.Errorf("index holds %d cities, table %d", ci.tree.Len(), len(tab.Cities))
	}
	i := slices.IndexFunc(tab.Cities, func(c citydata.City) bool { return c.ID == 5368361 })
	if i < 0 {
		t.Fatal("Los Angeles (geonames:5368361) is missing")
	}
	la := tab.Cities[i]
	if la.Name != "Los Angeles" || la.Lat != 3405223 || la.Lng != -11824368 || la.Population < 3000000 ||
		tab.Countries[la.Country] != (citydata.Country{Code: "US", Name: "United States"}) ||
		tab.Admins[la.Admin] != "CA" || tab.Features[la.Feature] != "PPLA2" {
		t.Errorf("Los Angeles decoded as %+v", la)
	}
	capitals := 0
	for _, c := range tab.Cities {
		if tab.Features[c.Feature] == "PPLC" {
			capitals++
		}
	}
	if capitals < 200 {
		t.Errorf("%d capitals (PPLC), want about 240", capitals)
	}
}

func TestUCLA(t *testing.T) {
	p := builtin(t)
	if places.MayBlock(p) {
		t.Error("the offline provider says a lookup may block; it only reads memory")
	}
	a := nearby(t, p, places.Query{Lat: 34.068930, Lng: -118.445127, RadiusMeters: 10000, Limit: 20})
	if a.Status != places.StatusOK || len(a.Results) < 8 {
		t.Fatalf("status %s with %d results, want OK with about ten", a.Status, len(a.Results))
	}
	byName := map[string]result{}
	for _, r := range a.Results {
		byName[r.Name] = r
		if d := haversine(34.068930, -118.445127, r.Geometry.Location.Lat, r.Geometry.Location.Lng); d > 10000 {
			t.Errorf("%s is %.0f m away, beyond 10 km", r.Name, d)
		}
	}
	for _, name := range []string{"Santa Monica", "Beverly Hills", "West Hollywood", "Culver City"} {
		r, ok := byName[name]
		if !ok {
			t.Errorf("%s is missing", name)
			continue
		}
		if r.Vicinity != "CA, United States" || r.CountryCode != "US" || r.Population == 0 || !strings.HasPrefix(r.PlaceID, "geonames:") {
			t.Errorf("%s: %+v", name, r)
		}
	}
	if sm := byName["Santa Monica"]; sm.PlaceID != "geonames:5393212" || !slices.Equal(sm.Types, []string{"locality", "political"}) {
		t.Errorf("Santa Monica: %+v", sm)
	}
	if a.Results[0].Name != "Santa Monica" {
		t.Errorf("first result %q, want the most populous, Santa Monica", a.Results[0].Name)
	}
	if !slices.Equal(a.HTMLAttributions, []string{geonamesCredit}) {
		t.Errorf("attributions %q, want GeoNames' alone", a.HTMLAttributions)
	}

	// Farther out, the city of Los Angeles itself outranks everything.
	a = nearby(t, p, places.Query{Lat: 34.068930, Lng: -118.445127, RadiusMeters: 25000, Limit: 3})
	if got := placeIDs(a); got[0] != "geonames:5368361" {
		t.Errorf("25 km from UCLA: %v, want Los Angeles (geonames:5368361) first", got)
	}
}

func TestRadiusEdge(t *testing.T) {
	p := builtin(t)
	const lat, lng = 34.068930, -118.445127
	// Santa Monica, geonames:5393212, at 34.01945,-118.49119.
	d := haversine(lat, lng, 34.01945, -118.49119)
	tests := []struct {
		radius float64
		want   bool
	}{
		{d + 0.01, true},
		{d + 1, true},
		{d - 0.01, false},
		{d - 1, false},
	}
	for _, tt := range tests {
		a := nearby(t, p, places.Query{Lat: lat, Lng: lng, RadiusMeters: tt.radius, Limit: 20})
		if got := slices.Contains(placeIDs(a), "geonames:5393212"); got != tt.want {
			t.Errorf("radius %.2f m (Santa Monica at %.2f m): found %v, want %v", tt.radius, d, got, tt.want)
		}
	}
}

func TestAntimeridian(t *testing.T) {
	p := synthetic(nil, []poi{
		{id: 1, name: "East", lat: 10_0000000, lng: 179_9900000, types: []string{"point_of_interest"}},
		{id: 2, name: "West", lat: 10_0000000, lng: -179_9850000, types: []string{"point_of_interest"}},
		{id: 3, name: "On the line", lat: 10_0100000, lng: 180_0000000, types: []string{"point_of_interest"}},
		{id: 4, name: "Far west", lat: 10_0000000, lng: -179_5000000, types: []string{"point_of_interest"}},
	})
	tests := []struct {
		lat, lng, radius float64
		want             []string
	}{
		{10, 179.99, 5000, []string{"osm:node/1", "osm:node/3", "osm:node/2"}},
		{10, -179.99, 5000, []string{"osm:node/2", "osm:node/3", "osm:node/1"}},
		{10, 180, 3000, []string{"osm:node/1", "osm:node/3", "osm:node/2"}},
		{10, -180, 3000, []string{"osm:node/1", "osm:node/3", "osm:node/2"}},
		{10, -180, 1100, []string{"osm:node/1"}},
		{10, 179.99, 60000, []string{"osm:node/1", "osm:node/3", "osm:node/2", "osm:node/4"}},
		{10, 179.9, 5000, nil},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v,%v", tt.lat, tt.lng), func(t *testing.T) {
			a := nearby(t, p, places.Query{Lat: tt.lat, Lng: tt.lng, RadiusMeters: tt.radius, Limit: 20})
			if got := placeIDs(a); !slices.Equal(got, tt.want) && !(len(got) == 0 && len(tt.want) == 0) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}

	// Real towns across the line: Egvekinot (-179.12) from 179.99 east,
	// Beringovskiy (179.35) from 179.99 west.
	b := builtin(t)
	for _, tt := range []struct {
		lat, lng float64
		want     string
	}{
		{66.32166, 179.99, "geonames:4031742"},
		{63.06101, -179.99, "geonames:2126710"},
	} {
		a := nearby(t, b, places.Query{Lat: tt.lat, Lng: tt.lng, RadiusMeters: 50000, Limit: 20})
		if !slices.Contains(placeIDs(a), tt.want) {
			t.Errorf("%v,%v: %v, want %s", tt.lat, tt.lng, placeIDs(a), tt.want)
		}
	}
}

func TestNearThePoles(t *testing.T) {
	var pois []poi
	for i, lng := range []int32{0, 90, 180, -90, -179} {
		pois = append(pois,
			poi{id: int64(i + 1), name: "north", lat: 89_9900000, lng: lng * e7, types: []string{"point_of_interest"}},
			poi{id: int64(i + 11), name: "south", lat: -89_9900000, lng: lng * e7, types: []string{"point_of_interest"}})
	}
	pois = append(pois, poi{id: 21, name: "Too far", lat: 89_9000000, lng: 0, types: []string{"point_of_interest"}})
	p := synthetic(nil, pois)
	tests := []struct {
		name        string
		lat, lng    float64
		radius      float64
		wantName    string
		wantResults int
	}{
		{"north pole", 90, 0, 2000, "north", 5},
		{"near the north pole", 89.995, 45, 2000, "north", 5},
		{"south pole", -90, 123, 2000, "south", 5},
		{"near the south pole", -89.999, -170, 1500, "south", 5},
		{"one side only", 89.98, 0, 1500, "north", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := nearby(t, p, places.Query{Lat: tt.lat, Lng: tt.lng, RadiusMeters: tt.radius, Limit: 20})
			if len(a.Results) != tt.wantResults {
				t.Fatalf("%d results, want %d: %v", len(a.Results), tt.wantResults, placeIDs(a))
			}
			for _, r := range a.Results {
				if r.Name != tt.wantName {
					t.Errorf("found %s %s", r.Name, r.PlaceID)
				}
			}
		})
	}
}

func TestOpenOcean(t *testing.T) {
	p := builtin(t)
	for _, q := range []places.Query{
		{Lat: 0, Lng: -140, RadiusMeters: 50000, Limit: 20},
		{Lat: -48.8767, Lng: -123.3933, RadiusMeters: 50000, Limit: 5}, // Point Nemo
		{Lat: 35, Lng: -40, RadiusMeters: 50000, Limit: 1},             // mid-Atlantic
	} {
		a := nearby(t, p, q)
		if a.Status != places.StatusZeroResults || len(a.Results) != 0 || a.Results == nil {
			t.Errorf("%+v: status %s, results %v; want ZERO_RESULTS and []", q, a.Status, a.Results)
		}
	}
}

func TestInvalidQueries(t *testing.T) {
	p := synthetic(nil, nil)
	for _, q := range []places.Query{
		{Lat: 90.1, Lng: 0, RadiusMeters: 1, Limit: 1},
		{Lat: math.NaN(), Lng: 0, RadiusMeters: 1, Limit: 1},
		{Lat: 0, Lng: -180.5, RadiusMeters: 1, Limit: 1},
		{Lat: 0, Lng: 0, RadiusMeters: 0, Limit: 1},
		{Lat: 0, Lng: 0, RadiusMeters: -5, Limit: 1},
		{Lat: 0, Lng: 0, RadiusMeters: math.Inf(1), Limit: 1},
		{Lat: 0, Lng: 0, RadiusMeters: math.NaN(), Limit: 1},
		{Lat: 0, Lng: 0, RadiusMeters: 1, Limit: 0},
		{Lat: 0, Lng: 0, RadiusMeters: 1, Limit: 21},
	} {
		_, err := p.Nearby(context.Background(), q)
		var pe *places.Error
		if !errors.As(err, &pe) || pe.Status != places.StatusInvalidRequest || !strings.HasPrefix(pe.Message, "offline: ") {
			t.Errorf("%+v: err = %v, want INVALID_REQUEST", q, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Nearby(ctx, places.Query{RadiusMeters: 1, Limit: 1}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: err = %v", err)
	}
}

// reference ranks every place by brute force, as the package documentation
// says, and returns the place ids of the best limit.
func reference(p *Provider, q places.Query) []string {
	type cand struct {
		isCity bool
		d      float64
		pop    uint32
		id     string
		key    [2]int64
	}
	var all []cand
	for _, x := range p.pois {
		d := haversine(q.Lat, q.Lng, float64(x.lat)/e7, float64(x.lng)/e7)
		if d <= q.RadiusMeters {
			kind := map[osmKind]string{osmNode: "node", osmWay: "way"}[x.kind]
			all = append(all, cand{d: d, id: fmt.Sprintf("osm:%s/%d", kind, x.id), key: [2]int64{int64(x.kind), x.id}})
		}
	}
	for _, c := range p.cities.table.Cities {
		if math.Abs(float64(c.Lat)/1e5-q.Lat) > q.RadiusMeters/111000+0.01 {
			continue // a degree of latitude is over 111 km: too far
		}
		d := haversine(q.Lat, q.Lng, float64(c.Lat)/1e5, float64(c.Lng)/1e5)
		if d <= q.RadiusMeters {
			all = append(all, cand{isCity: true, d: d, pop: c.Population, id: fmt.Sprintf("geonames:%d", c.ID), key: [2]int64{int64(c.ID)}})
		}
	}
	slices.SortFunc(all, func(a, b cand) int {
		if a.isCity != b.isCity {
			if a.isCity {
				return 1
			}
			return -1
		}
		if a.isCity {
			return cmp.Or(cmp.Compare(b.pop, a.pop), cmp.Compare(a.d, b.d), cmp.Compare(a.key[0], b.key[0]))
		}
		return cmp.Or(cmp.Compare(a.d, b.d), cmp.Compare(a.key[0], b.key[0]), cmp.Compare(a.key[1], b.key[1]))
	})
	ids := []string{}
	for _, c := range all[:min(len(all), q.Limit)] {
		ids = append(ids, c.id)
	}
	return ids
}

func TestRankingMatchesBruteForce(t *testing.T) {
	p := andorraProvider(t)
	rng := rand.New(rand.NewPCG(1, 2))
	cities := p.cities.table.Cities
	var queries []places.Query
	for range 150 {
		c := cities[rng.IntN(len(cities))]
		queries = append(queries, places.Query{
			Lat: float64(c.Lat)/1e5 + rng.Float64()*0.2 - 0.1, Lng: float64(c.Lng)/1e5 + rng.Float64()*0.2 - 0.1,
			RadiusMeters: 500 + rng.Float64()*49500, Limit: 1 + rng.IntN(20),
		})
	}
	for range 50 { // Andorra, where OpenStreetMap points of interest come first
		queries = append(queries, places.Query{
			Lat: 42.43 + rng.Float64()*0.22, Lng: 1.41 + rng.Float64()*0.35,
			RadiusMeters: 100 + rng.Float64()*5000, Limit: 1 + rng.IntN(20),
		})
	}
	for _, q := range queries {
		a := nearby(t, p, q)
		if got, want := placeIDs(a), reference(p, q); !slices.Equal(got, want) {
			t.Errorf("%+v:\n got %v\nwant %v", q, got, want)
		}
	}
}

func TestLimitGivesPrefix(t *testing.T) {
	p := andorraProvider(t)
	for _, q := range []places.Query{
		{Lat: 34.068930, Lng: -118.445127, RadiusMeters: 50000},
		{Lat: 48.8566, Lng: 2.3522, RadiusMeters: 20000},
		{Lat: 42.5075, Lng: 1.5218, RadiusMeters: 300},  // points of interest, then cities
		{Lat: 42.5075, Lng: 1.5218, RadiusMeters: 5000}, // points of interest alone
	} {
		q.Limit = 20
		full := placeIDs(nearby(t, p, q))
		if len(full) == 0 {
			t.Fatalf("%+v: no results", q)
		}
		for limit := 1; limit < 20; limit++ {
			q.Limit = limit
			got := placeIDs(nearby(t, p, q))
			if want := full[:min(limit, len(full))]; !slices.Equal(got, want) {
				t.Errorf("%+v: got %v, want the prefix %v", q, got, want)
			}
		}
	}
}

func TestRankingOrder(t *testing.T) {
	// Two points of interest at the same spot, a nearer one, and cities
	// with equal and missing populations.
	city := func(id uint32, name string, lat, lng int32, pop uint32) citydata.City {
		return citydata.City{ID: id, Name: name, Lat: lat, Lng: lng, Population: pop}
	}
	p := synthetic(
		[]citydata.City{
			city(7, "Small near", 1000, 0, 5000),
			city(3, "Big far", 20000, 0, 90000),
			city(9, "Twin far", 15000, 0, 5000),
			city(8, "Twin near", -1000, 0, 5000),
			city(2, "Twin same spot", 1000, 0, 5000),
			city(1, "Unknown population", 0, 100, 0),
		},
		[]poi{
			{kind: osmWay, id: 5, name: "Way here", lat: 1000000, types: []string{"park"}},
			{kind: osmNode, id: 9, name: "Node here", lat: 1000000, types: []string{"cafe"}},
			{kind: osmNode, id: 4, name: "Node far", lat: 2000000, types: []string{"cafe"}},
			{kind: osmNode, id: 6, name: "Node nearest", lat: 100000, types: []string{"cafe"}},
		},
	)
	a := nearby(t, p, places.Query{Lat: 0, Lng: 0, RadiusMeters: 50000, Limit: 20})
	want := []string{
		"osm:node/6", "osm:node/9", "osm:way/5", "osm:node/4",
		"geonames:3", "geonames:2", "geonames:7", "geonames:8", "geonames:9", "geonames:1",
	}
	if got := placeIDs(a); !slices.Equal(got, want) {
		t.Errorf("order:\n got %v\nwant %v", got, want)
	}
}

func TestJSONShape(t *testing.T) {
	p := synthetic(
		[]citydata.City{
			{ID: 3041563, Name: "Andorra la Vella", Lat: 4250779, Lng: 152109, Population: 20430, Country: 1, Admin: 1, Feature: 1},
			{ID: 42, Name: "Quarter", Lat: 4250000, Lng: 152000, Country: 0, Admin: 0, Feature: 2},
		},
		[]poi{{
			kind: osmNode, id: 123, name: "Café \"Q\"\n\t\x01\u2028\xff", lat: 425077900, lng: 15210900,
			types:    []string{"cafe", "food", "point_of_interest", "establishment"},
			vicinity: "2 Carrer Major, Andorra la Vella", phone: "+376 123 456", website: "https://example.ad/?a=1&b=<2>",
			openingHours: "Mo-Fr 08:00-12:00; Sa 09:00-12:00",
		}, {
			kind: osmWay, id: 77, name: "Park", lat: 425000000, lng: 15200000, types: []string{"park", "point_of_interest", "establishment"},
			phone: "829 470",
		}},
	)
	body, err := p.Nearby(context.Background(), places.Query{Lat: 42.5, Lng: 1.52, RadiusMeters: 2000, Limit: 20})
	if err != nil {
		t.Fatal(err)
	}
	a := decode(t, body)
	if a.Status != places.StatusOK || !slices.Equal(a.HTMLAttributions, []string{geonamesCredit, osmCredit}) {
		t.Errorf("status %s, attributions %q", a.Status, a.HTMLAttributions)
	}
	var generic map[string]any
	if err := json.Unmarshal(body, &generic); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"html_attributions", "results", "status"} {
		if _, ok := generic[k]; !ok {
			t.Errorf("no %q in %s", k, body)
		}
	}
	want := []result{
		{Name: "Park", PlaceID: "osm:way/77", Types: []string{"park", "point_of_interest", "establishment"}, FormattedPhoneNumber: "829 470"},
		{
			Name: "Café \"Q\"\n\t\x01\u2028\ufffd", PlaceID: "osm:node/123", Types: []string{"cafe", "food", "point_of_interest", "establishment"},
			Vicinity: "2 Carrer Major, Andorra la Vella", InternationalPhoneNumber: "+376 123 456", Website: "https://example.ad/?a=1&b=<2>",
			OSMOpeningHours: "Mo-Fr 08:00-12:00; Sa 09:00-12:00",
		},
		{Name: "Andorra la Vella", PlaceID: "geonames:3041563", Types: []string{"locality", "political"}, Vicinity: "Andorra", CountryCode: "AD", FeatureCode: "PPLC", Population: 20430},
		{Name: "Quarter", PlaceID: "geonames:42", Types: []string{"sublocality", "political"}, Vicinity: "CA, United States", CountryCode: "US", FeatureCode: "PPLX"},
	}
	want[0].Geometry.Location.Lat, want[0].Geometry.Location.Lng = 42.5, 1.52
	want[1].Geometry.Location.Lat, want[1].Geometry.Location.Lng = 42.50779, 1.52109
	want[2].Geometry.Location.Lat, want[2].Geometry.Location.Lng = 42.50779, 1.52109
	want[3].Geometry.Location.Lat, want[3].Geometry.Location.Lng = 42.5, 1.52
	if len(a.Results) != len(want) {
		t.Fatalf("%d results, want %d:\n%s", len(a.Results), len(want), body)
	}
	for i := range want {
		if !reflect.DeepEqual(a.Results[i], want[i]) {
			t.Errorf("result %d:\n got %+v\nwant %+v", i, a.Results[i], want[i])
		}
	}
	if !bytes.Contains(body, []byte(`"lat": 42.50779,`)) {
		t.Errorf("coordinates are not in shortest decimal form:\n%s", body)
	}
}

func TestAndorraExtract(t *testing.T) {
	p := andorraProvider(t)
	if len(p.pois) < 500 {
		t.Fatalf("%d points of interest from Andorra, want hundreds", len(p.pois))
	}
	count := map[string]int{}
	ways := 0
	for _, x := range p.pois {
		for _, typ := range x.types {
			count[typ]++
		}
		if x.kind == osmWay {
			ways++
		}
		if !slices.Contains(x.types, "point_of_interest") || !slices.Contains(x.types, "establishment") {
			t.Errorf("%s %d %q: types %v lack point_of_interest/establishment", []string{"node", "way"}[x.kind], x.id, x.name, x.types)
		}
	}
	for _, typ := range []string{"restaurant", "cafe", "bar", "bank", "lodging", "parking", "pharmacy", "gas_station", "church", "supermarket", "tourist_attraction"} {
		if count[typ] == 0 {
			t.Errorf("no %s in Andorra; types found: %v", typ, count)
		}
	}
	if ways == 0 {
		t.Error("no way was loaded at its centroid")
	}

	// A restaurant found by a query at its own location comes first, typed
	// and credited.
	i := slices.IndexFunc(p.pois, func(x poi) bool { return x.types[0] == "restaurant" })
	r := p.pois[i]
	a := nearby(t, p, places.Query{Lat: float64(r.lat) / e7, Lng: float64(r.lng) / e7, RadiusMeters: 50, Limit: 20})
	first := a.Results[0]
	if first.Name != r.name || !slices.Contains(first.Types, "restaurant") || !strings.HasPrefix(first.PlaceID, "osm:") {
		t.Errorf("first result %+v, want restaurant %q", first, r.name)
	}
	if !slices.Contains(a.HTMLAttributions, osmCredit) || !slices.Contains(a.HTMLAttributions, geonamesCredit) {
		t.Errorf("attributions %q lack the OpenStreetMap or GeoNames credit", a.HTMLAttributions)
	}
	if first.Vicinity == "" {
		t.Errorf("restaurant %q has no vicinity", first.Name)
	}
}

func TestPBFExtract(t *testing.T) {
	path := osmTestdata(t, "delaware-latest.osm.pbf")
	p, err := New(context.Background(), []string{path, path}, nil) // the same twice: no duplicates
	if err != nil {
		t.Fatal(err)
	}
	if len(p.pois) < 1000 {
		t.Errorf("%d points of interest from Delaware, want thousands", len(p.pois))
	}
	for i := 1; i < len(p.pois); i++ {
		if a, b := p.pois[i-1], p.pois[i]; a.kind == b.kind && a.id == b.id {
			t.Fatalf("%d appears twice", a.id)
		}
	}
	// Wilmington, Delaware.
	a := nearby(t, p, places.Query{Lat: 39.7391, Lng: -75.5398, RadiusMeters: 2000, Limit: 20})
	if len(a.Results) != 20 || !strings.HasPrefix(a.Results[0].PlaceID, "osm:") {
		t.Errorf("Wilmington: %v", placeIDs(a))
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.osm.pbf")
	if err := os.WriteFile(bad, []byte("not a pbf file at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	xml := filepath.Join(dir, "tiny.osm")
	if err := os.WriteFile(xml, []byte(`<?xml version="1.0" encoding="UTF-8"?>
<osm version="0.6">
 <node id="1" lat="1.5" lon="2.5" version="1"><tag k="amenity" v="cafe"/><tag k="name" v="Tiny"/><tag k="addr:street" v="Main Street"/><tag k="addr:housenumber" v="1"/><tag k="addr:city" v="Springfield"/></node>
 <node id="2" lat="1.5" lon="2.5" version="1"><tag k="amenity" v="cafe"/></node>
 <node id="3" lat="1.0" lon="2.0" version="1"/>
 <node id="4" lat="1.0" lon="2.002" version="1"/>
 <node id="5" lat="1.002" lon="2.002" version="1"/>
 <way id="9" version="1"><nd ref="3"/><nd ref="4"/><nd ref="5"/><nd ref="3"/><tag k="leisure" v="park"/><tag k="name" v="Triangle"/></way>
 <way id="10" version="1"><nd ref="99"/><tag k="shop" v="bakery"/><tag k="name" v="Nowhere"/></way>
</osm>`), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tt := range []struct {
		name  string
		ctx   context.Context
		files []string
	}{
		{"missing file", context.Background(), []string{filepath.Join(dir, "missing.osm.pbf")}},
		{"unknown suffix", context.Background(), []string{filepath.Join(dir, "x.geojson")}},
		{"corrupt pbf", context.Background(), []string{bad}},
		{"cancelled", ctx, []string{xml}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.ctx, tt.files, nil); err == nil || !strings.HasPrefix(err.Error(), "offline: ") {
				t.Errorf("err = %v, want an offline error", err)
			}
		})
	}

	p, err := New(context.Background(), []string{xml}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := nearby(t, p, places.Query{Lat: 1.5, Lng: 2.5, RadiusMeters: 100000, Limit: 20})
	got := placeIDs(a)
	if want := []string{"osm:node/1", "osm:way/9"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if v := a.Results[0].Vicinity; v != "1 Main Street, Springfield" {
		t.Errorf("vicinity %q", v)
	}
	tri := a.Results[1].Geometry.Location
	if math.Abs(tri.Lat-1.0006667) > 1e-6 || math.Abs(tri.Lng-2.0013333) > 1e-6 {
		t.Errorf("triangle centroid %v, want 1.0006667,2.0013333", tri)
	}
}

func TestPlaceTypes(t *testing.T) {
	tests := []struct {
		tags []string
		want []string // nil: not a point of interest
	}{
		{[]string{"amenity", "restaurant"}, []string{"restaurant", "food"}},
		{[]string{"amenity", "cafe"}, []string{"cafe", "food"}},
		{[]string{"amenity", "pub"}, []string{"bar"}},
		{[]string{"amenity", "bank"}, []string{"bank", "finance"}},
		{[]string{"amenity", "atm"}, []string{"atm", "finance"}},
		{[]string{"tourism", "museum"}, []string{"museum", "tourist_attraction"}},
		{[]string{"amenity", "pharmacy"}, []string{"pharmacy", "health", "store"}},
		{[]string{"amenity", "hospital"}, []string{"hospital", "health"}},
		{[]string{"amenity", "school"}, []string{"school"}},
		{[]string{"shop", "supermarket"}, []string{"supermarket", "grocery_or_supermarket", "food", "store"}},
		{[]string{"tourism", "hotel"}, []string{"lodging"}},
		{[]string{"leisure", "park"}, []string{"park"}},
		{[]string{"amenity", "place_of_worship", "religion", "christian"}, []string{"church", "place_of_worship"}},
		{[]string{"amenity", "place_of_worship", "religion", "muslim"}, []string{"mosque", "place_of_worship"}},
		{[]string{"amenity", "place_of_worship"}, []string{"place_of_worship"}},
		{[]string{"amenity", "parking"}, []string{"parking"}},
		{[]string{"amenity", "fuel"}, []string{"gas_station"}},
		{[]string{"shop", "kiosk"}, []string{"store"}},
		{[]string{"historic", "castle"}, []string{"tourist_attraction"}},
		{[]string{"office", "company"}, []string{}},
		{[]string{"railway", "station", "station", "subway"}, []string{"subway_station", "transit_station"}},
		{[]string{"railway", "station"}, []string{"train_station", "transit_station"}},
		{[]string{"railway", "station", "public_transport", "station"}, []string{"train_station", "transit_station"}},
		{[]string{"amenity", "restaurant", "tourism", "hotel"}, []string{"restaurant", "food", "lodging"}},
		{[]string{"railway", "rail"}, nil},
		{[]string{"aeroway", "runway"}, nil},
		{[]string{"highway", "bus_stop"}, nil},
		{[]string{"shop", "no"}, nil},
	}
	for _, tt := range tests {
		var ts osm.Tags
		for i := 0; i < len(tt.tags); i += 2 {
			ts = append(ts, osm.Tag{Key: tt.tags[i], Value: tt.tags[i+1]})
		}
		got, ok := placeTypes(ts)
		if tt.want == nil {
			if ok {
				t.Errorf("%v: types %v, want not a point of interest", tt.tags, got)
			}
			continue
		}
		want := append(slices.Clone(tt.want), "point_of_interest", "establishment")
		if !ok || !slices.Equal(got, want) {
			t.Errorf("%v: types %v, want %v", tt.tags, got, want)
		}
	}
}

func TestConcurrentNearby(t *testing.T) {
	p := builtin(t)
	q := places.Query{Lat: 34.068930, Lng: -118.445127, RadiusMeters: 10000, Limit: 20}
	want, err := p.Nearby(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				q := q
				if (g+i)%2 == 1 {
					q.Lat, q.Lng = 48.8566, 2.3522
				}
				got, err := p.Nearby(context.Background(), q)
				if err != nil {
					t.Error(err)
					return
				}
				if q.Lat == 34.068930 && !bytes.Equal(got, want) {
					t.Error("answers differ under concurrency")
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestAppendNearby(t *testing.T) {
	p := builtin(t)
	ctx := context.Background()
	q := places.Query{Lat: 34.068930, Lng: -118.445127, RadiusMeters: 10000, Limit: 5}
	want, err := p.Nearby(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	buf := []byte("kept|")
	for range 2 { // the second time into the first answer's memory
		got, err := p.AppendNearby(ctx, buf[:len("kept|")], q)
		if err != nil || string(got[:len("kept|")]) != "kept|" || !bytes.Equal(got[len("kept|"):], want) {
			t.Fatalf("AppendNearby = %q, %v; want kept| and Nearby's answer", got, err)
		}
		buf = got
	}
	q.Limit = 0
	if got, err := p.AppendNearby(ctx, buf[:3], q); err == nil || string(got) != "kep" {
		t.Errorf("AppendNearby of an invalid query = %q, %v; want dst unchanged and an error", got, err)
	}
}

func TestTwoPassesMatchOne(t *testing.T) {
	ci, err := builtinCities()
	if err != nil {
		t.Fatal(err)
	}
	path := osmTestdata(t, "delaware-latest.osm.pbf")
	var got [2][]poi
	for i, maxCached := range []int{maxCachedNodes, 1000} {
		l := &osmLoader{cities: ci, types: map[string][]string{}, maxCachedNodes: maxCached}
		if err := l.load(context.Background(), path); err != nil {
			t.Fatal(err)
		}
		got[i] = dedupePOIs(l.pois)
	}
	if len(got[0]) < 1000 || !reflect.DeepEqual(got[0], got[1]) {
		t.Errorf("one pass found %d points of interest, two passes %d, or they differ", len(got[0]), len(got[1]))
	}
}

func TestDegreesMatchesShortestFloat(t *testing.T) {
	check := func(v int32) {
		var w jsonWriter
		w.degrees(v)
		if want := strconv.FormatFloat(float64(v)/e7, 'f', -1, 64); string(w.b) != want {
			t.Fatalf("degrees(%d) = %s, want %s", v, w.b, want)
		}
	}
	for _, v := range []int32{0, 1, -1, 9, 10, 1e7, -1e7, 1e7 + 1, 5e6, 1_800_000_000, -1_800_000_000, 900_000_000, math.MaxInt32, math.MinInt32} {
		check(v)
	}
	for v := int32(-2_000_000); v <= 2_000_000; v++ { // every value within 0.2 degree of 0
		check(v)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2_000_000 {
		check(int32(rng.Uint32()))
	}
}
