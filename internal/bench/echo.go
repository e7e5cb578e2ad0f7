package bench

import (
	"bufio"
	"context"
	"net"
	"runtime/pprof"
	"sync"
)

// echoServer is the baseline a herd server is measured against: a TCP line
// server that does nothing but send every line back. It is built like the
// herd's client loop (a goroutine per connection, 4 KiB buffered reader and
// writer, replies flushed when no more input is buffered), so the difference
// between the two is the work the herd does per line.
type echoServer struct {
	ln net.Listener
	wg sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// echoBufferSize matches the herd server's per-connection buffers.
const echoBufferSize = 4 << 10

// startEcho listens on a free loopback port and serves until close.
func startEcho() (*echoServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	e := &echoServer{ln: ln, conns: map[net.Conn]struct{}{}}
	e.wg.Go(func() {
		pprof.Do(context.Background(), pprof.Labels("role", "echo"), func(context.Context) { e.accept() })
	})
	return e, nil
}

// addr returns the server's address.
func (e *echoServer) addr() string { return e.ln.Addr().String() }

func (e *echoServer) accept() {
	for {
		c, err := e.ln.Accept()
		if err != nil {
			return // closed
		}
		e.mu.Lock()
		e.conns[c] = struct{}{}
		e.mu.Unlock()
		e.wg.Go(func() {
			defer func() {
				e.mu.Lock()
				delete(e.conns, c)
				e.mu.Unlock()
				c.Close()
			}()
			echoLines(c)
		})
	}
}

// echoLines sends back every line read from c until c fails or closes.
func echoLines(c net.Conn) {
	br := bufio.NewReaderSize(c, echoBufferSize)
	bw := bufio.NewWriterSize(c, echoBufferSize)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			if _, werr := bw.Write(line); werr != nil {
				return
			}
		}
		if err != nil && err != bufio.ErrBufferFull {
			bw.Flush()
			return
		}
		if br.Buffered() == 0 {
			if bw.Flush() != nil {
				return
			}
		}
	}
}

// close stops the server and waits for its goroutines.
func (e *echoServer) close() {
	e.ln.Close()
	e.mu.Lock()
	for c := range e.conns {
		c.Close()
	}
	e.mu.Unlock()
	e.wg.Wait()
}
