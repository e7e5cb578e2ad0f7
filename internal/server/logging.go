package server

import (
	"bytes"
	"context"
	"log/slog"
	"time"
)

// The server logs every line it reads and writes, as SPEC.md requires:
//
//	msg=in|out remote=ADDR line=LINE [line_bytes=N] [body=JSON]  client traffic, Info
//	msg=in|out peer=NAME lines=LINES [stored=N duplicates=N] peer traffic
//
// A client record holds one line, its first maxLoggedClientLine bytes if it
// is longer (line_bytes then says how long it was). A peer record holds the messages of one
// write or read, newline-separated, split into records of at most
// maxLogLines bytes so that no record passes the line limits of log
// collectors (Docker's 16 KiB, journald's 48 KiB). Peer records that carry
// updates are Info; heartbeats and acknowledgements (PING, ACK, and writes
// with nothing but a MARK) are Debug, so an idle herd logs next to
// nothing. The records skip slog.Logger's caller lookup, which herd's log
// format does not print and which would cost a third of each record.

// maxLogLines is the most bytes of peer lines one log record carries.
const maxLogLines = 8 << 10

// maxLoggedClientLine is the most of a client's line a record carries; a
// longer one is logged cut, with line_bytes giving its length, so that a
// client sending huge lines cannot fill the disk with them twice over (in,
// and its "? line" out).
const maxLoggedClientLine = 1 << 10

// logClientLine logs a line a client sent or was sent (msg "in" or "out")
// at time now, with the body that follows it, if any.
func (s *Server) logClientLine(now time.Time, msg, remote string, line slog.Value, body []byte) {
	h := s.log.Handler()
	if !h.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	r := slog.NewRecord(now, slog.LevelInfo, msg, 0)
	if b, ok := line.Any().([]byte); ok && line.Kind() == slog.KindAny && len(b) > maxLoggedClientLine {
		r.AddAttrs(slog.String("remote", remote), slog.Any("line", b[:maxLoggedClientLine]), slog.Int("line_bytes", len(b)))
	} else {
		r.AddAttrs(slog.String("remote", remote), slog.Attr{Key: "line", Value: line})
	}
	if body != nil {
		r.AddAttrs(slog.Any("body", body))
	}
	h.Handle(context.Background(), r)
}

// logPeerLines logs lines a peer link read or wrote (msg "in" or "out") at
// level, the last record followed by attrs.
func (s *Server) logPeerLines(now time.Time, level slog.Level, msg, peerName string, lines []byte, attrs ...slog.Attr) {
	h := s.log.Handler()
	if !h.Enabled(context.Background(), level) {
		return
	}
	for len(lines) > 0 {
		chunk := lines[:logChunkEnd(lines)]
		lines = lines[len(chunk):]
		r := slog.NewRecord(now, level, msg, 0)
		r.AddAttrs(slog.String("peer", peerName), slog.Any("lines", bytes.TrimSuffix(chunk, []byte("\n"))))
		if len(lines) == 0 {
			r.AddAttrs(attrs...)
		}
		h.Handle(context.Background(), r)
	}
}

// logChunkEnd returns where the first log record's share of lines ends:
// after the last whole line within maxLogLines bytes, or after the first
// line if that alone is longer.
func logChunkEnd(lines []byte) int {
	if len(lines) <= maxLogLines {
		return len(lines)
	}
	if i := bytes.LastIndexByte(lines[:maxLogLines], '\n'); i >= 0 {
		return i + 1
	}
	if i := bytes.IndexByte(lines, '\n'); i >= 0 {
		return i + 1
	}
	return len(lines)
}

// heartbeatLevel is the level of a peer write or read that carries no
// update: Debug, unless it does.
func heartbeatLevel(updates int) slog.Level {
	if updates > 0 {
		return slog.LevelInfo
	}
	return slog.LevelDebug
}
