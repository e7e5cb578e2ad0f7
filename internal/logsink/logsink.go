// Package logsink is an io.Writer that keeps log output off the caller's
// path: writes land in memory and a background goroutine moves them to the
// output (a log file, or stdout) every 50 ms. A writer that outruns the
// output by more than the buffer limit waits for it.
//
// A failed write does not stop logging. What the output did not take is
// held and tried again at the next flush, so a short outage loses nothing;
// while the held lines are at the buffer limit, newer lines are dropped and
// counted (Dropped). The sink reports the start and the end of each outage
// through Options, and writes resume by themselves once the output takes
// them again (a disk with room).
package logsink

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

const (
	flushEvery = 50 * time.Millisecond
	// bufferLimit bounds both the lines waiting for the next flush and the
	// lines held after a failed write.
	bufferLimit = 8 << 20
)

// Options tell the owner of a sink about outages. Both functions run on the
// sink's goroutine, may write to the sink, and are optional.
type Options struct {
	// Failed is called when a write fails after the last one succeeded,
	// once per outage.
	Failed func(err error)
	// Recovered is called when a write succeeds after an outage, with the
	// number of lines dropped during it.
	Recovered func(dropped uint64)
}

// Sink buffers writes to an output.
type Sink struct {
	out io.Writer
	opt Options

	mu      sync.Mutex
	buf     []byte
	drained *sync.Cond // signalled after each flush
	closed  bool

	dropped atomic.Uint64

	// Owned by the flushing goroutine.
	spare         []byte
	held          []byte // what failed writes left, oldest first
	outage        error  // the first error of the current outage; nil while writes succeed
	droppedBefore uint64 // dropped when the outage began

	kick chan struct{}
	done chan struct{}
}

// New returns a sink writing to out, which only the sink's goroutine
// writes to. Close stops it; closing out is left to the caller.
func New(out io.Writer, o Options) *Sink {
	s := &Sink{out: out, opt: o, kick: make(chan struct{}, 1), done: make(chan struct{})}
	s.drained = sync.NewCond(&s.mu)
	go s.flushLoop() // exits when Close closes kick
	return s
}

// Write copies p into the buffer. It blocks only while the buffer is over its
// limit, and fails only after Close.
func (s *Sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.buf) > bufferLimit && !s.closed {
		s.drained.Wait()
	}
	if s.closed {
		return 0, os.ErrClosed
	}
	s.buf = append(s.buf, p...)
	if len(s.buf) > bufferLimit/2 {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// Dropped returns how many lines the sink has dropped since New because
// the output failed.
func (s *Sink) Dropped() uint64 { return s.dropped.Load() }

func (s *Sink) flushLoop() {
	defer close(s.done)
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case _, ok := <-s.kick:
			if !ok {
				return
			}
		case <-t.C:
		}
		s.flush()
	}
}

// flush swaps the buffer for the spare one, so writers continue while this
// goroutine writes, and writes what it holds and then the new lines.
func (s *Sink) flush() {
	s.mu.Lock()
	batch := s.buf
	s.buf = s.spare[:0]
	s.drained.Broadcast()
	s.mu.Unlock()
	s.spare = batch

	if len(s.held) > 0 && !s.write(s.held) {
		if len(s.held)+len(batch) > bufferLimit {
			s.drop(batch)
		} else {
			s.held = append(s.held, batch...)
		}
		return
	}
	if len(batch) > 0 {
		s.write(batch)
	}
}

// write writes p, which is held or holds nothing, and reports whether all
// of it was written. What was not is kept in held.
func (s *Sink) write(p []byte) bool {
	n, err := s.out.Write(p)
	if err == nil {
		s.held = s.held[:0]
		if s.outage != nil {
			s.outage = nil
			if s.opt.Recovered != nil {
				s.opt.Recovered(s.dropped.Load() - s.droppedBefore)
			}
		}
		return true
	}
	s.held = append(s.held[:0], p[n:]...) // p may be held: this moves its rest to the front
	if s.outage == nil {
		s.outage = err
		s.droppedBefore = s.dropped.Load()
		if s.opt.Failed != nil {
			s.opt.Failed(err)
		}
	}
	return false
}

// drop counts the lines in p as dropped.
func (s *Sink) drop(p []byte) {
	s.dropped.Add(uint64(bytes.Count(p, []byte{'\n'})))
}

// Close writes what is buffered and stops the sink. If the output still
// fails, the lines it holds are dropped and Close says how many.
func (s *Sink) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.drained.Broadcast()
	s.mu.Unlock()
	close(s.kick)
	<-s.done
	s.flush()
	if len(s.held) == 0 {
		return nil
	}
	lost := bytes.Count(s.held, []byte{'\n'})
	s.drop(s.held)
	s.held = nil
	return fmt.Errorf("logsink: %d lines not written: %w", lost, s.outage)
}

var _ io.Writer = (*Sink)(nil)
