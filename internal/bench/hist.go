package bench

import (
	"math/bits"
	"time"
)

// Histogram buckets: values below histLinear nanoseconds get a bucket each;
// above, every power of two is split into histSub buckets, so a recorded
// value is known to within 1/histSub (about 1.6%).
const (
	histSubBits = 6
	histSub     = 1 << histSubBits
	histLinear  = 2 * histSub
	// histBuckets covers values up to 2^63 ns.
	histBuckets = histLinear + (64-histSubBits-1)*histSub
)

// histogram counts latencies in log-linear buckets. It is not safe for
// concurrent use: each connection keeps its own and they are merged at the
// end.
type histogram struct {
	counts [histBuckets]uint64
	n      uint64
	max    time.Duration
	sum    time.Duration
}

func bucketOf(v uint64) int {
	if v < histLinear {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits - 1 // v>>shift is in [histSub, 2*histSub)
	return histLinear + (shift-1)*histSub + int(v>>shift) - histSub
}

// bucketValue returns the middle of bucket i.
func bucketValue(i int) time.Duration {
	if i < histLinear {
		return time.Duration(i)
	}
	shift := (i-histLinear)/histSub + 1
	low := uint64((i-histLinear)%histSub+histSub) << shift
	return time.Duration(low + (uint64(1)<<shift)/2)
}

// record counts one latency.
func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))]++
	h.n++
	h.sum += d
	h.max = max(h.max, d)
}

// merge adds o's counts to h.
func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// quantile returns the latency below which a fraction q of the samples lie.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(bucketValue(i), h.max)
		}
	}
	return h.max
}

// Latency summarises a set of latencies.
type Latency struct {
	Samples uint64        `json:"samples"`
	Mean    time.Duration `json:"-"`
	P50     time.Duration `json:"-"`
	P99     time.Duration `json:"-"`
	Max     time.Duration `json:"-"`
	// The same in microseconds, for JSON readers.
	MeanUs float64 `json:"mean_us"`
	P50Us  float64 `json:"p50_us"`
	P99Us  float64 `json:"p99_us"`
	MaxUs  float64 `json:"max_us"`
}

func (h *histogram) summary() Latency {
	l := Latency{Samples: h.n, P50: h.quantile(0.50), P99: h.quantile(0.99), Max: h.max}
	if h.n > 0 {
		l.Mean = h.sum / time.Duration(h.n)
	}
	l.MeanUs, l.P50Us, l.P99Us, l.MaxUs = micros(l.Mean), micros(l.P50), micros(l.P99), micros(l.Max)
	return l
}

func micros(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
