// Package logging builds a server's logger from its configuration, in one
// place: the level (log_level), the format (log_format: logfmt text or JSON
// lines, from internal/logfmt), and the output (log_to): stdout, or
// log_dir/NAME.log, rotated by size (log_max_bytes, log_keep) with
// lumberjack. Either output sits behind a buffered sink (internal/logsink),
// so no caller waits for the disk, and a failing output is reported on
// stderr and retried rather than ending logging.
package logging

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/herd-dev/herd/internal/config"
	"github.com/herd-dev/herd/internal/logfmt"
	"github.com/herd-dev/herd/internal/logsink"
)

// Options replace where a log goes; the zero value follows the
// configuration, with os.Stdout and os.Stderr.
type Options struct {
	// Output, if set, receives every record as it is written, in place of
	// the configured output and without a sink. It must be safe for
	// concurrent writes. Tests use it.
	Output io.Writer
	// Stdout is where log_to: stdout writes.
	Stdout io.Writer
	// Stderr is where a failing output is reported.
	Stderr io.Writer
}

// Log is one server's logger and the output it owns.
type Log struct {
	// Logger logs with the server's name on every record.
	Logger *slog.Logger
	// Path is the log file, or "" when the log goes to stdout or to
	// Options.Output.
	Path string

	sink   *logsink.Sink // nil with Options.Output
	output io.Closer     // the file, closed after the sink; nil for stdout
}

// Open builds the log of the server called name as cfg says.
func Open(cfg *config.Config, name string, o Options) (*Log, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, fmt.Errorf("logging: log_level: %w", err)
	}
	newHandler := logfmt.NewHandler
	if cfg.LogFormat == config.LogFormatJSON {
		newHandler = logfmt.NewJSONHandler
	}
	l := &Log{}
	out := o.Output
	if out == nil {
		var err error
		if out, err = l.openOutput(cfg, name, o); err != nil {
			return nil, err
		}
	}
	l.Logger = slog.New(newHandler(out, level)).With("server", name)
	return l, nil
}

// openOutput opens the configured output behind a sink.
func (l *Log) openOutput(cfg *config.Config, name string, o Options) (io.Writer, error) {
	var out io.Writer
	switch cfg.LogTo {
	case config.LogToStdout:
		out = cmp.Or[io.Writer](o.Stdout, os.Stdout)
	case config.LogToFile:
		if err := os.MkdirAll(cfg.LogDir, 0o755); err != nil {
			return nil, fmt.Errorf("logging: log_dir: %w", err)
		}
		l.Path = filepath.Join(cfg.LogDir, name+".log")
		// Opened here even when lumberjack writes it, so that a file that
		// cannot be written stops the server at start, and lumberjack keeps
		// this mode for the files it rotates to.
		f, err := os.OpenFile(l.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("logging: log file: %w", err)
		}
		out, l.output = f, f
		if cfg.LogMaxBytes > 0 {
			f.Close()
			r, err := openRotating(l.Path, cfg.LogMaxBytes, cfg.LogKeep)
			if err != nil {
				return nil, err
			}
			out, l.output = r, r
		}
	default:
		return nil, fmt.Errorf("logging: log_to: %q is not one of file, stdout", cfg.LogTo)
	}
	stderr := cmp.Or[io.Writer](o.Stderr, os.Stderr)
	where := cmp.Or(l.Path, "stdout")
	l.sink = logsink.New(out, logsink.Options{
		Failed: func(err error) {
			fmt.Fprintf(stderr, "herd: %s: cannot write the log to %s (%v); holding log lines, then dropping them, until it can\n",
				name, where, err)
		},
		Recovered: func(dropped uint64) {
			fmt.Fprintf(stderr, "herd: %s: writing the log to %s again; %d lines were dropped\n", name, where, dropped)
			if dropped > 0 {
				l.Logger.Warn("log lines were dropped while the log could not be written", "dropped", dropped)
			}
		},
	})
	return l.sink, nil
}

// Dropped returns how many log lines were dropped because the output
// failed, since Open.
func (l *Log) Dropped() uint64 {
	if l.sink == nil {
		return 0
	}
	return l.sink.Dropped()
}

// Close writes what is buffered and closes the log file.
func (l *Log) Close() error {
	var err error
	if l.sink != nil {
		err = l.sink.Close()
	}
	if l.output != nil {
		if cerr := l.output.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// rotating is a log file that lumberjack rotates when rotating says: at a
// line boundary, before the file would pass maxBytes. lumberjack names a
// rotated file by the millisecond, so two rotations are kept a millisecond
// apart (a backlog flushed at once can fill several small files), lest
// the second overwrite the first.
type rotating struct {
	file        *lumberjack.Logger
	maxBytes    int64
	size        int64 // of the current file
	lastRotated time.Time
}

func openRotating(path string, maxBytes int64, keep int) (*rotating, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("logging: log file: %w", err)
	}
	return &rotating{
		// lumberjack's own limit, in MiB, is put out of reach.
		file:     &lumberjack.Logger{Filename: path, MaxSize: 1 << 30, MaxBackups: keep},
		maxBytes: maxBytes,
		size:     info.Size(),
	}, nil
}

func (r *rotating) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n := len(p)
		if r.size+int64(n) > r.maxBytes {
			room := int(max(0, min(r.maxBytes-r.size, int64(n))))
			n = bytes.LastIndexByte(p[:room], '\n') + 1 // the lines that fit
		}
		if n == 0 && r.size > 0 {
			if err := r.rotate(); err != nil {
				return written, err
			}
			continue
		}
		if n == 0 { // a line longer than maxBytes gets a file of its own
			if n = bytes.IndexByte(p, '\n') + 1; n == 0 {
				n = len(p)
			}
		}
		m, err := r.file.Write(p[:n])
		r.size += int64(m)
		written += m
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

func (r *rotating) rotate() error {
	if now := time.Now(); now.UnixMilli() == r.lastRotated.UnixMilli() {
		time.Sleep(now.Truncate(time.Millisecond).Add(time.Millisecond).Sub(now))
	}
	if err := r.file.Rotate(); err != nil {
		return err
	}
	r.size, r.lastRotated = 0, time.Now()
	return nil
}

func (r *rotating) Close() error { return r.file.Close() }
