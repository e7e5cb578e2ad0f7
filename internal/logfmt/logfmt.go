// Package logfmt holds the slog.Handler herd logs through. It writes one
// line per record, either logfmt in the format of slog.TextHandler
// (time=… level=… msg=… key=value) or one JSON object with the same keys
// in the same order. It is built for a server that logs every line it reads
// and writes: values are quoted by copying runs of plain bytes at once
// rather than rune by rune, and nothing is allocated per record.
//
// Unlike slog.JSONHandler, the JSON form writes a []byte as a string (not
// base64) and a duration as its text ("1.5ms"), like the logfmt form, and
// flattens groups into dotted keys ("g.k"), so both forms carry the same
// keys and values.
package logfmt

import (
	"cmp"
	"context"
	"encoding"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Handler writes records to an io.Writer. Each record is one Write call.
type Handler struct {
	w      io.Writer
	level  slog.Leveler
	json   bool   // JSON objects rather than logfmt
	prefix string // formatted attributes from WithAttrs, each with its leading separator
	group  string // key prefix from WithGroup, ending in "."
}

// NewHandler returns a handler writing logfmt lines for records at or above
// level to w (slog.LevelInfo if level is nil). w must be safe for concurrent
// writes.
func NewHandler(w io.Writer, level slog.Leveler) *Handler {
	return &Handler{w: w, level: cmp.Or[slog.Leveler](level, slog.LevelInfo)}
}

// NewJSONHandler is like NewHandler but writes each record as one JSON
// object on a line: {"time":…,"level":…,"msg":…,"key":value,…}.
func NewJSONHandler(w io.Writer, level slog.Leveler) *Handler {
	h := NewHandler(w, level)
	h.json = true
	return h
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

var buffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Handle implements slog.Handler.
func (h *Handler) Handle(_ context.Context, r slog.Record) error {
	bp := buffers.Get().(*[]byte)
	b := (*bp)[:0]
	if h.json {
		b = h.appendJSONHead(b, r)
	} else {
		b = appendTextHead(b, r)
	}
	b = append(b, h.prefix...)
	r.Attrs(func(a slog.Attr) bool {
		b = h.appendAttr(b, h.group, a)
		return true
	})
	if h.json {
		b = append(b, '}')
	}
	b = append(b, '\n')
	_, err := h.w.Write(b)
	if cap(b) <= 64<<10 {
		*bp = b
		buffers.Put(bp)
	}
	return err
}

func appendTextHead(b []byte, r slog.Record) []byte {
	if !r.Time.IsZero() {
		b = append(b, "time="...)
		b = appendTime(b, r.Time)
		b = append(b, ' ')
	}
	b = append(b, "level="...)
	b = append(b, r.Level.String()...)
	b = append(b, " msg="...)
	return appendString(b, r.Message)
}

func (h *Handler) appendJSONHead(b []byte, r slog.Record) []byte {
	b = append(b, '{')
	if !r.Time.IsZero() {
		b = append(b, `"time":"`...)
		b = appendTime(b, r.Time)
		b = append(b, `",`...)
	}
	b = append(b, `"level":"`...)
	b = append(b, r.Level.String()...)
	b = append(b, `","msg":`...)
	return appendQuoted(b, r.Message, true)
}

// appendTime appends t in UTC as 2006-01-02T15:04:05.000Z. Records come in
// bursts within one second, so the part up to the second is formatted once
// per second and shared.
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	sec := t.Unix()
	c := lastSecond.Load()
	if c == nil || c.sec != sec {
		c = &formattedSecond{sec: sec, text: t.Truncate(time.Second).AppendFormat(nil, "2006-01-02T15:04:05")}
		lastSecond.Store(c)
	}
	b = append(b, c.text...)
	ms := t.Nanosecond() / int(time.Millisecond)
	return append(b, '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
}

// formattedSecond is one second of wall time, formatted.
type formattedSecond struct {
	sec  int64
	text []byte
}

var lastSecond atomic.Pointer[formattedSecond]

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	b := []byte(h.prefix)
	for _, a := range attrs {
		b = h.appendAttr(b, h.group, a)
	}
	h2 := *h
	h2.prefix = string(b)
	return &h2
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.group = h.group + name + "."
	return &h2
}

func (h *Handler) appendAttr(b []byte, group string, a slog.Attr) []byte {
	v := a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return b
	}
	if v.Kind() == slog.KindGroup {
		g := group
		if a.Key != "" {
			g += a.Key + "."
		}
		for _, ga := range v.Group() {
			b = h.appendAttr(b, g, ga)
		}
		return b
	}
	if h.json {
		b = append(b, ',')
		b = appendQuoted(b, group+a.Key, true)
		b = append(b, ':')
	} else {
		b = append(b, ' ')
		b = appendString(b, group+a.Key)
		b = append(b, '=')
	}
	return appendValue(b, v, h.json)
}

func appendValue(b []byte, v slog.Value, json bool) []byte {
	switch v.Kind() {
	case slog.KindString:
		return appendText(b, v.String(), json)
	case slog.KindInt64:
		return strconv.AppendInt(b, v.Int64(), 10)
	case slog.KindUint64:
		return strconv.AppendUint(b, v.Uint64(), 10)
	case slog.KindFloat64:
		if f := v.Float64(); json && (math.IsNaN(f) || math.IsInf(f, 0)) {
			return appendText(b, strconv.FormatFloat(f, 'g', -1, 64), json) // not a JSON number
		}
		return strconv.AppendFloat(b, v.Float64(), 'g', -1, 64)
	case slog.KindBool:
		return strconv.AppendBool(b, v.Bool())
	case slog.KindDuration:
		return appendText(b, v.Duration().String(), json)
	case slog.KindTime:
		return appendText(b, v.Time().Format(time.RFC3339Nano), json)
	}
	switch x := v.Any().(type) {
	case []byte:
		return appendText(b, x, json)
	case error:
		return appendText(b, x.Error(), json)
	case encoding.TextMarshaler:
		t, err := x.MarshalText()
		if err != nil {
			return appendText(b, "!ERROR:"+err.Error(), json)
		}
		return appendText(b, t, json)
	default:
		return appendText(b, fmt.Sprint(x), json)
	}
}

// appendText appends s as a value: a JSON string, or a logfmt value,
// quoted only if it must be.
func appendText[T string | []byte](b []byte, s T, json bool) []byte {
	if json {
		return appendQuoted(b, s, true)
	}
	return appendString(b, s)
}

// appendString appends s as a logfmt key or value, quoted only if it must
// be.
func appendString[T string | []byte](b []byte, s T) []byte {
	if !needsQuoting(s) {
		return append(b, s...)
	}
	return appendQuoted(b, s, false)
}

// needsQuoting reports whether s would not read back as one logfmt value.
func needsQuoting[T string | []byte](s T) bool {
	if len(s) == 0 {
		return true
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f {
			return true
		}
	}
	return false
}

const hexDigits = "0123456789abcdef"

// plainBytes marks the bytes a quoted string holds as they are: printable
// ASCII but the quote and the backslash in logfmt (plainBytes[0]), and in
// JSON (plainBytes[1]) also DEL.
var plainBytes = func() (plain [2][256]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		plain[0][c] = c != '"' && c != '\\' && c != 0x7f
		plain[1][c] = c != '"' && c != '\\'
	}
	return plain
}()

// appendQuoted appends s as a double-quoted string, in JSON if json is
// set and otherwise as Go would quote it. ASCII that prints and valid
// UTF-8 (in logfmt, only printable runes) are kept. Other bytes are
// escaped: in logfmt as \xNN; in JSON a control character as \u00NN and
// each invalid byte as \ufffd, as encoding/json does.
func appendQuoted[T string | []byte](b []byte, s T, json bool) []byte {
	plain := &plainBytes[0]
	if json {
		plain = &plainBytes[1]
	}
	// b[:j] is written, and b[j:] has room for the rest of s as it is and
	// the closing quote, so the loop copies runs of plain bytes and writes
	// escapes by index; an escape, longer than the byte it stands for,
	// makes room first.
	j := len(b)
	b = slices.Grow(b, len(s)+2)
	b = b[:cap(b)]
	b[j] = '"'
	j++
	kept := 0 // s[kept:i] is kept as it is, and not yet copied
	for i := 0; i < len(s); {
		// Skip plain bytes eight at a time, then one at a time.
		for i+8 <= len(s) && notPlain(load64(s, i), !json) == 0 {
			i += 8
		}
		if i == len(s) {
			break
		}
		c := s[i]
		if plain[c] {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			if r, size := decodeRune(s[i:]); size > 1 && (json || strconv.IsPrint(r)) {
				i += size
				continue
			}
		}
		const longestEscape = len(`\ufffd`)
		if len(b)-j < len(s)-kept+longestEscape {
			b = slices.Grow(b[:j], len(s)-kept+longestEscape)
			b = b[:cap(b)]
		}
		j += copy(b[j:], s[kept:i])
		b[j] = '\\'
		switch {
		case c == '"' || c == '\\':
			b[j+1] = c
			j += 2
		case c == '\n':
			b[j+1] = 'n'
			j += 2
		case c == '\r':
			b[j+1] = 'r'
			j += 2
		case c == '\t':
			b[j+1] = 't'
			j += 2
		case !json:
			b[j+1], b[j+2], b[j+3] = 'x', hexDigits[c>>4], hexDigits[c&0xf]
			j += 4
		case c < ' ':
			b[j+1], b[j+2], b[j+3], b[j+4], b[j+5] = 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf]
			j += 6
		default:
			j += copy(b[j:], `\ufffd`)
		}
		i++
		kept = i
	}
	j += copy(b[j:], s[kept:])
	b[j] = '"'
	return b[:j+1]
}

// decodeRune is utf8.DecodeRune for a string or a byte slice.
func decodeRune[T string | []byte](s T) (rune, int) {
	return utf8.DecodeRuneInString(string(s[:min(len(s), utf8.UTFMax)]))
}

// load64 reads s[i:i+8] as a little-endian number.
func load64[T string | []byte](s T, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// notPlain returns the high bit of each of the 8 bytes in x, from the
// lowest, that is not printable ASCII or is the quote, the backslash or
// (if del) DEL, or a byte after such a one.
func notPlain(x uint64, del bool) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	quote, backslash := x^(ones*'"'), x^(ones*'\\')
	// In a byte without its high bit, a subtraction sets the high bit only
	// where the byte was below the subtracted one, or a lower byte was, so
	// the lowest byte marked is the first that is not plain.
	t := x | (x - ones*' ') | (quote - ones) | (backslash - ones)
	if del {
		d := x ^ (ones * 0x7f)
		t |= d - ones
	}
	return t & highs
}
