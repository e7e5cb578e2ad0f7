// Package citydata encodes and decodes the built-in GeoNames city table that
// the offline places provider embeds.
//
// The encoding is column-oriented and gzip-compressed. After a magic string,
// it holds the country, admin-code and feature-code dictionaries, the number
// of cities, and then one column per field: GeoNames ids as zig-zag deltas,
// name lengths followed by every name's bytes, dictionary indexes,
// populations, and latitudes and longitudes as zig-zag deltas in units of
// 1e-5 degree. Cities keep the order they were encoded in, so an encoder that
// sorts them along a space-filling curve gets small coordinate deltas.
package citydata

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// magic starts every encoded table; the last byte is the format version.
const magic = "herd-cities\x01"

// Table is the whole built-in data set.
type Table struct {
	Countries []Country // indexed by City.Country
	Admins    []string  // GeoNames admin1 codes ("CA", "02"), indexed by City.Admin
	Features  []string  // GeoNames feature codes ("PPL", "PPLC"), indexed by City.Feature
	Cities    []City
}

// Country is an ISO 3166-1 alpha-2 code and its common English name.
type Country struct {
	Code, Name string
}

// City is one GeoNames populated place.
type City struct {
	ID         uint32 // GeoNames geonameid
	Lat, Lng   int32  // 1e-5 degrees
	Population uint32 // 0 when GeoNames has none
	Name       string
	Country    uint16 // index into Table.Countries
	Admin      uint16 // index into Table.Admins
	Feature    uint8  // index into Table.Features
}

// Encode writes t to w, gzip-compressed at the best compression level.
func Encode(w io.Writer, t *Table) error {
	switch {
	case len(t.Countries) > math.MaxUint16+1:
		return fmt.Errorf("citydata: %d countries do not fit a uint16 index", len(t.Countries))
	case len(t.Admins) > math.MaxUint16+1:
		return fmt.Errorf("citydata: %d admin codes do not fit a uint16 index", len(t.Admins))
	case len(t.Features) > math.MaxUint8+1:
		return fmt.Errorf("citydata: %d feature codes do not fit a uint8 index", len(t.Features))
	}
	for i, c := range t.Cities {
		if int(c.Country) >= len(t.Countries) || int(c.Admin) >= len(t.Admins) || int(c.Feature) >= len(t.Features) {
			return fmt.Errorf("citydata: city %d (%s) has a dictionary index out of range", i, c.Name)
		}
	}
	var b []byte
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = append(b, magic...)
	b = binary.AppendUvarint(b, uint64(len(t.Countries)))
	for _, c := range t.Countries {
		str(c.Code)
		str(c.Name)
	}
	for _, dict := range [][]string{t.Admins, t.Features} {
		b = binary.AppendUvarint(b, uint64(len(dict)))
		for _, s := range dict {
			str(s)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(t.Cities)))
	var prevID int64
	for _, c := range t.Cities {
		b = binary.AppendVarint(b, int64(c.ID)-prevID)
		prevID = int64(c.ID)
	}
	for _, c := range t.Cities {
		b = binary.AppendUvarint(b, uint64(len(c.Name)))
	}
	for _, c := range t.Cities {
		b = append(b, c.Name...)
	}
	for _, col := range []func(City) uint64{
		func(c City) uint64 { return uint64(c.Country) },
		func(c City) uint64 { return uint64(c.Admin) },
		func(c City) uint64 { return uint64(c.Feature) },
		func(c City) uint64 { return uint64(c.Population) },
	} {
		for _, c := range t.Cities {
			b = binary.AppendUvarint(b, col(c))
		}
	}
	var prevLat, prevLng int64
	for _, c := range t.Cities {
		b = binary.AppendVarint(b, int64(c.Lat)-prevLat)
		prevLat = int64(c.Lat)
	}
	for _, c := range t.Cities {
		b = binary.AppendVarint(b, int64(c.Lng)-prevLng)
		prevLng = int64(c.Lng)
	}

	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return fmt.Errorf("citydata: %w", err)
	}
	if _, err := zw.Write(b); err != nil {
		return fmt.Errorf("citydata: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("citydata: %w", err)
	}
	return nil
}

// errCorrupt reports data that does not follow the encoding.
var errCorrupt = errors.New("citydata: corrupt data")

// decoder reads varints and strings from an uncompressed table.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a length that must fit in the bytes left, at least min bytes per item.
func (d *decoder) count(min int) int {
	v := d.uvarint()
	if d.err == nil && v > uint64(len(d.b)/min) {
		d.err = errCorrupt
		return 0
	}
	return int(v)
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.err = errCorrupt
		return nil
	}
	s := d.b[:n]
	d.b = d.b[n:]
	return s
}

func (d *decoder) string() string { return string(d.bytes(d.count(1))) }

func (d *decoder) strings() []string {
	s := make([]string, d.count(1))
	for i := range s {
		s[i] = d.string()
	}
	return s
}

// Decode reads a table written by Encode.
func Decode(r io.Reader) (*Table, error) {
	zr, err := gzip.NewReader(bufio.NewReader(r))
	if err != nil {
		return nil, fmt.Errorf("citydata: %w", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("citydata: %w", err)
	}
	if !bytes.HasPrefix(raw, []byte(magic)) {
		return nil, errors.New("citydata: not a herd city table of this version")
	}
	d := &decoder{b: raw[len(magic):]}
	t := &Table{Countries: make([]Country, d.count(2))}
	for i := range t.Countries {
		t.Countries[i] = Country{Code: d.string(), Name: d.string()}
	}
	t.Admins = d.strings()
	t.Features = d.strings()
	t.Cities = make([]City, d.count(6))
	cities := t.Cities

	var id int64
	for i := range cities {
		id += d.varint()
		if id < 0 || id > math.MaxUint32 {
			return nil, errCorrupt
		}
		cities[i].ID = uint32(id)
	}
	total := 0
	lens := make([]int, len(cities))
	for i := range lens {
		lens[i] = d.count(1)
		total += lens[i]
	}
	names := string(d.bytes(total)) // one allocation; every name is a substring
	for i, n := range lens {
		if d.err != nil {
			break
		}
		cities[i].Name, names = names[:n], names[n:]
	}
	for i := range cities {
		cities[i].Country = uint16(d.index(len(t.Countries)))
	}
	for i := range cities {
		cities[i].Admin = uint16(d.index(len(t.Admins)))
	}
	for i := range cities {
		cities[i].Feature = uint8(d.index(len(t.Features)))
	}
	for i := range cities {
		p := d.uvarint()
		if p > math.MaxUint32 {
			return nil, errCorrupt
		}
		cities[i].Population = uint32(p)
	}
	var lat, lng int64
	for i := range cities {
		lat += d.varint()
		if lat < -90e5 || lat > 90e5 {
			return nil, errCorrupt
		}
		cities[i].Lat = int32(lat)
	}
	for i := range cities {
		lng += d.varint()
		if lng < -180e5 || lng > 180e5 {
			return nil, errCorrupt
		}
		cities[i].Lng = int32(lng)
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("citydata: %d stray bytes after the table", len(d.b))
	}
	return t, nil
}

// index reads a dictionary index below n.
func (d *decoder) index(n int) uint64 {
	v := d.uvarint()
	if d.err == nil && v >= uint64(n) {
		d.err = errCorrupt
	}
	return v
}

// Hilbert returns the position of a point, in 1e-5 degree units, on a
// Hilbert curve over a 2^16 x 2^16 grid of the world. Points close on the
// curve are close on the map: sorting by it keeps neighbours together.
func Hilbert(lat, lng int32) uint64 {
	const n = 1 << 16
	x := uint64((int64(lng) + 180e5) * (n - 1) / 360e5)
	y := uint64((int64(lat) + 90e5) * (n - 1) / 180e5)
	var d uint64
	for s := uint64(n / 2); s > 0; s /= 2 {
		var rx, ry uint64
		if x&s != 0 {
			rx = 1
		}
		if y&s != 0 {
			ry = 1
		}
		d += s * s * ((3 * rx) ^ ry)
		if ry == 0 {
			if rx == 1 {
				x, y = n-1-x, n-1-y
			}
			x, y = y, x
		}
	}
	return d
}
