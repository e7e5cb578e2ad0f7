package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/herd-dev/herd/internal/herd"
	"github.com/herd-dev/herd/internal/store"
	"github.com/herd-dev/herd/internal/wire"
)

// MemoryResult is the memory one server needs per client it knows.
type MemoryResult struct {
	Clients int `json:"clients"`
	// LineBytes is the length of one stored AT line.
	LineBytes int `json:"line_bytes"`
	// Isolated says the measurement ran in a process of its own.
	Isolated bool `json:"isolated"`
	// RSS (VmRSS) before loading, right after, and after a forced
	// collection that returns free memory to the OS.
	RSSBefore  uint64 `json:"rss_before"`
	RSSAfter   uint64 `json:"rss_after"`
	RSSAfterGC uint64 `json:"rss_after_gc"`
	// HeapLive is the Go heap in use after the forced collection, minus
	// before loading.
	HeapLive uint64 `json:"heap_live"`
	// Per client: RSS growth as loaded, RSS growth after the collection,
	// and live heap.
	BytesPerClient   float64 `json:"bytes_per_client"`
	BytesPerClientGC float64 `json:"bytes_per_client_gc"`
	HeapPerClient    float64 `json:"heap_per_client"`
	// LoadSeconds is how long the IAMATs took, parse and journal included.
	LoadSeconds float64 `json:"load_seconds"`
}

// MeasureMemory loads clients distinct IAMATs into a node journaled to a
// store in dir, through the path a server takes (wire.Parse, then
// herd.Node.IAMAT, the store committed every 256 updates as connections
// flush), and measures the process's resident memory before and after. Run
// it in a fresh process (see Options.Reexec) for a clean figure.
func MeasureMemory(ctx context.Context, clients int, dir string) (MemoryResult, error) {
	res := MemoryResult{Clients: clients}
	log, err := store.Open(dir, store.Options{Fsync: store.FsyncEverySec})
	if err != nil {
		return res, err
	}
	defer log.Close()
	if err := log.Replay(func([]byte) error { return nil }); err != nil {
		return res, err
	}
	node := herd.NewNode("Alford", log)

	heapBefore, rssBefore, err := settledMemory()
	if err != nil {
		return res, err
	}
	res.RSSBefore = rssBefore
	request := iamatRequests("client-", 0)
	var line []byte
	start := time.Now()
	base := start.UnixNano()
	for i := range clients {
		if i%65536 == 0 && ctx.Err() != nil {
			return res, ctx.Err()
		}
		line = request(line[:0], 0, 1, uint64(i), base+int64(i))
		m, err := wire.Parse(line[:len(line)-1])
		if err != nil {
			return res, fmt.Errorf("bench: memory: %q: %w", line, err)
		}
		reply, _, _ := node.IAMAT(wire.UnixTime(time.Now().UnixNano()), &m)
		res.LineBytes = len(reply)
		if i%256 == 255 {
			if err := log.Commit(); err != nil {
				return res, err
			}
		}
	}
	if err := log.Commit(); err != nil {
		return res, err
	}
	res.LoadSeconds = time.Since(start).Seconds()
	if res.RSSAfter, err = readRSS("self"); err != nil {
		return res, err
	}
	heapAfter, rssGC, err := settledMemory()
	if err != nil {
		return res, err
	}
	if node.Len() != clients {
		return res, fmt.Errorf("bench: memory: node holds %d clients, want %d", node.Len(), clients)
	}
	runtime.KeepAlive(node)
	res.RSSAfterGC = rssGC
	res.HeapLive = heapAfter - min(heapBefore, heapAfter)
	n := float64(max(clients, 1))
	res.BytesPerClient = float64(res.RSSAfter-min(res.RSSBefore, res.RSSAfter)) / n
	res.BytesPerClientGC = float64(res.RSSAfterGC-min(res.RSSBefore, res.RSSAfterGC)) / n
	res.HeapPerClient = float64(res.HeapLive) / n
	return res, nil
}

// settledMemory collects garbage, returns free memory to the OS, and
// reports the live heap and the resident set size.
func settledMemory() (heap, rss uint64, err error) {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rss, err = readRSS("self")
	return ms.HeapAlloc, rss, err
}

// readRSS returns the resident set size in bytes of the process proc
// ("self" or a process id), from /proc/PROC/status.
func readRSS(proc string) (uint64, error) {
	f, err := os.Open("/proc/" + proc + "/status")
	if err != nil {
		return 0, fmt.Errorf("bench: resident memory is read from /proc (Linux only): %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bench: VmRSS: %w", err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("bench: no VmRSS in /proc/%s/status", proc)
}

// measureMemoryIn runs argv with the client count as its last argument: a
// command that calls MeasureMemory and writes the result as JSON to its
// standard output.
func measureMemoryIn(ctx context.Context, argv []string, clients int) (MemoryResult, error) {
	cmd := exec.CommandContext(ctx, argv[0], append(argv[1:len(argv):len(argv)], strconv.Itoa(clients))...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return MemoryResult{}, fmt.Errorf("bench: memory child %v: %w: %s", cmd.Args, err, bytes.TrimSpace(stderr.Bytes()))
	}
	var res MemoryResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		return res, fmt.Errorf("bench: memory child printed %q: %w", stdout.Bytes(), err)
	}
	res.Isolated = true
	return res, nil
}
