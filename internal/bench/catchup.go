package bench

import (
	"context"
	"fmt"
	"time"
)

// CatchUpRow is how one server resynchronised after missing updates.
type CatchUpRow struct {
	Missed int    `json:"missed"`
	Server string `json:"server"`
	// Open is the time to reopen the server: recovering its store.
	Open time.Duration `json:"-"`
	// LinkUp is from the restart until a neighbor's link to it was up.
	LinkUp time.Duration `json:"-"`
	// Total is from the restart until the server had every update.
	Total time.Duration `json:"-"`
	// Transfer is Total minus LinkUp: the resync itself.
	Transfer time.Duration `json:"-"`
	// BytesIn is what the server received over peer links until it had
	// every update; BytesOut what it sent until the herd settled again.
	BytesIn  uint64 `json:"bytes_in"`
	BytesOut uint64 `json:"bytes_out"`
	// Records the server received from its neighbors, and how many of
	// them it already had.
	Received   uint64 `json:"records_received"`
	Duplicates uint64 `json:"records_duplicate"`

	OpenMs     float64 `json:"open_ms"`
	LinkUpMs   float64 `json:"link_up_ms"`
	TransferMs float64 `json:"transfer_ms"`
	TotalMs    float64 `json:"total_ms"`
}

// catchUpVictim is the server that is stopped: two hops from Alford and
// Welsh.
const catchUpVictim = "Holiday"

// catchUpTimeout bounds the wait for a restarted server to resync.
const catchUpTimeout = 5 * time.Minute

// catchUp stops a server, sends missed IAMATs for new clients to the
// others, restarts it and times its resync.
// The new clients are named prefix+NNNNNN.
func catchUp(ctx context.Context, h *localHerd, prefix string, missed int) (CatchUpRow, error) {
	row := CatchUpRow{Missed: missed, Server: catchUpVictim}
	if err := h.settle(ctx); err != nil {
		return row, err
	}
	if err := h.stop(catchUpVictim); err != nil {
		return row, err
	}
	var others []string
	for _, n := range h.names {
		if n != catchUpVictim {
			others = append(others, h.addr(n))
		}
	}
	if missed > 0 {
		_, err := runLoad(ctx, loadSpec{
			addrs: others, conns: 8, depth: 16, total: uint64(missed),
			request:  iamatRequests(prefix, 0),
			okPrefix: "AT ",
		})
		if err != nil {
			return row, err
		}
	}
	if err := h.settle(ctx); err != nil {
		return row, err
	}
	want := h.members()[0].Node.Len()
	inBefore, outBefore := h.traffic.into(catchUpVictim), h.traffic.outOf(catchUpVictim)

	start := time.Now()
	opened, err := h.restart(ctx, catchUpVictim)
	if err != nil {
		return row, err
	}
	m := h.member(catchUpVictim)
	if m == nil {
		return row, fmt.Errorf("bench: %s did not restart", catchUpVictim)
	}
	row.Open = opened
	var linkUp, total time.Duration
	err = poll(ctx, catchUpTimeout, time.Millisecond, func() error {
		if total == 0 && m.Node.Len() >= want {
			total = time.Since(start)
			row.BytesIn = h.traffic.into(catchUpVictim) - inBefore
		}
		if linkUp == 0 {
			for _, l := range m.Server.Links() {
				if l.InUp {
					linkUp = time.Since(start)
				}
			}
		}
		if total == 0 || linkUp == 0 {
			return fmt.Errorf("%s holds %d of %d clients", catchUpVictim, m.Node.Len(), want)
		}
		return nil
	})
	if err != nil {
		return row, err
	}
	if err := h.waitLinks(ctx); err != nil {
		return row, err
	}
	if err := h.settle(ctx); err != nil {
		return row, err
	}
	st := m.Server.Stats()
	row.BytesOut = h.traffic.outOf(catchUpVictim) - outBefore
	row.Received = st.FloodIn
	row.Duplicates = st.FloodDup
	row.LinkUp, row.Total = linkUp, total
	row.Transfer = max(total-linkUp, 0)
	row.OpenMs, row.LinkUpMs, row.TransferMs, row.TotalMs = millis(row.Open), millis(row.LinkUp), millis(row.Transfer), millis(row.Total)
	return row, nil
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }
