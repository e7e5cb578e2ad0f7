package offline

import (
	"strconv"
	"unicode/utf8"
)

// jsonWriter appends JSON indented as json.MarshalIndent(v, "", "   ")
// would, without reflection or allocations beyond growing its buffer.
type jsonWriter struct {
	b     []byte
	depth int
	empty bool // the innermost open object or array has no member yet
}

// newlineIndent is a line break followed by enough indentation for any
// depth the answers reach; deeper levels are indented in further steps.
const newlineIndent = "\n                              "

func (w *jsonWriter) newline() {
	spaces := 3 * w.depth
	if n := len(newlineIndent) - 1; spaces > n {
		w.b = append(w.b, newlineIndent...)
		for spaces -= n; spaces > 0; spaces -= 3 {
			w.b = append(w.b, "   "...)
		}
		return
	}
	w.b = append(w.b, newlineIndent[:1+spaces]...)
}

// open starts an object ('{') or array ('[') as the current value.
func (w *jsonWriter) open(c byte) {
	w.b = append(w.b, c)
	w.depth++
	w.empty = true
}

// close ends the innermost object ('}') or array (']').
func (w *jsonWriter) close(c byte) {
	w.depth--
	if !w.empty {
		w.newline()
	}
	w.b = append(w.b, c)
	w.empty = false
}

// elem starts the next element of an array.
func (w *jsonWriter) elem() {
	if !w.empty {
		w.b = append(w.b, ',')
	}
	w.newline()
	w.empty = false
}

// key starts the next member of an object. Keys are constants of plain
// ASCII, so they are written without escaping.
func (w *jsonWriter) key(k string) {
	w.elem()
	w.b = append(w.b, '"')
	w.b = append(w.b, k...)
	w.b = append(w.b, `": `...)
}

// str appends s as a JSON string.
func (w *jsonWriter) str(s string) {
	w.b = append(w.b, '"')
	w.b = appendEscaped(w.b, s)
	w.b = append(w.b, '"')
}

// strs appends the concatenation of parts as one JSON string.
func (w *jsonWriter) strs(parts ...string) {
	w.b = append(w.b, '"')
	for _, s := range parts {
		w.b = appendEscaped(w.b, s)
	}
	w.b = append(w.b, '"')
}

// degrees appends a coordinate stored in units of 1e-7 degree as
// encoding/json writes float64(v)/1e7: the shortest decimal that reads back
// as that float. Within ±2^31 (so ±214.7 degrees) that is the exact decimal
// v/1e7 with trailing zeros dropped: two decimals of at most seven
// fractional digits lie 1e-7 apart, far more than the floats' spacing
// there, so no shorter one reads back the same. It is formatted from the
// integer, without strconv's float formatting.
func (w *jsonWriter) degrees(v int32) {
	u := uint64(v)
	if v < 0 {
		w.b = append(w.b, '-')
		u = uint64(-int64(v))
	}
	w.b = strconv.AppendUint(w.b, u/e7, 10)
	frac := u % e7
	if frac == 0 {
		return
	}
	digits := 7
	for frac%10 == 0 {
		frac /= 10
		digits--
	}
	var buf [8]byte
	buf[0] = '.'
	for i := digits; i > 0; i-- {
		buf[i] = byte('0' + frac%10)
		frac /= 10
	}
	w.b = append(w.b, buf[:1+digits]...)
}

// uint appends n.
func (w *jsonWriter) uint(n uint64) { w.b = strconv.AppendUint(w.b, n, 10) }

// strList appends an array of strings.
func (w *jsonWriter) strList(list []string) {
	w.open('[')
	for _, s := range list {
		w.elem()
		w.str(s)
	}
	w.close(']')
}

const hex = "0123456789abcdef"

// appendEscaped appends the body of a JSON string holding s: quotes,
// backslashes and control characters escaped, invalid UTF-8 replaced by
// U+FFFD, and U+2028 and U+2029 escaped so the text is also valid
// JavaScript.
func appendEscaped(b []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	return append(b, s[start:]...)
}
