package store_test

import (
	"fmt"
	"testing"
)

// BenchmarkAppendCommit measures Append+Commit of ~120-byte records (a
// 20-byte client id and a 100-byte value) from 4 goroutines per CPU, so that
// group commit has company.
func BenchmarkAppendCommit(b *testing.B) {
	for _, mode := range modes {
		b.Run(mode.String(), func(b *testing.B) {
			l, _, _ := openReplay(b, b.TempDir(), mode)
			b.SetBytes(120)
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				entry := make([]byte, 120)
				for i := 0; pb.Next(); i++ {
					copy(entry, fmt.Appendf(nil, "client-%013d", i%100_000))
					l.Append(entry)
					if err := l.Commit(); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			s := l.Stats()
			b.ReportMetric(float64(s.Entries)/float64(max(s.Writes, 1)), "entries/write")
			if s.Fsyncs > 0 {
				b.ReportMetric(float64(s.TotalFsync.Microseconds())/float64(s.Fsyncs), "µs/fsync")
			}
		})
	}
}
