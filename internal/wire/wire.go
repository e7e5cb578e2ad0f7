// Package wire parses and formats the lines of the herd's client protocol:
// IAMAT and WHATSAT from clients, and the AT lines servers answer with and
// store. It is pure: no I/O, no clock, and no allocation on the parse path,
// since every IAMAT a server takes passes through Parse.
//
// A line is bytes, not text. Fields are separated by runs of the white-space
// bytes space, tab, CR, LF, FF and VT; anything else, invalid UTF-8 included,
// belongs to a field and is copied verbatim.
package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strconv"
)

// Kind says which command a Msg holds.
type Kind uint8

// Kinds of Msg.
const (
	KindIAMAT Kind = iota + 1
	KindWHATSAT
	KindAT
)

// Limits of WHATSAT's arguments.
const (
	MaxRadiusKm = 50
	MaxLimit    = 20
)

// Errors returned by Parse. A caller turns every one of them into the same
// "? line" reply; they differ only for logs and tests.
var (
	ErrEmpty    = errors.New("wire: empty line")
	ErrUnknown  = errors.New("wire: unknown command")
	ErrFields   = errors.New("wire: wrong number of fields")
	ErrLocation = errors.New("wire: malformed or out-of-range location")
	ErrTime     = errors.New("wire: malformed time")
	ErrRadius   = errors.New("wire: radius not in (0, 50] km")
	ErrLimit    = errors.New("wire: bound not an integer in [1, 20]")
	ErrSkew     = errors.New("wire: malformed skew")
)

// Msg is one parsed line. Its byte fields alias the parsed line: copy them
// before the line's buffer is reused.
type Msg struct {
	Kind Kind

	Server []byte // AT: the server that took the IAMAT
	Skew   []byte // AT: that server's receive time minus the client time
	Client []byte // every kind: the client id

	Location []byte   // IAMAT, AT: as sent, e.g. +34.068930-118.445127
	Time     []byte   // IAMAT, AT: as sent, e.g. 1479413884.392014450
	Loc      Location // Location, parsed
	T        Time     // Time, parsed

	RadiusKm float64 // WHATSAT
	Limit    int     // WHATSAT
}

const maxFields = 7

// Parse reads one line (without its line ending).
func Parse(line []byte) (Msg, error) {
	var buf [maxFields][]byte
	f := fields(line, buf[:0])
	if len(f) == 0 {
		return Msg{}, ErrEmpty
	}
	switch string(f[0]) {
	case "IAMAT":
		return parseIAMAT(f)
	case "WHATSAT":
		return parseWHATSAT(f)
	case "AT":
		return parseAT(f)
	}
	return Msg{}, ErrUnknown
}

// Longest location and time fields a client may send. Each holds any value
// a client needs with room to spare (+34.068930-118.445127 is 21 bytes, a
// time to the nanosecond 20); without a cap, a client could make every
// server store, journal, flood and log tens of kilobytes per update.
const (
	MaxLocationBytes = 64
	MaxTimeBytes     = 32
)

// ErrFieldTooLong is a client's location or time past its cap.
var ErrFieldTooLong = errors.New("wire: location or time field too long")

// ClientFieldsFit reports whether m's location and time are within the
// caps on what a client sends. Parse holds IAMAT to them. AT lines are not:
// they come from neighbors and the journal, which may hold longer ones that
// earlier versions took; the caller holds an AT line a client sends itself
// to them.
func (m *Msg) ClientFieldsFit() bool {
	return len(m.Location) <= MaxLocationBytes && len(m.Time) <= MaxTimeBytes
}

func parseIAMAT(f [][]byte) (Msg, error) {
	if len(f) != 4 {
		return Msg{}, ErrFields
	}
	m := Msg{Kind: KindIAMAT, Client: f[1], Location: f[2], Time: f[3]}
	if !m.ClientFieldsFit() {
		return Msg{}, ErrFieldTooLong
	}
	return m, m.parsePosition()
}

// parsePosition parses the Location and Time fields into Loc and T.
func (m *Msg) parsePosition() error {
	var ok bool
	if m.Loc, ok = ParseLocation(m.Location); !ok {
		return ErrLocation
	}
	if m.T, ok = ParseTime(m.Time); !ok {
		return ErrTime
	}
	return nil
}

func parseWHATSAT(f [][]byte) (Msg, error) {
	if len(f) != 4 {
		return Msg{}, ErrFields
	}
	m := Msg{Kind: KindWHATSAT, Client: f[1]}
	r, ok := parseDecimal(f[2])
	if !ok || !r.positive() || !r.atMost(MaxRadiusKm) {
		return Msg{}, ErrRadius
	}
	m.RadiusKm = r.value
	if m.Limit, ok = parseLimit(f[3]); !ok {
		return Msg{}, ErrLimit
	}
	return m, nil
}

func parseAT(f [][]byte) (Msg, error) {
	if len(f) != 6 {
		return Msg{}, ErrFields
	}
	m := Msg{Kind: KindAT, Server: f[1], Skew: f[2], Client: f[3], Location: f[4], Time: f[5]}
	if !validSkew(m.Skew) {
		return Msg{}, ErrSkew
	}
	return m, m.parsePosition()
}

// AppendFormat appends m as a line (without line ending) in canonical form:
// single spaces between fields. For every Msg that Parse returns,
// Parse(m.AppendFormat(nil)) gives back an equal Msg.
func (m *Msg) AppendFormat(dst []byte) []byte {
	switch m.Kind {
	case KindIAMAT:
		dst = append(dst, "IAMAT "...)
		dst = appendFields(dst, m.Client, m.Location, m.Time)
	case KindWHATSAT:
		dst = append(dst, "WHATSAT "...)
		dst = append(dst, m.Client...)
		dst = append(dst, ' ')
		dst = strconv.AppendFloat(dst, m.RadiusKm, 'f', -1, 64)
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, int64(m.Limit), 10)
	case KindAT:
		dst = append(dst, "AT "...)
		dst = appendFields(dst, m.Server, m.Skew, m.Client, m.Location, m.Time)
	}
	return dst
}

// IsCanonical reports whether line, the text m was parsed from, is already
// what AppendFormat would make of m, so that a caller can keep line as it is.
// It answers false for a WHATSAT, whose radius may be written many ways.
func (m *Msg) IsCanonical(line []byte) bool {
	switch m.Kind {
	case KindIAMAT:
		return hasFields(line, "IAMAT ", m.Client, m.Location, m.Time)
	case KindAT:
		return hasFields(line, "AT ", m.Server, m.Skew, m.Client, m.Location, m.Time)
	}
	return false
}

// hasFields reports whether line is keyword followed by fs, each after one
// space. The fields come from parsing line, so they hold no white space.
func hasFields(line []byte, keyword string, fs ...[]byte) bool {
	if len(line) < len(keyword) || string(line[:len(keyword)]) != keyword {
		return false
	}
	at := len(keyword)
	for i, f := range fs {
		if i > 0 {
			if at >= len(line) || line[at] != ' ' {
				return false
			}
			at++
		}
		if at+len(f) > len(line) || string(line[at:at+len(f)]) != string(f) {
			return false
		}
		at += len(f)
	}
	return at == len(line)
}

func appendFields(dst []byte, fs ...[]byte) []byte {
	for i, f := range fs {
		if i > 0 {
			dst = append(dst, ' ')
		}
		dst = append(dst, f...)
	}
	return dst
}

// AppendAT appends the AT line a server answers an IAMAT with: its own name,
// the skew (receive time minus client time), and the client's three fields
// copied byte for byte.
func AppendAT(dst []byte, server string, received Time, iamat *Msg) []byte {
	dst = append(dst, "AT "...)
	dst = append(dst, server...)
	dst = append(dst, ' ')
	dst = AppendSkew(dst, received, iamat.T)
	dst = append(dst, ' ')
	return appendFields(dst, iamat.Client, iamat.Location, iamat.Time)
}

// IsSpace reports whether c separates fields.
func IsSpace(c byte) bool { return spaces[c] }

// spaces marks the bytes that separate fields: a table, since every byte of
// every line is looked up.
var spaces = [256]bool{' ': true, '\t': true, '\r': true, '\n': true, '\f': true, '\v': true}

// fields splits line at runs of white space into dst. It stops at
// maxFields+1 fields: more than any command has, so the caller still sees
// that there are too many.
func fields(line []byte, dst [][]byte) [][]byte {
	i := 0
	for len(dst) <= maxFields {
		for i < len(line) && spaces[line[i]] {
			i++
		}
		if i == len(line) {
			break
		}
		start := i
		// Skip eight bytes at a time while none can be white space.
		for i+8 <= len(line) && !hasByteBelowBang(binary.LittleEndian.Uint64(line[i:])) {
			i += 8
		}
		for i < len(line) && !spaces[line[i]] {
			i++
		}
		if len(dst) == maxFields {
			return append(dst[:maxFields:maxFields], line[start:i]) // one past: too many
		}
		dst = append(dst, line[start:i])
	}
	return dst
}

// hasByteBelowBang reports whether one of the eight bytes of w is below
// '!' (0x21), as every white-space byte is. It is exact, with no false
// answer either way, for any bytes.
func hasByteBelowBang(w uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	return (w-'!'*ones)&^w&highs != 0
}

// TrimSpace returns line without white space at either end.
func TrimSpace(line []byte) []byte {
	for len(line) > 0 && IsSpace(line[0]) {
		line = line[1:]
	}
	for len(line) > 0 && IsSpace(line[len(line)-1]) {
		line = line[:len(line)-1]
	}
	return line
}

func parseLimit(b []byte) (int, bool) {
	if len(b) == 0 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
		if n > MaxLimit {
			return 0, false
		}
	}
	return n, n >= 1
}

// validSkew accepts a sign, digits, a point and exactly nine digits.
func validSkew(b []byte) bool {
	if len(b) < 1+1+1+9 || (b[0] != '+' && b[0] != '-') || b[len(b)-10] != '.' {
		return false
	}
	return allDigits(b[1:len(b)-10]) && allDigits(b[len(b)-9:])
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

var doubleNewline = []byte("\n\n")

// AppendPlacesReply appends a WHATSAT reply: the stored AT line, then the
// places JSON with every run of newlines folded into one and trailing
// newlines removed, then the blank line that ends the reply.
func AppendPlacesReply(dst []byte, atLine string, body []byte) []byte {
	dst = append(dst, atLine...)
	return AppendPlacesBody(append(dst, '\n'), body)
}

// AppendPlacesBody appends the part of a WHATSAT reply after the AT line:
// body folded as AppendPlacesReply folds it, then the blank line. body may
// also be the bytes that follow dst in its array (dst[len(dst):][:len(body)]),
// as when the places provider appended it to dst: it is then folded in
// place, since folding only ever moves bytes towards the front.
func AppendPlacesBody(dst, body []byte) []byte {
	for len(body) > 0 && body[len(body)-1] == '\n' {
		body = body[:len(body)-1]
	}
	for {
		i := bytes.Index(body, doubleNewline)
		if i < 0 {
			break
		}
		dst = append(dst, body[:i+1]...)
		body = bytes.TrimLeft(body[i+1:], "\n")
	}
	dst = append(dst, body...)
	return append(dst, '\n', '\n')
}
