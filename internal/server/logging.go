package server

import (
	"bytes"
	"context"
	"log/slog"
	"time"
)

// The server logs every line it reads and writes, as SPEC.md requires:
//
//	msg=client remote=ADDR in=LINE [out=REPLY] [body=JSON] kind=K outcome=O  client traffic, Info
//	msg=in|out peer=NAME lines=LINES [stored=N duplicates=N]                   peer traffic
//
// A client record holds a command and the reply it got (kind and outcome as
// in the herd_commands_total metric: for an IAMAT, outcome ok says it was
// stored and stale that a newer record was kept). A line longer than
// maxLoggedClientLine is logged cut to that, with in_bytes or out_bytes
// giving its length; body is a WHATSAT reply's JSON.
//
// A peer record holds the messages of one write or read, newline-separated,
// split into records of at most maxLogRecord bytes so that no record passes
// the line limits of log collectors (Docker's 16 KiB, journald's 48 KiB); a
// line too long for a record of its own is logged cut, with its length in
// line_bytes. Peer records that carry updates are Info; heartbeats and
// acknowledgements (PING, ACK, and writes with nothing but a MARK) are
// Debug, so an idle herd logs next to nothing. The records skip slog.Logger's caller lookup, which herd's log
// format does not print and which would cost a third of each record.

// maxLogRecord is the most bytes a peer log record takes, so that none
// passes the line limits of log collectors (Docker's 16 KiB, journald's
// 48 KiB).
const maxLogRecord = 8 << 10

// logLinesBudget is how much of a peer record its lines may take once
// quoted; the rest is for the time, level, message, names and counts.
const logLinesBudget = maxLogRecord - 512

// quotedSize is the most bytes each byte takes in a quoted log value:
// escaped in logfmt as \n or \xNN, in JSON as \u00NN or \ufffd.
var quotedSize = func() (size [256]int) {
	for c := range size {
		switch {
		case c == '\n' || c == '\r' || c == '\t' || c == '"' || c == '\\':
			size[c] = 2
		case c < ' ' || c >= 0x7f:
			size[c] = len(`\ufffd`)
		default:
			size[c] = 1
		}
	}
	return size
}()

// maxLoggedClientLine is the most of a client's line, or of the reply to
// it, that a record carries, so that a client sending huge lines cannot
// fill the disk with them twice over (in, and its "? line" out).
const maxLoggedClientLine = 1 << 10

// logExchange logs a client's command, read at now, and the reply it got
// (reply is empty when it got none).
func (s *Server) logExchange(now time.Time, remote string, in, reply []byte, kind Kind, outcome Outcome) {
	h := s.log.Handler()
	if !h.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	r := slog.NewRecord(now, slog.LevelInfo, "client", 0)
	r.AddAttrs(slog.String("remote", remote))
	addLine(&r, "in", in)
	if out, body, ok := bytes.Cut(reply, []byte("\n")); ok {
		addLine(&r, "out", out)
		if body = bytes.TrimSuffix(body, []byte("\n\n")); len(body) > 0 {
			r.AddAttrs(slog.Any("body", body))
		}
	}
	r.AddAttrs(slog.String("kind", kind.String()), slog.String("outcome", outcome.String()))
	h.Handle(context.Background(), r)
}

// addLine adds a client line under key, cut to maxLoggedClientLine with its
// length under key_bytes if it is longer.
func addLine(r *slog.Record, key string, line []byte) {
	if len(line) <= maxLoggedClientLine {
		r.AddAttrs(slog.Any(key, line))
		return
	}
	r.AddAttrs(slog.Any(key, line[:maxLoggedClientLine]), slog.Int(key+"_bytes", len(line)))
}

// logPeerLines logs lines a peer link read or wrote (msg "in" or "out") at
// level, the last record followed by attrs.
func (s *Server) logPeerLines(now time.Time, level slog.Level, msg, peerName string, lines []byte, attrs ...slog.Attr) {
	h := s.log.Handler()
	if !h.Enabled(context.Background(), level) {
		return
	}
	for len(lines) > 0 {
		end, whole := logChunk(lines)
		r := slog.NewRecord(now, level, msg, 0)
		r.AddAttrs(slog.String("peer", peerName), slog.Any("lines", bytes.TrimSuffix(lines[:end], []byte("\n"))))
		if whole {
			lines = lines[end:]
		} else {
			lineLen := len(lines)
			if i := bytes.IndexByte(lines, '\n'); i >= 0 {
				lineLen = i
			}
			r.AddAttrs(slog.Int("line_bytes", lineLen))
			lines = lines[min(lineLen+1, len(lines)):]
		}
		if len(lines) == 0 {
			r.AddAttrs(attrs...)
		}
		h.Handle(context.Background(), r)
	}
}

// logChunk returns where the first log record's share of lines ends: after
// the last whole line that fits logLinesBudget once quoted, with whole set;
// or, when the first line alone does not fit, where it must be cut.
func logChunk(lines []byte) (end int, whole bool) {
	if len(lines)*len(`\ufffd`) <= logLinesBudget {
		return len(lines), true // fits, however it is quoted
	}
	size, lastLineEnd := 0, 0
	for i, c := range lines {
		if size += quotedSize[c]; size > logLinesBudget {
			if lastLineEnd > 0 {
				return lastLineEnd, true
			}
			return i, false
		}
		if c == '\n' {
			lastLineEnd = i + 1
		}
	}
	return len(lines), true
}

// heartbeatLevel is the level of a peer write or read that carries no
// update: Debug, unless it does.
func heartbeatLevel(updates int) slog.Level {
	if updates > 0 {
		return slog.LevelInfo
	}
	return slog.LevelDebug
}
