package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"
)

// requestFunc appends one request line, newline included, to dst. conn is
// the connection's index among conns, seq the request's number on that
// connection, and wall the wall-clock time in Unix nanoseconds.
type requestFunc func(dst []byte, conn, conns int, seq uint64, wall int64) []byte

// replyShape says how a reply is framed.
type replyShape uint8

const (
	// replyLine is one line (IAMAT's AT, or an echo).
	replyLine replyShape = iota
	// replyBlock is lines up to a blank one (WHATSAT), or a single
	// "? ..." line for an invalid command.
	replyBlock
)

// loadSpec describes the traffic of one measurement.
type loadSpec struct {
	addrs []string // connection i goes to addrs[i%len(addrs)]
	conns int
	depth int // requests in flight per connection
	// rate caps requests per second over all connections; 0 sends as fast
	// as replies come back (a closed loop).
	rate float64
	// total, when not 0, stops after this many requests over all
	// connections instead of after warmup+measure.
	total   uint64
	warmup  time.Duration // replies in the first warmup are not counted
	measure time.Duration // then replies are counted for this long
	request requestFunc
	reply   replyShape
	// okPrefix is how a successful reply starts; "" accepts any reply.
	okPrefix string
	// cpu, when set, reads the CPU time the servers under load have used
	// so far; the result then says how much of it each reply in the window
	// cost.
	cpu func() (time.Duration, error)
}

// loadResult is what a load run measured within its window.
type loadResult struct {
	OK         uint64  // successful replies
	Errors     uint64  // replies that did not start with okPrefix
	Seconds    float64 // length of the window
	Throughput float64 // successful replies per second
	Latency    Latency // of every reply in the window, from write to the end of its reply
	// CPUPerOp is the servers' CPU time over the window per successful
	// reply, when loadSpec.cpu is set.
	CPUPerOp time.Duration
}

// Timeouts of the load generator.
const (
	dialTimeout = 5 * time.Second
	// drainTimeout bounds how long replies may take after the window ends.
	drainTimeout = 30 * time.Second
	// maxTotalRun bounds a run with a request total.
	maxTotalRun = 10 * time.Minute
	// readBufferSize holds a whole WHATSAT reply line.
	readBufferSize = 64 << 10
)

// runLoad opens spec.conns connections and sends requests on each, keeping
// up to spec.depth in flight, until the window closes (or spec.total have
// been sent), then waits for the outstanding replies.
func runLoad(ctx context.Context, spec loadSpec) (loadResult, error) {
	if spec.conns < 1 || spec.depth < 1 || len(spec.addrs) == 0 {
		return loadResult{}, errors.New("bench: load needs a connection, an address and a depth")
	}
	d := net.Dialer{Timeout: dialTimeout}
	workers := make([]*worker, spec.conns)
	closeAll := func() {
		for _, w := range workers {
			if w != nil {
				w.conn.Close()
			}
		}
	}
	for i := range workers {
		c, err := d.DialContext(ctx, "tcp", spec.addrs[i%len(spec.addrs)])
		if err != nil {
			closeAll()
			return loadResult{}, fmt.Errorf("bench: %w", err)
		}
		workers[i] = &worker{spec: &spec, idx: i, conn: c, br: bufio.NewReaderSize(c, readBufferSize)}
	}
	defer closeAll()

	end := spec.warmup + spec.measure
	if spec.total > 0 {
		end = maxTotalRun
	}
	begin := time.Now()
	stop := make(chan struct{}) // closed when senders must stop
	var stopOnce sync.Once
	if spec.total > 0 {
		spec.cpu = nil // no window to measure
	}
	cpu := startCPUWindow(spec.cpu, spec.warmup)
	timer := time.AfterFunc(end, func() {
		cpu.end()
		stopOnce.Do(func() { close(stop) })
	})
	defer timer.Stop()
	finished := make(chan struct{})
	defer close(finished)
	go func() { // ends when the run does
		select {
		case <-ctx.Done():
			stopOnce.Do(func() { close(stop) })
			for _, w := range workers {
				w.conn.SetDeadline(time.Now())
			}
		case <-finished:
		}
	}()

	var wg sync.WaitGroup
	for _, w := range workers {
		w.begin, w.start, w.end, w.stop = begin, spec.warmup, end, stop
		if spec.total > 0 {
			w.start = 0
			w.quota = spec.total / uint64(spec.conns)
			if uint64(w.idx) < spec.total%uint64(spec.conns) {
				w.quota++
			}
		}
		w.conn.SetDeadline(begin.Add(end + drainTimeout))
		wg.Go(w.run)
	}
	wg.Wait()
	elapsed := time.Since(begin)

	var res loadResult
	var h histogram
	var errs []error
	for _, w := range workers {
		h.merge(&w.hist)
		res.OK += w.ok
		res.Errors += w.errors
		if w.err != nil {
			errs = append(errs, w.err)
		}
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if len(errs) > 0 {
		return res, fmt.Errorf("bench: %d of %d connections failed: %w", len(errs), spec.conns, errs[0])
	}
	res.Seconds = spec.measure.Seconds()
	if spec.total > 0 {
		res.Seconds = elapsed.Seconds()
	}
	res.Throughput = float64(res.OK) / res.Seconds
	res.Latency = h.summary()
	used, err := cpu.used()
	if err != nil {
		return res, err
	}
	if spec.total == 0 && res.OK > 0 {
		res.CPUPerOp = used / time.Duration(res.OK)
	}
	return res, nil
}

// cpuWindow measures the CPU time servers use between the end of a load's
// warm-up and the end of its window.
type cpuWindow struct {
	read     func() (time.Duration, error)
	started  chan struct{} // closed once the start was read
	from, to time.Duration // CPU time at the start and at the end
	err      error
	done     chan struct{} // closed once the end was read
}

// startCPUWindow reads the CPU time after warmup; read may be nil, to
// measure nothing.
func startCPUWindow(read func() (time.Duration, error), warmup time.Duration) *cpuWindow {
	w := &cpuWindow{read: read, started: make(chan struct{}), done: make(chan struct{})}
	if read == nil {
		close(w.started)
		close(w.done)
		return w
	}
	time.AfterFunc(warmup, func() {
		defer close(w.started)
		w.from, w.err = read()
	})
	return w
}

// end reads the CPU time at the end of the window.
func (w *cpuWindow) end() {
	if w.read == nil {
		return
	}
	<-w.started
	defer close(w.done)
	if w.err == nil {
		w.to, w.err = w.read()
	}
}

// used returns the CPU time used over the window.
func (w *cpuWindow) used() (time.Duration, error) {
	<-w.done
	return w.to - w.from, w.err
}

// worker drives one connection. Times are durations since begin, on the
// monotonic clock.
type worker struct {
	spec  *loadSpec
	idx   int
	conn  net.Conn
	br    *bufio.Reader
	begin time.Time
	start time.Duration // window start
	end   time.Duration // window end: no request is sent after it
	stop  <-chan struct{}
	quota uint64 // requests to send, when spec.total is set

	hist       histogram
	ok, errors uint64
	err        error
}

func (w *worker) run() {
	if w.spec.depth == 1 && w.spec.rate == 0 {
		w.err = w.serial()
		return
	}
	times := make(chan time.Duration, w.spec.depth) // send times of requests in flight, in order
	free := make(chan struct{}, w.spec.depth)       // one token per request that may be sent
	for range w.spec.depth {
		free <- struct{}{}
	}
	var werr error
	done := make(chan struct{})
	readerGone := make(chan struct{})
	go func() { // ends when the writer does
		defer close(done)
		werr = w.write(times, free, readerGone)
		if werr != nil {
			w.conn.Close() // the reader would wait for replies that will not come
		}
	}()
	rerr := w.read(times, free)
	close(readerGone) // no more tokens will come back
	if rerr != nil {
		w.conn.Close() // unblocks a writer stuck in Write
	}
	<-done
	w.err = errors.Join(werr, rerr)
}

// serial sends one request at a time and waits for its reply.
func (w *worker) serial() error {
	var buf []byte
	for seq := uint64(0); w.quota == 0 || seq < w.quota; seq++ {
		now := time.Now()
		sent := now.Sub(w.begin)
		if sent >= w.end {
			return nil
		}
		buf = w.spec.request(buf[:0], w.idx, w.spec.conns, seq, now.UnixNano())
		if _, err := w.conn.Write(buf); err != nil {
			return err
		}
		if err := w.readReply(sent); err != nil {
			return err
		}
	}
	return nil
}

// write sends requests, at most depth in flight and no faster than the
// rate, in batches: every request that may go now goes in one write.
func (w *worker) write(times chan<- time.Duration, free <-chan struct{}, readerGone <-chan struct{}) error {
	defer close(times)
	perConn := w.spec.rate / float64(w.spec.conns)
	var buf []byte
	var seq uint64
	for w.quota == 0 || seq < w.quota {
		since := time.Since(w.begin)
		if since >= w.end {
			return nil
		}
		want := w.spec.depth
		if w.quota > 0 {
			want = int(min(uint64(want), w.quota-seq))
		}
		if perConn > 0 {
			due := int64(perConn*since.Seconds()) - int64(seq)
			if due <= 0 {
				next := time.Duration(float64(seq+1)/perConn*1e9) - since
				select {
				case <-w.stop:
					return nil
				case <-time.After(max(next, 0)):
				}
				continue
			}
			want = int(min(int64(want), due))
		}
		select {
		case <-w.stop:
			return nil
		case <-readerGone:
			return nil
		case <-free:
		}
		n := 1
	more:
		for n < want {
			select {
			case <-free:
				n++
			default:
				break more
			}
		}
		now := time.Now()
		sent := now.Sub(w.begin)
		buf = buf[:0]
		for range n {
			buf = w.spec.request(buf, w.idx, w.spec.conns, seq, now.UnixNano())
			seq++
			times <- sent // never blocks: n tokens were taken
		}
		if _, err := w.conn.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

// read takes the replies of the requests whose send times come on times.
func (w *worker) read(times <-chan time.Duration, free chan<- struct{}) error {
	for sent := range times {
		if err := w.readReply(sent); err != nil {
			return err
		}
		free <- struct{}{}
	}
	return nil
}

// readReply reads one reply to a request sent at sent and counts it if it
// ended within the window.
func (w *worker) readReply(sent time.Duration) error {
	ok, err := w.readFrame()
	if err != nil {
		return err
	}
	at := time.Since(w.begin)
	if at < w.start || at >= w.end {
		return nil
	}
	w.hist.record(at - sent)
	if ok {
		w.ok++
	} else {
		w.errors++
	}
	return nil
}

// readFrame reads one reply and reports whether it starts with okPrefix.
func (w *worker) readFrame() (ok bool, err error) {
	first, err := readLine(w.br, w.spec.okPrefix)
	if err != nil {
		return false, err
	}
	if w.spec.reply == replyLine || !first {
		return first, nil
	}
	return true, skipThroughBlankLine(w.br)
}

// skipThroughBlankLine reads up to and including the next blank line,
// given that what came before ended a line. It searches each buffered chunk
// at once, so a long WHATSAT body costs the load generator little.
func skipThroughBlankLine(br *bufio.Reader) error {
	lineStart := true // the next byte starts a line
	for {
		chunk, err := br.Peek(max(br.Buffered(), 1))
		if err != nil {
			return err
		}
		if lineStart && chunk[0] == '\n' {
			_, err = br.Discard(1)
			return err
		}
		if i := bytes.Index(chunk, []byte("\n\n")); i >= 0 {
			_, err = br.Discard(i + 2)
			return err
		}
		lineStart = chunk[len(chunk)-1] == '\n'
		if _, err := br.Discard(len(chunk)); err != nil {
			return err
		}
	}
}

// readLine reads a whole line of any length and reports whether it starts
// with prefix.
func readLine(br *bufio.Reader, prefix string) (hasPrefix bool, err error) {
	seg, err := br.ReadSlice('\n')
	hasPrefix = bytes.HasPrefix(seg, []byte(prefix))
	for errors.Is(err, bufio.ErrBufferFull) {
		_, err = br.ReadSlice('\n')
	}
	return hasPrefix, err
}

// locationTable holds the locations clients report, 21 bytes each: large
// cities, so that WHATSAT finds places near every one.
const (
	locationTable = "+34.068930-118.445127" + // Los Angeles (UCLA)
		"+40.712800-074.006000" + // New York
		"+51.507400-000.127800" + // London
		"+35.676200+139.650300" + // Tokyo
		"+48.856600+002.352200" + // Paris
		"+37.774900-122.419400" + // San Francisco
		"+19.432600-099.133200" + // Mexico City
		"-33.868800+151.209300" // Sydney
	locationWidth = 21
	locations     = len(locationTable) / locationWidth
)

// location returns the i-th location of the table, cyclically.
func location(i uint64) string {
	i %= uint64(locations)
	return locationTable[i*locationWidth : (i+1)*locationWidth]
}

// iamatRequests returns IAMATs for the clients prefix+NNNNNN, with client
// numbers rotating through space (0 means no rotation) so that successive
// requests on all connections name distinct clients, and the current time
// as the client time, so that every IAMAT is newer than the last one for
// its client and is stored and flooded.
func iamatRequests(prefix string, space uint64) requestFunc {
	return func(dst []byte, conn, conns int, seq uint64, wall int64) []byte {
		id := clientNumber(conn, conns, seq, space)
		dst = append(dst, "IAMAT "...)
		dst = appendClient(dst, prefix, id)
		dst = append(dst, ' ')
		dst = append(dst, location(id)...)
		dst = append(dst, ' ')
		dst = appendUnixTime(dst, wall)
		return append(dst, '\n')
	}
}

// whatsatRequests returns WHATSATs for the clients prefix+NNNNNN with client
// numbers below space, within radius km and at most limit places.
func whatsatRequests(prefix string, space uint64, radius, limit int) requestFunc {
	return func(dst []byte, conn, conns int, seq uint64, _ int64) []byte {
		id := clientNumber(conn, conns, seq, space)
		dst = append(dst, "WHATSAT "...)
		dst = appendClient(dst, prefix, id)
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, int64(radius), 10)
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, int64(limit), 10)
		return append(dst, '\n')
	}
}

// clientNumber is the client that request seq on connection conn of conns
// names: successive requests on all connections name successive clients,
// rotating through space (0: no rotation).
func clientNumber(conn, conns int, seq, space uint64) uint64 {
	id := uint64(conn) + seq*uint64(conns)
	if space > 0 {
		id %= space
	}
	return id
}

// appendClient appends prefix and id, zero-padded to six digits.
func appendClient(dst []byte, prefix string, id uint64) []byte {
	dst = append(dst, prefix...)
	for p := uint64(100000); p > 1 && id < p; p /= 10 {
		dst = append(dst, '0')
	}
	return strconv.AppendUint(dst, id, 10)
}

// appendUnixTime appends Unix nanoseconds as POSIX seconds with nine
// fractional digits.
func appendUnixTime(dst []byte, nanos int64) []byte {
	dst = strconv.AppendInt(dst, nanos/1e9, 10)
	dst = append(dst, '.')
	frac := nanos % 1e9
	for p := int64(1e8); p > 0; p /= 10 {
		dst = append(dst, byte('0'+frac/p%10))
	}
	return dst
}
