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
// giving its length; body is a WHATSAT reply's JSON. A peer record holds the messages of one
// write or read, newline-separated, split into records of at most
// maxLogLines bytes so that no record passes the line limits of log
// collectors (Docker's 16 KiB, journald's 48 KiB). Peer records that carry
// updates are Info; heartbeats and acknowledgements (PING, ACK, and writes
// with nothing but a MARK) are Debug, so an idle herd logs next to
// nothing. The records skip slog.Logger's caller lookup, which herd's log
// format does not print and which would cost a third of each record.

// maxLogLines is the most bytes of peer lines one log record carries.
const maxLogLines = 8 << 10

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
