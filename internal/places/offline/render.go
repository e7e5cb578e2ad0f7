package offline

import (
	"strconv"
	"strings"

	"github.com/herd-dev/herd/internal/places"
)

// render writes the answer to the last run as a Nearby Search body. The
// bytes stay owned by s.
func (s *search) render() []byte {
	w := &s.w
	w.b, w.depth = w.b[:0], 0
	w.open('{')
	w.key("html_attributions")
	w.open('[')
	w.elem()
	w.str(geonamesCredit)
	if len(s.pois) > 0 {
		w.elem()
		w.str(osmCredit)
	}
	w.close(']')
	w.key("results")
	w.open('[')
	for _, h := range s.pois {
		s.renderPOI(&s.p.pois[h.i])
	}
	for _, h := range s.cities {
		s.renderCity(h.i)
	}
	w.close(']')
	w.key("status")
	if len(s.pois)+len(s.cities) > 0 {
		w.str(places.StatusOK)
	} else {
		w.str(places.StatusZeroResults)
	}
	w.close('}')
	return w.b
}

// location writes the geometry member of a result.
func (w *jsonWriter) location(latE7, lngE7 int32) {
	w.key("geometry")
	w.open('{')
	w.key("location")
	w.open('{')
	w.key("lat")
	w.degrees(latE7)
	w.key("lng")
	w.degrees(lngE7)
	w.close('}')
	w.close('}')
}

func (s *search) renderPOI(p *poi) {
	w := &s.w
	w.elem()
	w.open('{')
	w.location(p.lat, p.lng)
	w.key("name")
	w.str(p.name)
	w.key("place_id")
	if p.kind == osmNode {
		w.b = append(w.b, `"osm:node/`...)
	} else {
		w.b = append(w.b, `"osm:way/`...)
	}
	w.b = strconv.AppendInt(w.b, p.id, 10)
	w.b = append(w.b, '"')
	w.key("types")
	w.strList(p.types)
	if p.vicinity != "" {
		w.key("vicinity")
		w.str(p.vicinity)
	}
	if p.phone != "" {
		if strings.HasPrefix(p.phone, "+") {
			w.key("international_phone_number")
		} else {
			w.key("formatted_phone_number")
		}
		w.str(p.phone)
	}
	if p.openingHours != "" {
		w.key("osm_opening_hours")
		w.str(p.openingHours)
	}
	if p.website != "" {
		w.key("website")
		w.str(p.website)
	}
	w.close('}')
}

// cityTypes are the Google types of a GeoNames populated place; a section
// of a populated place (feature code PPLX) is a sublocality.
var (
	cityTypes        = []string{"locality", "political"}
	sublocalityTypes = []string{"sublocality", "political"}
)

func (s *search) renderCity(i uint32) {
	t := s.p.cities.table
	c := &t.Cities[i]
	feature := t.Features[c.Feature]
	w := &s.w
	w.elem()
	w.open('{')
	w.location(c.Lat*100, c.Lng*100)
	w.key("name")
	w.str(c.Name)
	w.key("place_id")
	w.b = append(w.b, `"geonames:`...)
	w.b = strconv.AppendUint(w.b, uint64(c.ID), 10)
	w.b = append(w.b, '"')
	w.key("types")
	if feature == "PPLX" {
		w.strList(sublocalityTypes)
	} else {
		w.strList(cityTypes)
	}
	country := &t.Countries[c.Country]
	w.key("vicinity")
	if admin := t.Admins[c.Admin]; hasLetter(admin) {
		w.strs(admin, ", ", country.Name)
	} else {
		w.str(country.Name)
	}
	w.key("country_code")
	w.str(country.Code)
	w.key("feature_code")
	w.str(feature)
	if c.Population > 0 {
		w.key("population")
		w.uint(uint64(c.Population))
	}
	w.close('}')
}

// hasLetter reports whether a GeoNames admin1 code is made of letters ("CA",
// "ENG") rather than digits ("02"), which mean nothing to a reader.
func hasLetter(code string) bool {
	for i := range len(code) {
		if c := code[i] | 0x20; c >= 'a' && c <= 'z' {
			return true
		}
	}
	return false
}
