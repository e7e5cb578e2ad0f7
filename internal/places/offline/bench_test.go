package offline

import (
	"bytes"
	"context"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/herd-dev/herd/internal/places"
	"github.com/herd-dev/herd/internal/places/offline/internal/citydata"
)

// benchQueries are 10 km queries near 1,024 random built-in cities.
func benchQueries(p *Provider) []places.Query {
	rng := rand.New(rand.NewPCG(3, 4))
	cities := p.cities.table.Cities
	qs := make([]places.Query, 1024)
	for i := range qs {
		c := cities[rng.IntN(len(cities))]
		qs[i] = places.Query{
			Lat: float64(c.Lat)/1e5 + rng.Float64()*0.1 - 0.05, Lng: float64(c.Lng)/1e5 + rng.Float64()*0.1 - 0.05,
			RadiusMeters: 10000, Limit: 20,
		}
	}
	return qs
}

// BenchmarkIndexSearch measures finding and ranking the places of a 10 km
// query in the built-in cities, without writing the answer.
func BenchmarkIndexSearch(b *testing.B) {
	p := builtin(b)
	qs := benchQueries(p)
	s := p.newSearch()
	found := 0
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.run(qs[i%len(qs)])
		found += len(s.cities)
	}
	b.ReportMetric(float64(found)/float64(b.N), "results/op")
}

// BenchmarkNearby measures whole answers to 10 km queries, JSON included.
func BenchmarkNearby(b *testing.B) {
	p := builtin(b)
	qs := benchQueries(p)
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := p.Nearby(ctx, qs[i%len(qs)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNearbyParallel is BenchmarkNearby from every core at once.
func BenchmarkNearbyParallel(b *testing.B) {
	p := builtin(b)
	qs := benchQueries(p)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for i := 0; pb.Next(); i++ {
			if _, err := p.Nearby(ctx, qs[i%len(qs)]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkLoadBuiltin measures decoding the embedded table and indexing it,
// the one-time cost of the first New, and reports the heap that keeps.
func BenchmarkLoadBuiltin(b *testing.B) {
	load := func() *cityIndex {
		t, err := citydata.Decode(bytes.NewReader(citiesData))
		if err != nil {
			b.Fatal(err)
		}
		return newCityIndex(t)
	}
	b.ReportAllocs()
	for b.Loop() {
		load()
	}
	b.StopTimer()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	kept := load()
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB-kept")
	runtime.KeepAlive(kept)
}

// BenchmarkNearbyOSM measures whole answers to 10 km queries around
// Wilmington, Delaware, with that state's OpenStreetMap extract loaded.
func BenchmarkNearbyOSM(b *testing.B) {
	p, err := New(context.Background(), []string{osmTestdata(b, "delaware-latest.osm.pbf")}, nil)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	qs := make([]places.Query, 1024)
	for i := range qs {
		qs[i] = places.Query{Lat: 39.70 + rng.Float64()*0.1, Lng: -75.60 + rng.Float64()*0.1, RadiusMeters: 10000, Limit: 20}
	}
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := p.Nearby(ctx, qs[i%len(qs)]); err != nil {
			b.Fatal(err)
		}
	}
}
