package offline

import (
	"math"

	"github.com/tidwall/rtree"
)

// earthRadius is the mean radius of the Earth (IUGG), in metres.
const earthRadius = 6371008.8

// e7 is the fixed-point unit of every stored coordinate: 1e-7 degree, about
// 1 cm, the precision of OpenStreetMap. GeoNames' 1e-5 degree fits exactly.
const e7 = 1e7

// boxPad widens every search box, in degrees, so that rounding can never
// drop a point that the haversine test would keep.
const boxPad = 1e-9

// tree is a spatial index of points in degrees ([longitude, latitude]),
// whose items are indexes into a slice of places. Its coordinates are
// float64: the tree's area arithmetic overflows on 1e-7 degree int32s.
type tree = rtree.RTreeGN[float64, uint32]

// point returns the index key of a location in 1e-7 degree units.
func point(latE7, lngE7 int32) [2]float64 {
	return [2]float64{float64(lngE7) / e7, float64(latE7) / e7}
}

// box is one search rectangle in degrees: min and max are [longitude, latitude].
type box struct {
	min, max [2]float64
}

// circle is a search area, precomputed for fast haversine tests.
type circle struct {
	lat, lng float64 // radians
	cosLat   float64
	maxHav   float64 // the haversine of the radius: hav(d/R)
}

func newCircle(latDeg, lngDeg, radiusMeters float64) circle {
	lat, lng := latDeg*math.Pi/180, lngDeg*math.Pi/180
	half := math.Min(radiusMeters/(2*earthRadius), math.Pi/2)
	s := math.Sin(half)
	return circle{lat: lat, lng: lng, cosLat: math.Cos(lat), maxHav: s * s}
}

// hav returns the haversine of the central angle between the circle's centre
// and a point: (1 - cos θ) / 2, which grows with the great-circle distance
// 2R·asin(√hav), so it ranks by distance too. p is [longitude, latitude] in
// degrees.
func (c *circle) hav(p [2]float64) float64 {
	lat := p[1] * (math.Pi / 180)
	dLng := p[0]*(math.Pi/180) - c.lng
	switch { // the short way round, for precision across the antimeridian
	case dLng > math.Pi:
		dLng -= 2 * math.Pi
	case dLng < -math.Pi:
		dLng += 2 * math.Pi
	}
	sLat := math.Sin((lat - c.lat) / 2)
	sLng := math.Sin(dLng / 2)
	return sLat*sLat + c.cosLat*math.Cos(lat)*sLng*sLng
}

// boxes returns the rectangles, in degrees, that together cover every point
// within radiusMeters of (latDeg, lngDeg): one rectangle, or two when the
// circle crosses the antimeridian. When the circle holds a pole, its
// bounding box spans every longitude. The bounds of a spherical cap are
// those of J. P. Matuschek, "Finding Points Within a Distance of a
// Latitude/Longitude Using Bounding Coordinates".
func boxes(latDeg, lngDeg, radiusMeters float64, out *[2]box) []box {
	const deg = 180 / math.Pi
	angle := radiusMeters / earthRadius
	lat := latDeg / deg
	minLat, maxLat := (lat-angle)*deg-boxPad, (lat+angle)*deg+boxPad
	if minLat <= -90 || maxLat >= 90 {
		out[0] = box{min: [2]float64{-180, max(minLat, -90)}, max: [2]float64{180, min(maxLat, 90)}}
		return out[:1]
	}
	dLng := math.Asin(math.Sin(angle)/math.Cos(lat))*deg + boxPad
	minLng, maxLng := lngDeg-dLng, lngDeg+dLng
	switch {
	case minLng < -180:
		out[0] = box{min: [2]float64{minLng + 360, minLat}, max: [2]float64{180, maxLat}}
		out[1] = box{min: [2]float64{-180, minLat}, max: [2]float64{maxLng, maxLat}}
		return out[:2]
	case maxLng > 180:
		out[0] = box{min: [2]float64{minLng, minLat}, max: [2]float64{180, maxLat}}
		out[1] = box{min: [2]float64{-180, minLat}, max: [2]float64{maxLng - 360, maxLat}}
		return out[:2]
	}
	out[0] = box{min: [2]float64{minLng, minLat}, max: [2]float64{maxLng, maxLat}}
	return out[:1]
}
