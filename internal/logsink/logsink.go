// Package logsink is an io.Writer for log files that keeps disk writes off
// the caller's path: writes land in memory and a background goroutine moves
// them to the file every few milliseconds. Nothing is dropped; a writer that
// outruns the disk by more than the buffer limit waits for it.
package logsink

import (
	"io"
	"os"
	"sync"
	"time"
)

const (
	flushEvery  = 50 * time.Millisecond
	bufferLimit = 8 << 20
)

// Sink buffers writes to a file.
type Sink struct {
	file *os.File

	mu      sync.Mutex
	buf     []byte
	drained *sync.Cond // signalled after each flush
	err     error      // first write error; later writes report it
	closed  bool

	kick chan struct{}
	done chan struct{}
}

// Open appends to the file at path, creating it if needed.
func Open(path string) (*Sink, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	s := &Sink{file: f, kick: make(chan struct{}, 1), done: make(chan struct{})}
	s.drained = sync.NewCond(&s.mu)
	go s.flushLoop() // exits when Close closes kick
	return s, nil
}

// Write copies p into the buffer. It blocks only while the buffer is over its
// limit.
func (s *Sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.buf) > bufferLimit && s.err == nil && !s.closed {
		s.drained.Wait()
	}
	if s.err != nil {
		return 0, s.err
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

func (s *Sink) flushLoop() {
	defer close(s.done)
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	var spare []byte
	for {
		select {
		case _, ok := <-s.kick:
			if !ok {
				s.flush(&spare)
				return
			}
		case <-t.C:
		}
		s.flush(&spare)
	}
}

// flush swaps the buffer for the spare one, so writers continue while this
// goroutine writes to disk.
func (s *Sink) flush(spare *[]byte) {
	s.mu.Lock()
	out := s.buf
	s.buf = (*spare)[:0]
	s.mu.Unlock()
	if len(out) == 0 {
		*spare = out
		return
	}
	_, err := s.file.Write(out)
	s.mu.Lock()
	if err != nil && s.err == nil {
		s.err = err
	}
	s.drained.Broadcast()
	s.mu.Unlock()
	*spare = out
}

// Close writes what is buffered and closes the file.
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
	return s.file.Close()
}

var _ io.WriteCloser = (*Sink)(nil)
