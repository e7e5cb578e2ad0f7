// Command landgen rebuilds the status page's world map, static/land.json:
// the land of Natural Earth's 1:110m physical vectors (public domain), as
// TopoJSON in the npm package world-atlas (ISC), turned into one SVG path
// in the page's equirectangular projection (x = longitude, y = -latitude,
// in degrees to two decimals).
//
// Run it through `go generate ./internal/admin/`. Only this program needs
// npm and the network; building and testing herd need neither.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/herd-dev/herd/internal/npmpack"
)

var worldAtlas = npmpack.Package{
	Spec:      "world-atlas@2.0.2",
	Tarball:   "world-atlas-2.0.2.tgz",
	Integrity: "sha512-IXfV0qwlKXpckz1FhwXVwKRjiIhOnWttOskm5CtxMsjgE/MXAYRHWJqgXOpM8IkcPBoXnyTU5lFHcYa5ChG0LQ==",
}

// Map is what static/land.json holds.
type Map struct {
	Source string `json:"source"`
	Path   string `json:"path"` // SVG path data
}

func main() {
	out := flag.String("o", "land.json", "output file")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "landgen:", err)
		os.Exit(1)
	}
}

func run(out string) error {
	dir, err := npmpack.Fetch(worldAtlas)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	raw, err := npmpack.ReadFile(dir, worldAtlas, "package/land-110m.json")
	if err != nil {
		return err
	}
	var topo topology
	if err := json.Unmarshal(raw, &topo); err != nil {
		return fmt.Errorf("%s: land-110m.json: %w", worldAtlas.Spec, err)
	}
	path, rings, points, err := topo.svgPath("land")
	if err != nil {
		return fmt.Errorf("%s: land-110m.json: %w", worldAtlas.Spec, err)
	}
	b, err := json.Marshal(Map{
		Source: "Natural Earth 1:110m land (public domain), from the npm package " + worldAtlas.Spec,
		Path:   path,
	})
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Printf("landgen: %d rings, %d points: %s (%d bytes)\n", rings, points, out, len(b)+1)
	return nil
}

// topology is the part of a TopoJSON topology this program reads.
type topology struct {
	Transform struct {
		Scale     [2]float64 `json:"scale"`
		Translate [2]float64 `json:"translate"`
	} `json:"transform"`
	Arcs    [][][2]int64        `json:"arcs"` // quantized, delta-encoded
	Objects map[string]geometry `json:"objects"`
}

// geometry is a TopoJSON geometry object; Arcs holds arc indexes, nested
// as its type says.
type geometry struct {
	Type       string          `json:"type"`
	Arcs       json.RawMessage `json:"arcs"`
	Geometries []geometry      `json:"geometries"`
}

// svgPath draws object name as SVG path data, one closed subpath per ring.
func (t *topology) svgPath(name string) (path string, rings, points int, err error) {
	obj, ok := t.Objects[name]
	if !ok {
		return "", 0, 0, fmt.Errorf("no object %q", name)
	}
	var polygons [][][]int // polygon, ring, arc index
	var collect func(g geometry) error
	collect = func(g geometry) error {
		switch g.Type {
		case "GeometryCollection":
			for _, c := range g.Geometries {
				if err := collect(c); err != nil {
					return err
				}
			}
			return nil
		case "Polygon":
			var p [][]int
			if err := json.Unmarshal(g.Arcs, &p); err != nil {
				return err
			}
			polygons = append(polygons, p)
			return nil
		case "MultiPolygon":
			var mp [][][]int
			if err := json.Unmarshal(g.Arcs, &mp); err != nil {
				return err
			}
			polygons = append(polygons, mp...)
			return nil
		}
		return fmt.Errorf("geometry type %q is not land", g.Type)
	}
	if err := collect(obj); err != nil {
		return "", 0, 0, err
	}

	var b strings.Builder
	for _, polygon := range polygons {
		for _, ring := range polygon {
			pts, err := t.ring(ring)
			if err != nil {
				return "", 0, 0, err
			}
			// A ring that crosses the antimeridian is drawn past ±180
			// and again shifted by 360 degrees, so that each side shows
			// its part and no edge runs across the whole map.
			lo, hi := unwrap(pts)
			for _, shift := range []float64{0, -360, 360} {
				if shift == -360 && hi <= 180 || shift == 360 && lo >= -180 {
					continue
				}
				points += writeRing(&b, pts, shift)
				rings++
			}
		}
	}
	return b.String(), rings, points, nil
}

// unwrap makes a ring's longitudes continuous, moving each point by 360
// degrees where it would jump more than 180 from the one before. It
// returns the least and greatest longitude.
func unwrap(pts [][2]float64) (lo, hi float64) {
	lo, hi = 180, -180
	for i := range pts {
		if i > 0 {
			for pts[i][0]-pts[i-1][0] > 180 {
				pts[i][0] -= 360
			}
			for pts[i][0]-pts[i-1][0] < -180 {
				pts[i][0] += 360
			}
		}
		lo, hi = min(lo, pts[i][0]), max(hi, pts[i][0])
	}
	return lo, hi
}

// writeRing writes a ring, moved shift degrees east, as a closed subpath
// and returns how many points it wrote.
func writeRing(b *strings.Builder, pts [][2]float64, shift float64) int {
	n := 0
	last := ""
	for _, p := range pts {
		xy := deg(p[0]+shift) + " " + deg(-p[1])
		if xy == last {
			continue
		}
		if last == "" {
			b.WriteString("M")
		} else {
			b.WriteString("L")
		}
		last = xy
		b.WriteString(xy)
		n++
	}
	b.WriteString("Z")
	return n
}

// ring joins the arcs of a ring into its points, in degrees. A negative
// index ~i is arc i reversed; consecutive arcs share their end point.
func (t *topology) ring(arcs []int) ([][2]float64, error) {
	var pts [][2]float64
	for _, i := range arcs {
		reversed := i < 0
		if reversed {
			i = ^i
		}
		if i >= len(t.Arcs) {
			return nil, fmt.Errorf("arc %d of %d", i, len(t.Arcs))
		}
		arc := t.decode(t.Arcs[i])
		if reversed {
			for l, r := 0, len(arc)-1; l < r; l, r = l+1, r-1 {
				arc[l], arc[r] = arc[r], arc[l]
			}
		}
		if len(pts) > 0 {
			arc = arc[1:]
		}
		pts = append(pts, arc...)
	}
	return pts, nil
}

// decode turns a quantized, delta-encoded arc into degrees.
func (t *topology) decode(arc [][2]int64) [][2]float64 {
	out := make([][2]float64, len(arc))
	var x, y int64
	for i, d := range arc {
		x, y = x+d[0], y+d[1]
		out[i] = [2]float64{
			float64(x)*t.Transform.Scale[0] + t.Transform.Translate[0],
			float64(y)*t.Transform.Scale[1] + t.Transform.Translate[1],
		}
	}
	return out
}

// deg formats a coordinate with two decimals, without trailing zeros.
func deg(v float64) string {
	s := strconv.FormatFloat(v, 'f', 2, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" {
		return "0"
	}
	return s
}
