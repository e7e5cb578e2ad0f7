package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herd-dev/herd/internal/member"
	"github.com/herd-dev/herd/internal/wire"
)

// probeTimeout is how long a probe may take to reach every server before it
// counts as lost.
const probeTimeout = 5 * time.Second

// probeResult is what a series of probes measured.
type probeResult struct {
	Probes   int
	Timeouts int
	Latency  Latency // from the origin's AT reply until the last other server had the update
}

// probe is one update followed across the herd. Times are durations since
// the series began.
type probe struct {
	client []byte
	line   []byte // the IAMAT, with newline
	time   []byte // the client-time field
	t      wire.Time
	seen   []atomic.Int64 // per server: when it had the update; 0 = not yet
	left   atomic.Int32   // servers that have not had it yet
	done   chan struct{}  // closed when left reaches 0
}

func newProbe(tag string, i, servers int) *probe {
	p := &probe{seen: make([]atomic.Int64, servers), done: make(chan struct{})}
	p.client = appendClient(nil, "probe-"+tag+"-", uint64(i))
	wall := time.Now().UnixNano()
	p.t = wire.UnixTime(wall)
	p.time = appendUnixTime(nil, wall)
	p.line = fmt.Appendf(nil, "IAMAT %s %s %s\n", p.client, location(uint64(i)), p.time)
	p.left.Store(int32(servers))
	return p
}

// mark records that server k had the update at the given time.
func (p *probe) mark(k int, at time.Duration) {
	if p.seen[k].CompareAndSwap(0, int64(max(at, 1))) && p.left.Add(-1) == 0 {
		close(p.done)
	}
}

// spread returns the time from the origin's reply until the last other
// server had the update.
func (p *probe) spread(origin int) time.Duration {
	var last int64
	for k := range p.seen {
		if k != origin {
			last = max(last, p.seen[k].Load())
		}
	}
	return time.Duration(last - p.seen[origin].Load())
}

// observer notes when each server has a probe's update.
type observer interface {
	// watch follows p, sent to server origin, until it is done or the
	// series ends.
	watch(p *probe, origin int)
	close()
}

// runProbes sends one probe IAMAT every interval for the length of window,
// to each server in turn, and waits for each to reach every server. The
// origin's time is taken by the observer when it can see the origin store
// the update (in-process), or else when the AT reply arrives.
func runProbes(ctx context.Context, addrs []string, obs observer, begin time.Time, tag string, window, interval time.Duration, originFromReply bool) (probeResult, error) {
	conns := make([]*bufio.ReadWriter, len(addrs))
	for i, a := range addrs {
		c, err := net.DialTimeout("tcp", a, dialTimeout)
		if err != nil {
			return probeResult{}, fmt.Errorf("bench: %w", err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(window + 2*probeTimeout + drainTimeout))
		conns[i] = bufio.NewReadWriter(bufio.NewReader(c), bufio.NewWriter(c))
	}
	var res probeResult
	var h histogram
	start := time.Since(begin)
	for i := 0; time.Since(begin) < start+window; i++ {
		origin := i % len(addrs)
		p := newProbe(tag, i, len(addrs))
		obs.watch(p, origin)
		rw := conns[origin]
		rw.Write(p.line)
		if err := rw.Flush(); err != nil {
			return res, fmt.Errorf("bench: probe: %w", err)
		}
		line, err := rw.ReadSlice('\n')
		if err != nil {
			return res, fmt.Errorf("bench: probe: %w", err)
		}
		if !bytes.HasPrefix(line, []byte("AT ")) {
			return res, fmt.Errorf("bench: probe answered %q", line)
		}
		if originFromReply {
			p.mark(origin, time.Since(begin))
		}
		res.Probes++
		select {
		case <-p.done:
			h.record(p.spread(origin))
		case <-time.After(probeTimeout):
			res.Timeouts++
		case <-ctx.Done():
			return res, ctx.Err()
		}
		if wait := start + time.Duration(i+1)*interval - time.Since(begin); wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return res, ctx.Err()
			}
		}
	}
	res.Latency = h.summary()
	return res, nil
}

// nodeObserver watches the nodes of in-process servers. While a probe is
// out, one goroutine per node subscribes to the node's change notifications
// and looks the probe's client up after each; between probes nothing is
// subscribed, so that the observer adds little work to the herd it
// measures.
type nodeObserver struct {
	begin time.Time
	jobs  []chan *probe
	ready chan struct{} // a watcher has subscribed for the current probe
	quit  chan struct{}
	wg    sync.WaitGroup
}

func newNodeObserver(ms []*member.Member, begin time.Time) *nodeObserver {
	o := &nodeObserver{begin: begin, ready: make(chan struct{}, len(ms)), quit: make(chan struct{})}
	for k, m := range ms {
		jobs := make(chan *probe)
		o.jobs = append(o.jobs, jobs)
		o.wg.Go(func() { // ends at close
			for {
				select {
				case <-o.quit:
					return
				case p := <-jobs:
					o.follow(m, k, p)
				}
			}
		})
	}
	return o
}

// follow waits until node k has probe p's update, p is done elsewhere, or
// the probe times out.
func (o *nodeObserver) follow(m *member.Member, k int, p *probe) {
	ch, unwatch := m.Node.Watch()
	defer unwatch()
	o.ready <- struct{}{}
	timeout := time.NewTimer(probeTimeout)
	defer timeout.Stop()
	for {
		if rec, ok := m.Node.Lookup(p.client); ok && rec.Time().Compare(p.t) == 0 {
			p.mark(k, time.Since(o.begin))
			return
		}
		select {
		case <-ch:
		case <-p.done:
			return
		case <-timeout.C:
			return
		case <-o.quit:
			return
		}
	}
}

// watch hands p to every node's watcher and returns once all have
// subscribed, so that none can miss the moment its node stores the update.
func (o *nodeObserver) watch(p *probe, _ int) {
	for _, jobs := range o.jobs {
		select {
		case jobs <- p:
		case <-o.quit:
			return
		}
	}
	for range o.jobs {
		<-o.ready
	}
}

func (o *nodeObserver) close() {
	close(o.quit)
	o.wg.Wait()
}

// pollObserver follows probes on servers it can only reach over the
// network: one connection per server asks WHATSAT <probe> 1 1 back to back
// until the AT line carries the probe's time.
type pollObserver struct {
	begin time.Time
	jobs  []chan *probe
	wg    sync.WaitGroup
	errMu sync.Mutex
	err   error
}

func newPollObserver(addrs []string, begin time.Time) (*pollObserver, error) {
	o := &pollObserver{begin: begin}
	for k, a := range addrs {
		c, err := net.DialTimeout("tcp", a, dialTimeout)
		if err != nil {
			o.close()
			return nil, fmt.Errorf("bench: %w", err)
		}
		jobs := make(chan *probe, 1)
		o.jobs = append(o.jobs, jobs)
		o.wg.Go(func() { // ends when close closes jobs
			defer c.Close()
			rw := bufio.NewReadWriter(bufio.NewReaderSize(c, readBufferSize), bufio.NewWriter(c))
			for p := range jobs {
				if err := o.poll(c, rw, k, p); err != nil {
					o.errMu.Lock()
					o.err = errors.Join(o.err, err)
					o.errMu.Unlock()
					return
				}
			}
		})
	}
	return o, nil
}

func (o *pollObserver) poll(c net.Conn, rw *bufio.ReadWriter, k int, p *probe) error {
	deadline := time.Now().Add(probeTimeout)
	c.SetDeadline(deadline.Add(drainTimeout))
	for p.seen[k].Load() == 0 && time.Now().Before(deadline) {
		fmt.Fprintf(rw, "WHATSAT %s 1 1\n", p.client)
		if err := rw.Flush(); err != nil {
			return err
		}
		line, err := rw.ReadSlice('\n')
		if err != nil {
			return err
		}
		if !bytes.HasPrefix(line, []byte("AT ")) {
			continue // "? ...": the server does not know the client yet
		}
		if bytes.Contains(line, p.time) {
			p.mark(k, time.Since(o.begin))
		}
		if err := skipThroughBlankLine(rw.Reader); err != nil { // the places body
			return err
		}
	}
	return nil
}

func (o *pollObserver) watch(p *probe, origin int) {
	for k, jobs := range o.jobs {
		if k == origin {
			continue // marked when its AT reply arrives
		}
		select {
		case jobs <- p:
		default: // still busy with a lost probe; this one will time out
		}
	}
}

func (o *pollObserver) close() {
	for _, jobs := range o.jobs {
		close(jobs)
	}
	o.wg.Wait()
}
