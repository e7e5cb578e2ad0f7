package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// HerdMemoryResult is the memory a running five-server herd holds per
// client on each server: the servers run as separate processes, clients'
// IAMATs go to all five and flood to the others, and each server's
// resident set is read from /proc as it stands once the herd is quiet.
// This is the figure a deployment needs; MemoryResult is one node alone.
type HerdMemoryResult struct {
	// Skipped says why the step did not run; nothing else is set then.
	Skipped string `json:"skipped,omitempty"`
	// Idle is each server before any client, in configuration order.
	Idle []ServerMemory `json:"idle,omitempty"`
	// Points are the herd at each client count measured.
	Points []HerdMemoryPoint `json:"points,omitempty"`
}

// HerdMemoryPoint is the herd holding a number of clients.
type HerdMemoryPoint struct {
	Clients int            `json:"clients"`
	Servers []ServerMemory `json:"servers"`
	// Over the servers: resident bytes per client above the idle server's,
	// mean, least and most; and the mean Go heap in use per client.
	MeanBytesPerClient float64 `json:"mean_bytes_per_client"`
	MinBytesPerClient  float64 `json:"min_bytes_per_client"`
	MaxBytesPerClient  float64 `json:"max_bytes_per_client"`
	MeanHeapPerClient  float64 `json:"mean_heap_per_client"`
	// LoadSeconds is how long sending this point's new clients and
	// letting the herd settle took.
	LoadSeconds float64 `json:"load_seconds"`
}

// ServerMemory is one server's memory.
type ServerMemory struct {
	Name    string `json:"name"`
	Clients int    `json:"clients"`
	RSS     uint64 `json:"rss"`
	// Heap is the Go heap in use (go_memstats_heap_alloc_bytes).
	Heap uint64 `json:"heap"`
	// Per client above the idle server's figures.
	BytesPerClient float64 `json:"bytes_per_client,omitempty"`
	HeapPerClient  float64 `json:"heap_per_client,omitempty"`
}

// herdMemoryConns and herdMemoryDepth shape the load that fills the herd.
const (
	herdMemoryConns = 8
	herdMemoryDepth = 16
)

// herdMemoryPoints returns the client counts measured for a step of
// clients: half of them, then all.
func herdMemoryPoints(clients int) []int { return []int{clients / 2, clients} }

// measureHerdMemory starts a five-server herd of separate processes under
// dir, reads each server's memory idle, then loads it to each of points
// clients and reads it again.
func measureHerdMemory(ctx context.Context, dir string, serve []string, peerAuth bool, points []int) (*HerdMemoryResult, error) {
	h, err := startProcessHerd(ctx, dir, serve, peerAuth)
	if err != nil {
		return nil, err
	}
	defer h.close()
	res := &HerdMemoryResult{}
	if err := h.settle(ctx); err != nil {
		return nil, err
	}
	if res.Idle, err = h.memory(ctx, nil); err != nil {
		return nil, err
	}
	loaded := 0
	for i, want := range points {
		start := time.Now()
		_, err := runLoad(ctx, loadSpec{
			addrs: h.addrs(), conns: herdMemoryConns, depth: herdMemoryDepth, total: uint64(want - loaded),
			request: iamatRequests(fmt.Sprintf("%smem%d-", idPrefix, i), 0), okPrefix: "AT ",
		})
		if err != nil {
			return res, err
		}
		loaded = want
		if err := h.settle(ctx); err != nil {
			return res, err
		}
		p := HerdMemoryPoint{LoadSeconds: time.Since(start).Seconds()}
		if p.Servers, err = h.memory(ctx, res.Idle); err != nil {
			return res, err
		}
		p.Clients = p.Servers[0].Clients
		p.MinBytesPerClient = p.Servers[0].BytesPerClient
		for _, s := range p.Servers {
			p.MeanBytesPerClient += s.BytesPerClient / float64(len(p.Servers))
			p.MeanHeapPerClient += s.HeapPerClient / float64(len(p.Servers))
			p.MinBytesPerClient = min(p.MinBytesPerClient, s.BytesPerClient)
			p.MaxBytesPerClient = max(p.MaxBytesPerClient, s.BytesPerClient)
		}
		res.Points = append(res.Points, p)
	}
	return res, nil
}

// memory reads every server's clients, resident set and heap; with idle,
// it also works out the bytes per client above it.
func (h *processHerd) memory(ctx context.Context, idle []ServerMemory) ([]ServerMemory, error) {
	clients, err := h.clients(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]ServerMemory, len(h.procs))
	for i, c := range h.procs {
		m := ServerMemory{Name: c.name, Clients: clients[i]}
		if m.RSS, err = c.rss(); err != nil {
			return nil, err
		}
		if m.Heap, err = h.heapAlloc(ctx, h.cfg.Servers[i].Admin); err != nil {
			return nil, fmt.Errorf("bench: %s: %w", c.name, err)
		}
		if idle != nil {
			n := float64(max(m.Clients-idle[i].Clients, 1))
			m.BytesPerClient = float64(m.RSS-min(idle[i].RSS, m.RSS)) / n
			m.HeapPerClient = float64(m.Heap-min(idle[i].Heap, m.Heap)) / n
		}
		out[i] = m
	}
	return out, nil
}

// heapMetric is the Go heap in use, as the admin API's /metrics gives it.
const heapMetric = "go_memstats_heap_alloc_bytes"

// heapAlloc reads the heap in use from the server's metrics.
func (h *processHerd) heapAlloc(ctx context.Context, admin string) (uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := h.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), heapMetric+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, fmt.Errorf("%s %q: %w", heapMetric, v, err)
			}
			return uint64(f), nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no %s in /metrics", heapMetric)
}
