package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"
	"go.uber.org/zap/zapcore"

	"github.com/herd-dev/herd/internal/logfmt"
	"github.com/herd-dev/herd/internal/logsink"
)

// logRecord logs msg with a string and a []byte attribute, the shape of
// every record the server logs per line.
type logRecord func(msg, key string, value string, bytesKey string, bytes []byte)

// A candidate is a logger of a library writing to w. Buffered, it writes
// through herd's sink, or zap's BufferedWriteSyncer if zap.
type candidate struct {
	name string
	new  func(w io.Writer) logRecord
	zap  bool
}

// slogRecord logs as the server does: a record built without slog's
// caller lookup, handed to the handler.
func slogRecord(h slog.Handler) logRecord {
	h = h.WithAttrs([]slog.Attr{slog.String("server", "Alford")})
	return func(msg, key, value, bytesKey string, bytes []byte) {
		r := slog.NewRecord(time.Now(), slog.LevelInfo, msg, 0)
		r.AddAttrs(slog.String(key, value), slog.Any(bytesKey, bytes))
		h.Handle(context.Background(), r)
	}
}

func slogHandler[H slog.Handler](newHandler func(io.Writer, *slog.HandlerOptions) H) func(io.Writer) logRecord {
	return func(w io.Writer) logRecord { return slogRecord(newHandler(w, nil)) }
}

func herdHandler(newHandler func(io.Writer, slog.Leveler) *logfmt.Handler) func(io.Writer) logRecord {
	return func(w io.Writer) logRecord { return slogRecord(newHandler(w, nil)) }
}

func zapCore(w io.Writer, newEncoder func(zapcore.EncoderConfig) zapcore.Encoder) zapcore.Core {
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey, enc.MessageKey, enc.EncodeTime, enc.EncodeLevel = "time", "msg", zapcore.RFC3339NanoTimeEncoder, zapcore.CapitalLevelEncoder
	return zapcore.NewCore(newEncoder(enc), zapcore.AddSync(w), zapcore.InfoLevel)
}

func zapNative(newEncoder func(zapcore.EncoderConfig) zapcore.Encoder) func(io.Writer) logRecord {
	return func(w io.Writer) logRecord {
		log := zap.New(zapCore(w, newEncoder)).With(zap.String("server", "Alford"))
		return func(msg, key, value, bytesKey string, bytes []byte) {
			log.Info(msg, zap.String(key, value), zap.ByteString(bytesKey, bytes))
		}
	}
}

var candidates = []candidate{
	{"herd-text", herdHandler(logfmt.NewHandler), false},
	{"herd-json", herdHandler(logfmt.NewJSONHandler), false},
	{"slog-text", slogHandler(slog.NewTextHandler), false},
	{"slog-json", slogHandler(slog.NewJSONHandler), false},
	{"zap-console", zapNative(zapcore.NewConsoleEncoder), true},
	{"zap-json", zapNative(zapcore.NewJSONEncoder), true},
	{"zapslog-json", func(w io.Writer) logRecord { return slogRecord(zapslog.NewHandler(zapCore(w, zapcore.NewJSONEncoder))) }, true},
	{"zerolog-json", func(w io.Writer) logRecord {
		log := zerolog.New(w).With().Timestamp().Str("server", "Alford").Logger()
		return func(msg, key, value, bytesKey string, bytes []byte) {
			log.Info().Str(key, value).Bytes(bytesKey, bytes).Msg(msg)
		}
	}, false},
}

// BenchmarkLoggers compares herd's handler and sink with the standard
// library's handlers, zap (natively and through slog, as herd's server
// would use it) and zerolog on the records herd logs most: a client's
// line, and a peer batch of 4 KB or 32 KB of HERD-AT lines. "format"
// writes each record to io.Discard, so it measures formatting alone;
// "buffered" writes through the library's buffer to /dev/null, so it adds
// what the buffer costs the caller (zap writes a full buffer on the
// caller's path; herd's sink on its own goroutine, which shares the cores)
// but not what the disk does, which is the same for all. "client-parallel"
// logs from every core at once.
func BenchmarkLoggers(b *testing.B) {
	line := []byte("IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1479413884.392014450")
	for _, dest := range []string{"format", "buffered"} {
		for _, c := range candidates {
			for _, r := range []struct {
				name, key, value, bytesKey string
				bytes                      []byte
			}{
				{"client", "remote", "127.0.0.1:5555", "line", line},
				{"batch-4K", "peer", "Ball", "lines", peerBatch(4 << 10)},
				{"batch-32K", "peer", "Ball", "lines", peerBatch(32 << 10)},
			} {
				b.Run(dest+"/"+c.name+"/"+r.name, func(b *testing.B) {
					log := openCandidate(b, c, dest)
					// Grow the buffers first, so that B/op is what a server
					// running for a while pays.
					for range 16 << 20 / (len(r.bytes) + 100) {
						log("in", r.key, r.value, r.bytesKey, r.bytes)
					}
					b.ReportAllocs()
					b.SetBytes(int64(len(r.bytes)))
					for b.Loop() {
						log("in", r.key, r.value, r.bytesKey, r.bytes)
					}
				})
			}
			b.Run(dest+"/"+c.name+"/client-parallel", func(b *testing.B) {
				log := openCandidate(b, c, dest)
				for range 16 << 20 / 200 {
					log("in", "remote", "127.0.0.1:5555", "line", line)
				}
				b.ResetTimer()
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						log("in", "remote", "127.0.0.1:5555", "line", line)
					}
				})
			})
		}
	}
}

// openCandidate opens c writing to dest, format or buffered, until the
// benchmark ends.
func openCandidate(b *testing.B, c candidate, dest string) logRecord {
	b.Helper()
	if dest == "format" {
		return c.new(io.Discard)
	}
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	if c.zap {
		ws := &zapcore.BufferedWriteSyncer{WS: f}
		b.Cleanup(func() { ws.Stop() })
		return c.new(ws)
	}
	sink := logsink.New(f, logsink.Options{})
	b.Cleanup(func() { sink.Close() })
	return c.new(sink)
}

// peerBatch returns HERD-AT lines, each ending in a newline, of about size
// bytes together.
func peerBatch(size int) []byte {
	var batch []byte
	for i := 0; len(batch) < size; i++ {
		batch = fmt.Appendf(batch, "HERD-AT 4294967297 %d Alford +0.263873386 client-%d +34.068930-118.445127 1479413884.392014450 4e1c0a7f\n", i, i)
	}
	return batch
}
