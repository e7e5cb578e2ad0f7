package offline

import (
	"bufio"
	"cmp"
	"compress/bzip2"
	"context"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/planar"
	"github.com/paulmach/osm"
	"github.com/paulmach/osm/osmpbf"
	"github.com/paulmach/osm/osmxml"
)

// localityRadius bounds the search for the town that names a feature
// without an addr:city.
const localityRadius = 20000

// osmKind is the OpenStreetMap element type of a point of interest.
type osmKind uint8

const (
	osmNode osmKind = iota
	osmWay
)

// poi is one named OpenStreetMap feature.
type poi struct {
	id           int64
	kind         osmKind
	lat, lng     int32    // 1e-7 degrees; a way's centroid
	name         string   // name=*
	types        []string // Google types, shared between features
	vicinity     string   // from addr:*, else the nearest built-in city
	website      string   // website=* or contact:website=*
	phone        string   // phone=* or contact:phone=*
	openingHours string   // opening_hours=*, raw
}

// pendingWay is a tagged way whose centroid needs its nodes' locations.
type pendingWay struct {
	poi   poi
	tags  osm.Tags
	nodes []osm.NodeID
}

// osmLoader reads OpenStreetMap extracts into points of interest.
type osmLoader struct {
	cities *cityIndex
	types  map[string][]string // interned type lists, by their joined form
	pois   []poi

	// maxCachedNodes bounds the node locations that the first pass over an
	// extract keeps (16 bytes each): an extract with fewer nodes is read
	// once, a larger one twice, the second time for its ways' nodes alone.
	maxCachedNodes int
}

// maxCachedNodes is the default of osmLoader.maxCachedNodes: 64 MiB.
const maxCachedNodes = 4 << 20

// nodeLoc is a node's location in 1e-7 degree units.
type nodeLoc struct {
	id       osm.NodeID
	lat, lng int32
}

// load appends the named points of interest of one extract: tagged nodes,
// and tagged ways at the centroid of their nodes. Relations are skipped.
func (l *osmLoader) load(ctx context.Context, path string) error {
	var ways []pendingWay
	var cache []nodeLoc
	caching := true
	err := scanFile(ctx, path, false, func(o osm.Object) {
		switch o := o.(type) {
		case *osm.Node:
			if !(o.Lat >= -90 && o.Lat <= 90 && o.Lon >= -180 && o.Lon <= 180) {
				return
			}
			lat, lng := degToE7(o.Lat), degToE7(o.Lon)
			if caching {
				if len(cache) == l.maxCachedNodes {
					cache, caching = nil, false
				} else {
					cache = append(cache, nodeLoc{o.ID, lat, lng})
				}
			}
			if p, ok := l.newPOI(o.Tags); ok {
				p.id, p.kind, p.lat, p.lng = int64(o.ID), osmNode, lat, lng
				l.finish(&p, o.Tags)
			}
		case *osm.Way:
			if len(o.Nodes) == 0 {
				return
			}
			if p, ok := l.newPOI(o.Tags); ok {
				p.id, p.kind = int64(o.ID), osmWay
				ways = append(ways, pendingWay{poi: p, tags: o.Tags, nodes: o.Nodes.NodeIDs()})
			}
		}
	})
	if err != nil || len(ways) == 0 {
		return err
	}

	locs := map[osm.NodeID]orb.Point{}
	for _, w := range ways {
		for _, id := range w.nodes {
			locs[id] = orb.Point{math.NaN(), math.NaN()}
		}
	}
	if caching {
		// Extracts list nodes by id, so the cache is usually sorted already.
		if !slices.IsSortedFunc(cache, cmpNodeLoc) {
			slices.SortFunc(cache, cmpNodeLoc)
		}
		for id := range locs {
			if i, ok := slices.BinarySearchFunc(cache, nodeLoc{id: id}, cmpNodeLoc); ok {
				locs[id] = orb.Point{float64(cache[i].lng) / e7, float64(cache[i].lat) / e7}
			}
		}
	} else {
		err = scanFile(ctx, path, true, func(o osm.Object) {
			if n, ok := o.(*osm.Node); ok {
				if _, want := locs[n.ID]; want {
					locs[n.ID] = orb.Point{float64(degToE7(n.Lon)) / e7, float64(degToE7(n.Lat)) / e7}
				}
			}
		})
		if err != nil {
			return err
		}
	}
	for i := range ways {
		w := &ways[i]
		c, ok := centroid(w.nodes, locs)
		if !ok {
			continue // none of its nodes is in the extract
		}
		w.poi.lat, w.poi.lng = degToE7(c[1]), degToE7(c[0])
		l.finish(&w.poi, w.tags)
	}
	return nil
}

func cmpNodeLoc(a, b nodeLoc) int { return cmp.Compare(a.id, b.id) }

// newPOI starts a point of interest from a feature's tags, or returns false
// when the feature has no name or no point-of-interest tag.
func (l *osmLoader) newPOI(tags osm.Tags) (poi, bool) {
	name := tags.Find("name")
	if name == "" {
		return poi{}, false
	}
	types, ok := placeTypes(tags)
	if !ok {
		return poi{}, false
	}
	key := strings.Join(types, ",")
	shared, ok := l.types[key]
	if !ok {
		shared = slices.Clip(types)
		l.types[key] = shared
	}
	return poi{
		name:         strings.Clone(name),
		types:        shared,
		website:      strings.Clone(firstValue(tags, "website", "contact:website")),
		phone:        strings.Clone(firstValue(tags, "phone", "contact:phone")),
		openingHours: strings.Clone(tags.Find("opening_hours")),
	}, true
}

// finish gives a located point of interest its vicinity and keeps it.
func (l *osmLoader) finish(p *poi, tags osm.Tags) {
	var town string
	if c, ok := l.cities.nearest(p.lat, p.lng, localityRadius); ok {
		town = c.Name
	}
	p.vicinity = strings.Clone(vicinity(tags, town))
	l.pois = append(l.pois, *p)
}

// centroid returns the centroid of a way from its nodes' locations, as
// [longitude, latitude]: of the area when the way is closed, else of the line.
// Nodes missing from the extract are left out.
func centroid(ids []osm.NodeID, locs map[osm.NodeID]orb.Point) (orb.Point, bool) {
	line := make(orb.LineString, 0, len(ids))
	for _, id := range ids {
		if p := locs[id]; !math.IsNaN(p[0]) {
			line = append(line, p)
		}
	}
	if len(line) == 0 {
		return orb.Point{}, false
	}
	if len(ids) >= 4 && ids[0] == ids[len(ids)-1] && len(line) == len(ids) {
		c, _ := planar.CentroidArea(orb.Polygon{orb.Ring(line)})
		return c, true
	}
	c, _ := planar.CentroidArea(line)
	return c, true
}

// dedupePOIs sorts points of interest by element type and id and drops
// repeats, which overlapping extracts produce.
func dedupePOIs(pois []poi) []poi {
	slices.SortFunc(pois, func(a, b poi) int {
		return cmp.Or(cmp.Compare(a.kind, b.kind), cmp.Compare(a.id, b.id))
	})
	return slices.CompactFunc(pois, func(a, b poi) bool { return a.kind == b.kind && a.id == b.id })
}

// scanFile calls fn for each element of an extract: .osm.pbf, .osm or
// .osm.bz2. With nodesOnly, a .osm.pbf reader skips ways and relations.
func scanFile(ctx context.Context, path string, nodesOnly bool, fn func(osm.Object)) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("offline: %w", err)
	}
	defer f.Close()
	var sc osm.Scanner
	switch {
	case strings.HasSuffix(path, ".osm.pbf"):
		s := osmpbf.New(ctx, f, runtime.GOMAXPROCS(0))
		s.SkipWays, s.SkipRelations = nodesOnly, nodesOnly
		sc = s
	case strings.HasSuffix(path, ".osm.bz2"):
		sc = osmxml.New(ctx, bzip2.NewReader(bufio.NewReaderSize(f, 1<<16)))
	case strings.HasSuffix(path, ".osm"):
		sc = osmxml.New(ctx, bufio.NewReaderSize(f, 1<<16))
	default:
		return fmt.Errorf("offline: %s: not a .osm.pbf, .osm or .osm.bz2 file", path)
	}
	defer sc.Close()
	for sc.Scan() {
		fn(sc.Object())
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("offline: %s: %w", path, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("offline: %s: %w", path, err)
	}
	return nil
}

// degToE7 converts degrees to 1e-7 degree units.
func degToE7(deg float64) int32 { return int32(math.Round(deg * e7)) }
