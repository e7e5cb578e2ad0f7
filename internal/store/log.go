package store

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Errors reported by the store; test for them with errors.Is.
var (
	// ErrClosed is returned by Commit and Snapshot.Write once Close has begun.
	ErrClosed = errors.New("store: log is closed")
	// ErrLocked is returned by Open when another Log holds the data directory.
	ErrLocked = errors.New("store: data dir is locked")
)

// backgroundFlushDelay is how long appended data may sit in memory when nobody
// calls Commit before the flusher writes it to the OS.
const backgroundFlushDelay = 2 * time.Millisecond

// monitorInterval is the period of the background check that the open
// segment is still in the data directory, and of the background fsync in
// everysec mode (and of the fsync of background-flushed data in always
// mode).
const monitorInterval = time.Second

// maxSpareBuffer caps the write buffer kept for reuse after a large burst.
const maxSpareBuffer = 4 << 20

// FsyncMode says when a Log fsyncs its segments; see the package
// documentation for what each mode risks.
type FsyncMode uint8

// The fsync modes. The zero value is FsyncEverySec.
const (
	FsyncEverySec FsyncMode = iota // fsync once a second in the background
	FsyncAlways                    // fsync before Commit returns
	FsyncNo                        // never fsync on its own
)

// String returns the mode's name in the configuration: "everysec",
// "always" or "no".
func (m FsyncMode) String() string {
	switch m {
	case FsyncEverySec:
		return "everysec"
	case FsyncAlways:
		return "always"
	case FsyncNo:
		return "no"
	}
	return fmt.Sprintf("FsyncMode(%d)", uint8(m))
}

// Options configures a Log.
type Options struct {
	// Fsync is when to fsync; the zero value is FsyncEverySec.
	Fsync FsyncMode
	// Logger receives recovery and I/O error reports; nil discards them.
	Logger *slog.Logger
}

// Log is a durable, append-only log of opaque entries with snapshot
// compaction. See the package documentation for the file format and the
// durability each fsync mode gives.
//
// A Log is used in this order: Open, Replay, then any mix of Append, Commit,
// BeginSnapshot and Stats from any goroutines, then Close.
type Log struct {
	dir          string
	logger       *slog.Logger
	syncOnCommit bool // fsync=always
	lockFile     *os.File
	epoch        atomic.Uint64
	metaMu       sync.Mutex // serialises META writes
	// version is META's format version. Open sets it; only a snapshot
	// changes it later, under metaMu.
	version int

	// Found by Open, used by Replay.
	snapNum uint64   // latest snapshot, 0 if none
	segNums []uint64 // segments at or after snapNum, ascending
	// damaged lists the files Replay found damaged. It is set before Replay
	// returns and never changes after.
	damaged []Damage

	// mu guards the in-memory tail of the log. It is held only for memory
	// operations, never across a syscall.
	mu            sync.Mutex
	buf           []byte    // frames appended but not yet handed to the writer
	bufEntries    int       // number of frames in buf
	failed        bool      // the writer failed: Appends are dropped, buf stays empty
	curSeg        uint64    // segment that buf belongs to
	rotation      *rotation // pending switch to segment curSeg, if any
	replayStarted bool      // Replay has been called
	ready         bool      // Replay has finished
	closed        bool      // Close has begun; Appends are dropped
	snapshotting  bool      // a Snapshot is between BeginSnapshot and Write/Abort

	// wmu serialises the writer: whoever holds it writes and fsyncs segment
	// files. Lock order: snapMu, then wmu, then mu.
	wmu      sync.Mutex
	f        *os.File // open segment, nil before Replay and after Close
	spare    []byte   // buffer to swap with buf on the next flush
	inFlight int      // entries being written by the current flush
	err      error    // sticky write or fsync error; the Log is unusable after one
	// failure is err, for readers that do not hold wmu (see Err).
	failure atomic.Pointer[error]

	// Group commit: a Commit that finds no flush in progress becomes the
	// leader and flushes for everybody (under wmu) while later callers wait
	// on flushDone. All of them wake when it ends; those whose entries it did
	// not cover elect the next leader. cmu is never held across a syscall.
	cmu       sync.Mutex
	flushDone *sync.Cond // signalled on cmu when a leader's flush ends
	flushing  bool       // a leader is flushing

	// snapMu is held by Snapshot.Write for its whole run, so that Close can
	// wait for it.
	snapMu sync.Mutex

	appended atomic.Uint64 // bytes of frames appended since Open (a log position)
	written  atomic.Uint64 // position handed to the OS with write(2)
	synced   atomic.Uint64 // position made durable with fsync(2)
	isClosed atomic.Bool   // mirrors closed for lock-free checks

	kick     chan struct{} // wakes the flusher when buf becomes non-empty
	stop     chan struct{} // closed by Close to stop the background goroutines
	wg       sync.WaitGroup
	closeErr error
	once     sync.Once

	stats counters
}

// rotation is a pending switch from one segment file to the next, made by
// BeginSnapshot and carried out by the writer.
type rotation struct {
	tail        []byte // frames that still belong to the old segment
	tailEntries int    // number of frames in tail
	next        uint64 // number of the new segment
}

// counters back Stats.
type counters struct {
	diskBytes     atomic.Int64
	sinceSnapshot atomic.Int64
	snapshotBytes atomic.Int64
	entries       atomic.Uint64
	dropped       atomic.Uint64
	commits       atomic.Uint64
	writes        atomic.Uint64
	fsyncs        atomic.Uint64
	lastFsync     atomic.Int64
	totalFsync    atomic.Int64
	snapshots     atomic.Uint64
	lastSnapshot  atomic.Int64
}

// Stats is a point-in-time view of a Log's counters, ready for metrics.
type Stats struct {
	DiskBytes          int64         // size of the snapshot and segment files
	BytesSinceSnapshot int64         // as BytesSinceSnapshot
	SnapshotBytes      int64         // size of the latest snapshot file, 0 if none
	Entries            uint64        // entries appended since Open
	Dropped            uint64        // entries lost to a failed write or appended after it
	Commits            uint64        // Commit calls since Open
	Writes             uint64        // write(2) calls to segment files since Open
	Fsyncs             uint64        // fsync(2) calls on segment files since Open
	LastFsync          time.Duration // latency of the latest segment fsync
	TotalFsync         time.Duration // total time spent in segment fsyncs
	Snapshots          uint64        // snapshots written since Open
	LastSnapshot       time.Duration // how long the latest Snapshot.Write took
}

// Open opens the log in dir, creating the directory and its META file if
// needed, and takes an exclusive lock on it: a second Open of the same
// directory, from this process or another, fails with ErrLocked until Close.
// Leftover temporary files and files made obsolete by the latest snapshot are
// removed. The caller must call Replay next, even on a new directory.
func Open(dir string, opts Options) (*Log, error) {
	if opts.Fsync > FsyncNo {
		return nil, fmt.Errorf("store: unknown fsync mode %v", opts.Fsync)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("store: create data dir: %w", err)
		}
		if err := syncDir(filepath.Dir(dir)); err != nil {
			return nil, err
		}
	}
	lockFile, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	l := &Log{
		dir:          dir,
		logger:       logger.With("dir", dir),
		syncOnCommit: opts.Fsync == FsyncAlways,
		lockFile:     lockFile,
		kick:         make(chan struct{}, 1),
		stop:         make(chan struct{}),
	}
	l.flushDone = sync.NewCond(&l.cmu)
	if err := l.prepare(); err != nil {
		lockFile.Close()
		return nil, err
	}
	l.wg.Add(2)
	go l.flushLoop()
	go l.monitor(opts.Fsync != FsyncNo)
	return l, nil
}

// prepare reads the epoch and finds the files Replay will read, removing
// those that the latest snapshot made obsolete.
func (l *Log) prepare() error {
	st, err := readDirState(l.dir)
	if err != nil {
		return err
	}
	m, problem, err := readMeta(l.dir)
	if err != nil {
		return err
	}
	if problem != "" {
		if m, err = l.remakeMeta(problem, len(st.segs) > 0 || len(st.snaps) > 0); err != nil {
			return err
		}
	}
	l.epoch.Store(m.epoch)
	l.version = m.version
	for _, name := range st.temps {
		l.remove(name, "leftover temporary file")
	}
	// The newest snapshot is the starting point. A damaged one that older
	// files can wholly replace (a stray file, or a crash before the files
	// it covers were removed) is set aside instead; otherwise the valid
	// part of it is replayed (see Replay). So a snapshot is checked (read
	// twice) only when such older files are left, which is rare.
	for i := len(st.snaps) - 1; i >= 0; i-- {
		n := st.snaps[i]
		path := filepath.Join(l.dir, snapName(n))
		if st.replaceable(i) {
			problem, err := checkSnapshot(path, l.endFramesRequired())
			if err != nil {
				return err
			}
			if problem != "" {
				aside, err := setAside(path)
				if err != nil {
					return err
				}
				l.logger.Error("store: snapshot damaged; set it aside and recovering from older files",
					"file", path, "problem", problem, "moved_to", aside)
				st.snaps = st.snaps[:i]
				continue
			}
		}
		l.snapNum = n
		st.snaps = st.snaps[:i]
		break
	}
	for _, n := range st.snaps {
		l.remove(snapName(n), "superseded snapshot")
	}
	for _, n := range st.segs {
		if n < l.snapNum {
			l.remove(segName(n), "segment covered by snapshot")
		} else {
			l.segNums = append(l.segNums, n)
		}
	}
	return nil
}

// remakeMeta writes a new META for a directory whose META is missing or
// damaged (problem says which), with a new epoch, so every neighbor reads
// this server's whole change feed. A damaged META is set aside. With log
// files present, whose format version META no longer tells, the new META
// says version 1, which reads files with and without end frames alike.
func (l *Log) remakeMeta(problem string, hasFiles bool) (meta, error) {
	m := meta{version: formatVersion}
	if hasFiles {
		m.version = legacyFormatVersion
	}
	var err error
	if m.epoch, err = newEpoch(); err != nil {
		return meta{}, err
	}
	epoch := fmt.Sprintf("%016x", m.epoch)
	switch {
	case problem != noMeta:
		aside, err := setAside(filepath.Join(l.dir, metaName))
		if err != nil {
			return meta{}, err
		}
		l.logger.Error("store: META damaged; set it aside and made a new epoch: every neighbor will read the whole change feed",
			"problem", problem, "moved_to", aside, "epoch", epoch)
	case hasFiles:
		l.logger.Warn("store: data dir had log files but no META; made a new epoch", "epoch", epoch)
	}
	return m, writeMeta(l.dir, m)
}

// remove deletes a file of the data directory, logging why, and returns its
// size. A failure is only logged: the file is removed again on the next Open.
func (l *Log) remove(name, why string) (size int64) {
	path := filepath.Join(l.dir, name)
	size = fileSize(path)
	if err := os.Remove(path); err != nil {
		l.logger.Error("store: cannot remove file", "file", path, "err", err)
		return 0
	}
	l.logger.Info("store: removed file", "file", path, "reason", why)
	return size
}

// retire takes a file that a new snapshot covers out of the data directory,
// logging why, and returns its size: a file Replay found damaged is set
// aside, any other is removed.
func (l *Log) retire(name, why string) int64 {
	if !slices.ContainsFunc(l.damaged, func(d Damage) bool { return filepath.Base(d.File) == name }) {
		return l.remove(name, why)
	}
	path := filepath.Join(l.dir, name)
	size := fileSize(path)
	aside, err := setAside(path)
	if err != nil {
		l.logger.Error("store: cannot set aside damaged file", "file", path, "err", err)
		return 0
	}
	l.logger.Warn("store: set aside damaged file, now replaced by a snapshot", "file", path, "moved_to", aside)
	return size
}

// Epoch returns the random non-zero id made when the data directory was first
// initialised. It survives restarts; a wiped directory gets a new one, and
// RenewEpoch makes one.
func (l *Log) Epoch() uint64 { return l.epoch.Load() }

// RenewEpoch gives the data directory a new epoch, written to META before
// it is returned, unless its epoch is no longer used (another caller
// renewed it first): then it returns the current one. Neighbors keep their
// cursors per epoch, so a new one makes each of them read this server's
// change feed from the start: the way out when the directory lost records
// they had already read.
func (l *Log) RenewEpoch(used uint64) (uint64, error) {
	l.metaMu.Lock()
	defer l.metaMu.Unlock()
	if current := l.epoch.Load(); current != used {
		return current, nil
	}
	epoch, err := newEpoch()
	if err != nil {
		return 0, err
	}
	if err := writeMeta(l.dir, meta{version: l.version, epoch: epoch}); err != nil {
		return 0, fmt.Errorf("store: renew epoch: %w", err)
	}
	l.epoch.Store(epoch)
	l.logger.Error("store: renewed the data directory's epoch: every neighbor will read the whole change feed",
		"old_epoch", fmt.Sprintf("%016x", used), "epoch", fmt.Sprintf("%016x", epoch))
	return epoch, nil
}

// Append adds entry to the log. It copies entry into memory and makes no
// syscall; Commit, or the background flusher within a few milliseconds,
// writes it to the OS. Entries are logged in the order of Append calls. Append
// is safe for concurrent use.
//
// Append panics if entry is longer than MaxEntrySize or if Replay has not
// completed: both are programming errors. Appends after Close are dropped,
// and so are Appends after the Log failed (see Err), which Stats counts:
// memory does not grow while the disk refuses writes.
func (l *Log) Append(entry []byte) {
	if len(entry) > MaxEntrySize {
		panic(fmt.Sprintf("store: Append of %d bytes exceeds MaxEntrySize", len(entry)))
	}
	size := int64(frameHeaderSize + len(entry))

	l.mu.Lock()
	if !l.ready {
		l.mu.Unlock()
		panic("store: Append before Replay")
	}
	if l.closed {
		l.mu.Unlock()
		return
	}
	if l.failed {
		l.mu.Unlock()
		l.stats.dropped.Add(1)
		return
	}
	wasEmpty := len(l.buf) == 0
	l.buf = appendFrame(l.buf, entry)
	l.bufEntries++
	l.appended.Add(uint64(size))
	l.stats.sinceSnapshot.Add(size)
	l.stats.entries.Add(1)
	l.mu.Unlock()

	if wasEmpty {
		select {
		case l.kick <- struct{}{}:
		default: // a kick is already pending
		}
	}
}

// Commit returns once every entry Appended before the call has been written
// to the OS with write(2) and, with fsync=always, made durable with fsync(2).
// Concurrent callers share one write(2) and fsync(2) (group commit); a caller
// whose entries another caller already wrote returns without a syscall.
//
// After a write or fsync error every later Commit returns that error: the
// data dir's state is then unknown, and the server should stop and recover
// with Open and Replay. Once Close has begun Commit returns ErrClosed (even
// though Close writes the entries appended before it).
func (l *Log) Commit() error {
	l.stats.commits.Add(1)
	if l.isClosed.Load() {
		return ErrClosed
	}
	if err := l.Err(); err != nil {
		return err // entries appended since were dropped
	}
	target := l.appended.Load()
	if l.committed(target) {
		return nil // written (and synced) by an earlier leader or the flusher
	}
	l.cmu.Lock()
	defer l.cmu.Unlock()
	for !l.committed(target) {
		if l.flushing {
			l.flushDone.Wait()
			continue
		}
		l.flushing = true
		l.cmu.Unlock()
		err := l.leadFlush()
		l.cmu.Lock()
		l.flushing = false
		l.flushDone.Broadcast()
		if err != nil && !l.committed(target) {
			return err
		}
	}
	return nil
}

// leadFlush is a group commit leader's flush.
func (l *Log) leadFlush() error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.f == nil { // Close finished while we waited
		return ErrClosed
	}
	return l.flushLocked(l.syncOnCommit)
}

// committed reports whether the log is written (and synced, if Commit must
// sync) up to position pos.
func (l *Log) committed(pos uint64) bool {
	return l.written.Load() >= pos && (!l.syncOnCommit || l.synced.Load() >= pos)
}

// flushLocked writes everything appended so far to the OS, carrying out a
// pending segment rotation first, and fsyncs it if sync is set. It makes one
// write(2) for the whole group (two across a rotation). The caller holds wmu.
func (l *Log) flushLocked(sync bool) error {
	if l.err != nil {
		return l.err
	}
	l.mu.Lock()
	buf, rot := l.buf, l.rotation
	l.inFlight = l.bufEntries
	if rot != nil {
		l.inFlight += rot.tailEntries
	}
	l.buf, l.bufEntries, l.rotation, l.spare = l.spare[:0], 0, nil, nil
	end := l.appended.Load()
	l.mu.Unlock()

	if rot != nil {
		if err := l.rotateLocked(rot); err != nil {
			return l.fail(err)
		}
	}
	if len(buf) > 0 {
		if err := l.write(buf); err != nil {
			return l.fail(err)
		}
	}
	if cap(buf) <= maxSpareBuffer {
		l.spare = buf[:0]
	} else {
		l.spare = nil
	}
	l.inFlight = 0
	l.written.Store(end)
	if sync && l.synced.Load() < end {
		if err := l.fsync(l.f); err != nil {
			return l.fail(err)
		}
		l.synced.Store(end)
	}
	return nil
}

// rotateLocked finishes the current segment with rot.tail and an end
// frame, fsyncs and closes it, and opens segment rot.next. The old segment
// is fsynced in every mode so that only the newest segment can ever have a
// torn tail. The caller holds wmu.
func (l *Log) rotateLocked(rot *rotation) error {
	fi, err := l.f.Stat()
	if err != nil {
		return fmt.Errorf("store: stat segment: %w", err)
	}
	if err := l.write(appendEndFrame(rot.tail, fi.Size()+int64(len(rot.tail)))); err != nil {
		return err
	}
	if err := l.fsync(l.f); err != nil {
		return err
	}
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("store: close segment: %w", err)
	}
	f, err := l.createSegment(rot.next)
	if err != nil {
		return err
	}
	l.f = f
	return nil
}

// createSegment creates (or opens, if it exists) segment n for appending and
// makes its directory entry durable.
func (l *Log) createSegment(n uint64) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(l.dir, segName(n)), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("store: create segment: %w", err)
	}
	if err := syncDir(l.dir); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// write appends b to the open segment. The caller holds wmu.
func (l *Log) write(b []byte) error {
	l.stats.writes.Add(1)
	n, err := l.f.Write(b)
	l.stats.diskBytes.Add(int64(n))
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// fsync fsyncs f, timing it for Stats.
func (l *Log) fsync(f *os.File) error {
	start := time.Now()
	err := f.Sync()
	d := int64(time.Since(start))
	l.stats.fsyncs.Add(1)
	l.stats.lastFsync.Store(d)
	l.stats.totalFsync.Add(d)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// fail records err as the Log's sticky error and returns it. After a failed
// write or fsync the file's contents (and, on Linux, the page cache's view of
// them) are unknown, so no later Commit may report success. The entries of
// the failed write and those waiting in memory are dropped, and so are later
// Appends: nothing could make them durable. The caller holds wmu.
func (l *Log) fail(err error) error {
	if l.err != nil {
		return l.err
	}
	l.err = err
	l.failure.Store(&err)
	l.mu.Lock()
	l.failed = true
	dropped := l.inFlight + l.bufEntries
	if l.rotation != nil {
		dropped += l.rotation.tailEntries
	}
	l.buf, l.bufEntries, l.rotation, l.spare, l.inFlight = nil, 0, nil, nil, 0
	l.mu.Unlock()
	l.stats.dropped.Add(uint64(dropped))
	l.logger.Error("store: log write failed; later commits will fail and later entries are dropped",
		"err", err, "entries_dropped", dropped)
	return err
}

// flushLoop writes appended data to the OS when nobody has called Commit for
// backgroundFlushDelay, so that entries that are never committed (such as
// those received from peers) still reach the OS soon. It exits when Close
// closes l.stop.
func (l *Log) flushLoop() {
	defer l.wg.Done()
	timer := time.NewTimer(backgroundFlushDelay)
	timer.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-l.kick:
		}
		timer.Reset(backgroundFlushDelay)
		select {
		case <-l.stop:
			timer.Stop()
			return
		case <-timer.C:
		}
		l.wmu.Lock()
		if l.f != nil && l.written.Load() < l.appended.Load() {
			// An error is sticky and reported by the next Commit.
			_ = l.flushLocked(false)
		}
		l.wmu.Unlock()
	}
}

// monitor checks once a second that the open segment is still linked into
// the data directory and, if sync is set, fsyncs it when it has written but
// unsynced data: in everysec mode, and in always mode for data the flusher
// wrote that nobody committed. It exits when Close closes l.stop.
func (l *Log) monitor(sync bool) {
	defer l.wg.Done()
	ticker := time.NewTicker(monitorInterval)
	defer ticker.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-ticker.C:
			l.checkLinked()
			if sync {
				l.Sync()
			}
		}
	}
}

// checkLinked fails the Log if its open segment is no longer linked into the
// file system: the data directory was deleted (or the file removed) under
// the running server. Writes to the unlinked file would still succeed, and
// be gone at the next restart.
func (l *Log) checkLinked() {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.f == nil || l.err != nil {
		return
	}
	fi, err := l.f.Stat()
	if err != nil {
		l.fail(fmt.Errorf("store: %w", err))
		return
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink == 0 {
		l.fail(fmt.Errorf("store: %s was deleted (is the data directory gone?): nothing written now would survive a restart", l.f.Name()))
	}
}

// Sync fsyncs what has been written to the open segment. Appends and Commits
// go on meanwhile: the writer's lock is not held during the fsync, so a slow
// disk stalls nobody. Errors are sticky and reported by the next Commit.
//
// Calling Sync just before BeginSnapshot keeps the segment switch short: the
// switch fsyncs the old segment while Commits wait, and after Sync little is
// left to sync.
func (l *Log) Sync() {
	if l.synced.Load() >= l.written.Load() {
		return
	}
	l.wmu.Lock()
	f, pos, failed := l.f, l.written.Load(), l.err != nil
	l.wmu.Unlock()
	if f == nil || failed {
		return
	}
	err := l.fsync(f)

	l.wmu.Lock()
	defer l.wmu.Unlock()
	switch {
	case err == nil, f != l.f && errors.Is(err, os.ErrClosed):
		// A rotation closed f meanwhile, after fsyncing it itself.
		if l.synced.Load() < pos {
			l.synced.Store(pos)
		}
	default:
		l.fail(err)
	}
}

// Err returns the error that made the log fail, or nil while it works: a
// failed write or fsync, or the open segment found deleted. Every later
// Commit returns it, and later Appends are dropped.
func (l *Log) Err() error {
	if err := l.failure.Load(); err != nil {
		return *err
	}
	return nil
}

// BytesSinceSnapshot returns the bytes appended since the cut point of the
// latest snapshot (after Replay: the size of the segments that follow it).
// The caller uses it to decide when to compact.
func (l *Log) BytesSinceSnapshot() int64 { return l.stats.sinceSnapshot.Load() }

// Stats returns the Log's counters.
func (l *Log) Stats() Stats {
	c := &l.stats
	return Stats{
		DiskBytes:          c.diskBytes.Load(),
		BytesSinceSnapshot: c.sinceSnapshot.Load(),
		SnapshotBytes:      c.snapshotBytes.Load(),
		Entries:            c.entries.Load(),
		Dropped:            c.dropped.Load(),
		Commits:            c.commits.Load(),
		Writes:             c.writes.Load(),
		Fsyncs:             c.fsyncs.Load(),
		LastFsync:          time.Duration(c.lastFsync.Load()),
		TotalFsync:         time.Duration(c.totalFsync.Load()),
		Snapshots:          c.snapshots.Load(),
		LastSnapshot:       time.Duration(c.lastSnapshot.Load()),
	}
}

// Close writes and fsyncs everything appended (in every fsync mode), stops
// the background goroutines, waits for a Snapshot.Write in progress to stop
// (it returns ErrClosed), and releases the directory lock. Close is
// idempotent; later calls return the first call's result.
func (l *Log) Close() error {
	l.once.Do(func() {
		l.mu.Lock()
		l.closed = true
		l.isClosed.Store(true)
		l.mu.Unlock()

		close(l.stop)
		l.wg.Wait()
		l.snapMu.Lock()
		defer l.snapMu.Unlock()

		l.wmu.Lock()
		var err error
		if l.f != nil {
			err = l.flushLocked(true)
			if cerr := l.f.Close(); err == nil && cerr != nil {
				err = fmt.Errorf("store: close segment: %w", cerr)
			}
			l.f = nil
		}
		l.wmu.Unlock()
		if cerr := l.lockFile.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("store: release lock: %w", cerr)
		}
		l.closeErr = err
	})
	return l.closeErr
}
