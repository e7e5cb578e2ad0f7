// Package durable owns a herd server's durability: it opens the server's
// data directory (a store.Log), rebuilds the herd.Node from it, repairs what
// recovery finds lost, commits before the server acknowledges an update,
// keeps the epoch that names the directory to neighbors, journals the
// node's link cursors and compacts the journal. A server sees only Commit,
// Epoch and RenewEpoch (the server.Store interface); each rule below is
// written here once.
//
// # Recovery
//
// Open replays the latest snapshot and the segments after it into a new
// node (store.Log.Replay into herd.Node.Restore), then:
//
//  1. If the store found a file damaged (store.Damage: a bad frame in a
//     snapshot or an older segment, or one followed by valid frames, such a
//     file cut short, or a file missing), the records after the damage are
//     lost, while cursors into neighbors'
//     change feeds journaled after them survive and point past them. The
//     node forgets every cursor (herd.Node.ForgetCursors), so each
//     neighbor's next link sends its whole feed, the lost records among
//     them, this server's own included. Renewing the epoch would not do: it
//     makes the neighbors re-read this server's feed, and they lack nothing
//     from it.
//  2. The node's change sequence moves past anything an earlier process may
//     have issued (herd.Node.FinishRestore), and that is committed before
//     the server takes an update.
//  3. After damage, a snapshot of the rebuilt node is written at once: it
//     makes the forgotten cursors durable and sets the damaged files aside
//     as NAME.damaged, whole, for inspection. A crash before it finds the
//     same damage at the next start and repeats the repair.
//
// A torn tail of the newest segment, which a crash in the middle of a write
// leaves, is not damage: no update in it was acknowledged, and the neighbor
// cursors journaled before it do not cover it. The store cuts it off with a
// warning.
//
// # Compaction
//
// Every 2 seconds a background loop journals the link cursors that moved
// (so a restart re-reads little from each neighbor) and compacts when the
// journal written since the latest snapshot is at least twice the size of
// that snapshot and at least 64 MiB. A snapshot holds the live client table,
// so the data directory stays under about three times the table's size plus
// 64 MiB, and so does what a restart reads.
//
// # A failing disk
//
// Once a write or fsync fails, or the journal is found deleted, the store
// has failed for good (Err): Commit returns the error, updates are no
// longer journaled (they are counted in Stats.Dropped, so memory stays
// bounded), and no snapshot is attempted. The server keeps serving from
// memory; restart it on a healthy disk and its neighbors refill it.
package durable

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herd-dev/herd/internal/config"
	"github.com/herd-dev/herd/internal/herd"
	"github.com/herd-dev/herd/internal/logthrottle"
	"github.com/herd-dev/herd/internal/store"
)

// maintainInterval is how often the background loop saves cursors and
// considers compaction.
const maintainInterval = 2 * time.Second

// compactMinBytes is the least journal growth worth a snapshot.
const compactMinBytes = 64 << 20

// Options configures a Store.
type Options struct {
	// Dir is the server's data directory; it is created if missing.
	Dir string
	// Name is the server's name, which its node carries.
	Name string
	// Fsync is config.FsyncAlways, config.FsyncEverySec or config.FsyncNo;
	// empty means config.FsyncEverySec.
	Fsync string
	// Logger receives recovery, compaction and I/O error reports; nil
	// discards them.
	Logger *slog.Logger
}

// Store is one server's durable state: its data directory and the node
// rebuilt from it. It is safe for concurrent use.
type Store struct {
	log    *store.Log
	node   *herd.Node
	logger *slog.Logger

	// compactionFailures counts compactions that failed.
	compactionFailures atomic.Uint64

	stop      chan struct{} // closed by Close to end the background loop
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Open opens the data directory, rebuilds the node from it as the package
// documentation describes, and starts the background loop that saves
// cursors and compacts. Close releases the directory.
func Open(opts Options) (*Store, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	mode, err := fsyncMode(opts.Fsync)
	if err != nil {
		return nil, err
	}
	log, err := store.Open(opts.Dir, store.Options{Fsync: mode, Logger: logger})
	if err != nil {
		return nil, err
	}
	s := &Store{log: log, node: herd.NewNode(opts.Name, log), logger: logger, stop: make(chan struct{})}
	if err := s.recover(); err != nil {
		log.Close()
		return nil, err
	}
	s.wg.Go(s.maintain)
	return s, nil
}

// fsyncMode maps the configuration's fsync value to the store's.
func fsyncMode(fsync string) (store.FsyncMode, error) {
	switch fsync {
	case config.FsyncEverySec, "":
		return store.FsyncEverySec, nil
	case config.FsyncAlways:
		return store.FsyncAlways, nil
	case config.FsyncNo:
		return store.FsyncNo, nil
	}
	return 0, fmt.Errorf("durable: fsync: %q is not one of %s, %s, %s",
		fsync, config.FsyncAlways, config.FsyncEverySec, config.FsyncNo)
}

// recover rebuilds the node from the log and makes the repairs recovery
// needs (see the package documentation).
func (s *Store) recover() error {
	start := time.Now()
	if err := s.log.Replay(s.node.Restore); err != nil {
		return fmt.Errorf("durable: recover: %w", err)
	}
	damaged := s.log.Damaged()
	if len(damaged) > 0 {
		s.node.ForgetCursors()
	}
	s.node.FinishRestore()
	if err := s.log.Commit(); err != nil {
		return fmt.Errorf("durable: record the restart: %w", err)
	}
	if len(damaged) > 0 {
		files := make([]string, len(damaged))
		for i, d := range damaged {
			files[i] = filepath.Base(d.File)
		}
		s.logger.Error("durable: records were lost to damaged files; forgot every link cursor, so each neighbor sends its whole change feed",
			"damaged_files", files)
		if err := s.Compact(); err != nil {
			s.logger.Error("durable: cannot snapshot the recovered table; the damaged files stay, and the next start repairs again",
				"err", err)
		}
	}
	s.logger.Info("recovered client table", "clients", s.node.Len(), "took", time.Since(start), "epoch", s.log.Epoch())
	return nil
}

// maintain saves the node's link cursors and compacts the journal when it
// has grown enough, every maintainInterval, until Close.
func (s *Store) maintain() {
	t := time.NewTicker(maintainInterval)
	defer t.Stop()
	var compactErrors logthrottle.Throttle // failures repeat every tick while the disk has no room
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.node.SaveCursors()
		if s.log.Err() != nil || !needsCompaction(s.log.Stats()) {
			continue
		}
		if err := s.Compact(); err != nil {
			if ok, suppressed := compactErrors.Allow(time.Now()); ok {
				s.logger.Error("store compaction failed; the journal keeps growing until one succeeds (a snapshot needs about the live table's size free)",
					"err", err, "failed_since_last_error", suppressed)
			}
		}
	}
}

// CompactionFailures returns how many compactions have failed since Open.
func (s *Store) CompactionFailures() uint64 { return s.compactionFailures.Load() }

// needsCompaction is the compaction rule: the journal written since the
// latest snapshot is at least twice that snapshot and at least
// compactMinBytes.
func needsCompaction(st store.Stats) bool {
	return st.BytesSinceSnapshot >= max(compactMinBytes, 2*st.SnapshotBytes)
}

// Node returns the node the store rebuilt and journals.
func (s *Store) Node() *herd.Node { return s.node }

// Commit returns once every change the node journaled so far is written to
// the operating system (and fsynced under fsync=always). After the store
// has failed it returns the failure.
func (s *Store) Commit() error { return s.log.Commit() }

// Epoch returns the data directory's epoch, which identifies it to
// neighbors.
func (s *Store) Epoch() uint64 { return s.log.Epoch() }

// RenewEpoch gives the data directory a new epoch, unless its epoch is no
// longer used (another caller renewed it first), and returns the current
// one. Neighbors keep their cursors per epoch, so under a new one each of
// them reads this server's whole change feed.
func (s *Store) RenewEpoch(used uint64) (uint64, error) { return s.log.RenewEpoch(used) }

// errSnapshotBusy is Compact's answer while another snapshot is written,
// or after Close: nothing failed.
var errSnapshotBusy = errors.New("durable: a snapshot is already being written, or the store is closed")

// Compact writes a snapshot of the node and drops the journal before it.
// A failure is counted (CompactionFailures).
func (s *Store) Compact() (err error) {
	defer func() {
		if err != nil && !errors.Is(err, errSnapshotBusy) {
			s.compactionFailures.Add(1)
		}
	}()
	if err := s.log.Err(); err != nil {
		return fmt.Errorf("durable: no snapshot after the journal failed: %w", err)
	}
	s.log.Sync() // so that the segment switch, which holds up commits, is quick
	var snap *store.Snapshot
	st := s.node.Freeze(func() { snap = s.log.BeginSnapshot() })
	if snap == nil {
		return errSnapshotBusy
	}
	start := time.Now()
	if err := snap.Write(st.Entries); err != nil {
		return err
	}
	s.logger.Info("store compacted", "clients", len(st.Records), "took", time.Since(start))
	return nil
}

// Stats returns the store's counters.
func (s *Store) Stats() store.Stats { return s.log.Stats() }

// Err returns why the store failed (a write or fsync error, or its journal
// deleted), or nil while it works. A failed store acknowledges nothing
// durably again; the server should be restarted on a healthy disk.
func (s *Store) Err() error { return s.log.Err() }

// Close stops the background loop, journals the link cursors, and closes
// the log, which writes and fsyncs everything journaled. Close is
// idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		s.wg.Wait()
		s.node.SaveCursors()
		s.closeErr = s.log.Close()
	})
	return s.closeErr
}
