package offline

import (
	"bytes"
	_ "embed"
	"fmt"
	"math"
	"sync"

	"github.com/herd-dev/herd/internal/places/offline/internal/citydata"
)

//go:generate go run ./internal/gen -o cities.bin.gz

// citiesData is the GeoNames cities1000 table written by internal/gen.
//
//go:embed cities.bin.gz
var citiesData []byte

// builtinCities decodes the embedded table and indexes it, once per process.
var builtinCities = sync.OnceValues(func() (*cityIndex, error) {
	t, err := citydata.Decode(bytes.NewReader(citiesData))
	if err != nil {
		return nil, fmt.Errorf("offline: built-in cities: %w", err)
	}
	return newCityIndex(t), nil
})

// cityIndex is the built-in city table and its spatial index. It is never
// changed after newCityIndex, so any number of goroutines may search it.
type cityIndex struct {
	table *citydata.Table
	tree  tree
}

// newCityIndex indexes t. The generator sorts the built-in table along a
// Hilbert curve, the order that packs the R-tree best.
func newCityIndex(t *citydata.Table) *cityIndex {
	ci := &cityIndex{table: t}
	for i, c := range t.Cities {
		p := point(c.Lat*100, c.Lng*100)
		ci.tree.Insert(p, p, uint32(i))
	}
	return ci
}

// nearest returns the city nearest to a point, in 1e-7 degree units, within
// maxMeters, if there is one.
func (ci *cityIndex) nearest(latE7, lngE7 int32, maxMeters float64) (*citydata.City, bool) {
	lat, lng := float64(latE7)/e7, float64(lngE7)/e7
	c := newCircle(lat, lng, maxMeters)
	best, bestHav := uint32(0), math.Inf(1)
	var bs [2]box
	for _, b := range boxes(lat, lng, maxMeters, &bs) {
		ci.tree.Search(b.min, b.max, func(p, _ [2]float64, i uint32) bool {
			if h := c.hav(p); h <= c.maxHav && h < bestHav {
				best, bestHav = i, h
			}
			return true
		})
	}
	if math.IsInf(bestHav, 1) {
		return nil, false
	}
	return &ci.table.Cities[best], true
}
