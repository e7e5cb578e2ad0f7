// Package logfmt is a slog.Handler that writes one logfmt line per record,
// in the format of slog.TextHandler (time=… level=… msg=… key=value), built
// for a server that logs every line it reads and writes: values are quoted
// by copying runs of plain bytes at once rather than rune by rune, and
// nothing is allocated per record.
package logfmt

import (
	"context"
	"encoding"
	"fmt"
	"io"
	"log/slog"
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
	prefix string // formatted attributes from WithAttrs, each with a leading space
	group  string // key prefix from WithGroup, ending in "."
}

// NewHandler returns a handler writing records at or above level to w
// (slog.LevelInfo if level is nil). w must be safe for concurrent writes.
func NewHandler(w io.Writer, level slog.Leveler) *Handler {
	if level == nil {
		level = slog.LevelInfo
	}
	return &Handler{w: w, level: level}
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

var buffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Handle implements slog.Handler.
func (h *Handler) Handle(_ context.Context, r slog.Record) error {
	bp := buffers.Get().(*[]byte)
	b := (*bp)[:0]
	if !r.Time.IsZero() {
		b = append(b, "time="...)
		b = appendTime(b, r.Time)
		b = append(b, ' ')
	}
	b = append(b, "level="...)
	b = append(b, r.Level.String()...)
	b = append(b, " msg="...)
	b = appendString(b, r.Message)
	b = append(b, h.prefix...)
	r.Attrs(func(a slog.Attr) bool {
		b = appendAttr(b, h.group, a)
		return true
	})
	b = append(b, '\n')
	_, err := h.w.Write(b)
	if cap(b) <= 64<<10 {
		*bp = b
		buffers.Put(bp)
	}
	return err
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
		b = appendAttr(b, h.group, a)
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

func appendAttr(b []byte, group string, a slog.Attr) []byte {
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
			b = appendAttr(b, g, ga)
		}
		return b
	}
	b = append(b, ' ')
	b = appendString(b, group+a.Key)
	b = append(b, '=')
	return appendValue(b, v)
}

func appendValue(b []byte, v slog.Value) []byte {
	switch v.Kind() {
	case slog.KindString:
		return appendString(b, v.String())
	case slog.KindInt64:
		return strconv.AppendInt(b, v.Int64(), 10)
	case slog.KindUint64:
		return strconv.AppendUint(b, v.Uint64(), 10)
	case slog.KindFloat64:
		return strconv.AppendFloat(b, v.Float64(), 'g', -1, 64)
	case slog.KindBool:
		return strconv.AppendBool(b, v.Bool())
	case slog.KindDuration:
		return appendString(b, v.Duration().String())
	case slog.KindTime:
		return v.Time().AppendFormat(b, time.RFC3339Nano)
	}
	switch x := v.Any().(type) {
	case []byte:
		return appendQuoted(b, x)
	case error:
		return appendString(b, x.Error())
	case encoding.TextMarshaler:
		t, err := x.MarshalText()
		if err != nil {
			return appendString(b, "!ERROR:"+err.Error())
		}
		return appendQuoted(b, t)
	default:
		return appendString(b, fmt.Sprint(x))
	}
}

func appendString(b []byte, s string) []byte {
	if !needsQuoting(s) {
		return append(b, s...)
	}
	return appendQuoted(b, []byte(s))
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

// plainByte marks the bytes a quoted string holds as they are: printable
// ASCII but the quote and the backslash.
var plainByte = func() (plain [256]bool) {
	for c := ' '; c < 0x7f; c++ {
		plain[c] = c != '"' && c != '\\'
	}
	return plain
}()

// appendQuoted appends s as a Go-style double-quoted string. Printable
// ASCII and valid, printable UTF-8 are kept; other bytes are escaped.
func appendQuoted(b, s []byte) []byte {
	if !needsQuoting(s) {
		return append(b, s...)
	}
	// Room for the worst case, every byte as \xNN, so the loop writes by
	// index rather than appending byte by byte.
	j := len(b)
	b = slices.Grow(b, 4*len(s)+2)[:j+4*len(s)+2]
	b[j] = '"'
	j++
	for i := 0; i < len(s); {
		c := s[i]
		if plainByte[c] {
			b[j] = c
			i, j = i+1, j+1
			continue
		}
		if c >= utf8.RuneSelf {
			if r, size := utf8.DecodeRune(s[i:]); r != utf8.RuneError && strconv.IsPrint(r) {
				j += copy(b[j:], s[i:i+size])
				i += size
				continue
			}
		}
		b[j] = '\\'
		switch c {
		case '"', '\\':
			b[j+1] = c
		case '\n':
			b[j+1] = 'n'
		case '\r':
			b[j+1] = 'r'
		case '\t':
			b[j+1] = 't'
		default:
			b[j+1], b[j+2], b[j+3] = 'x', hexDigits[c>>4], hexDigits[c&0xf]
			j += 2
		}
		i, j = i+1, j+2
	}
	b[j] = '"'
	return b[:j+1]
}
