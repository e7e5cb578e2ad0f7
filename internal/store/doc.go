// Package store keeps a server's data durable in its data directory: a
// checksummed, append-only log of opaque entries, compacted by snapshots.
//
// The caller owns the record format and keeps its whole table in memory; the
// store only makes the entries durable and gives them back on restart. The
// caller also owns the policies: what to do about damage Replay reports,
// and when to compact (for herd, package durable holds both). A typical
// life:
//
//	l, err := store.Open(dir, store.Options{Fsync: store.FsyncEverySec, Logger: logger})
//	err = l.Replay(func(e []byte) error { return table.apply(e) })
//	if len(l.Damaged()) > 0 { /* entries were lost: get them again elsewhere */ }
//	l.Append(record) // under the table's lock, so log order matches table order
//	err = l.Commit() // before acknowledging the update to the client
//	...
//	if st := l.Stats(); st.BytesSinceSnapshot >= max(64<<20, 2*st.SnapshotBytes) {
//		snap := l.BeginSnapshot() // under the table's lock, while copying the table
//		err = snap.Write(copyOfTable.Records)
//	}
//	err = l.Close()
//
// # Files
//
// A data directory holds:
//
//	LOCK                 flock(2)ed by the Log that has the directory open
//	META                 "herd-store 2" and the epoch, replaced atomically
//	snap-<N>.log         the latest snapshot: the state before segment N
//	seg-<N>.log          segments, from N on; the newest one is appended to
//	*.tmp                leftovers of an interrupted write, removed by Open
//	*.log.damaged        a snapshot or segment found damaged, set aside for
//	                     inspection (.damaged.2 and on if that name is taken)
//
// Snapshots and segments are sequences of frames:
//
//	[u32 length, little-endian][u32 CRC-32C of the length field and payload][payload]
//
// with a payload of at most MaxEntrySize bytes. Every file but the newest
// segment is closed by an end frame: the length field 0xFFFFFFFF, which no
// entry's can be, and as its 8-byte payload the frame's own offset. There
// is no file header: the format version is in META. Version 1 directories,
// from before end frames, are read without them; the first snapshot that
// replaces all of their files moves META to version 2.
//
// # Writing
//
// Append copies a frame into an in-memory buffer. Commit hands the whole
// buffer to the OS with one write(2) (group commit: callers that arrive
// while a write is in progress share the next one) and, with fsync=always,
// fsyncs it. If nobody commits, a background flusher writes the buffer within
// a few milliseconds.
//
// BeginSnapshot cuts the log: later entries go to the next segment N, and
// the segment before it gets its end frame. Snapshot.Write writes the
// caller's state at the cut and an end frame to snap-N.log.tmp, fsyncs it, renames it to snap-N.log and fsyncs the directory; only then are
// the segments before N and the previous snapshot deleted. A segment is
// fsynced when it stops being the newest, in every mode, so only the newest
// segment can lose a tail in a crash.
//
// # Recovery
//
// A META that is missing or damaged is remade with a new epoch, so every
// neighbor reads the whole change feed again; a damaged one is first set
// aside as META.damaged and logged at Error level. A META of a format
// version this code does not know is refused.
//
// Open removes *.tmp files (an interrupted snapshot is simply ignored) and
// every snapshot and segment numbered below the latest snapshot (left by a
// crash between a snapshot's rename and the deletions). When older files
// could stand in for that snapshot (the snapshot before it, or a new
// directory's start, and an unbroken run of segments from there), it first
// checks the snapshot: an empty or damaged one is renamed to
// snap-<N>.log.damaged, logged at Error level, and the older files are
// used instead; nothing is lost. Replay then reads the latest snapshot and
// the segments after it. At the first frame of a file that is not valid
// (length over MaxEntrySize, past the end of the file, or a checksum
// mismatch) it stops reading that file and goes on with the next one:
//   - a torn tail of the newest segment, as a crash mid-write leaves (no
//     valid frame after it), is cut off and logged at Warn level;
//   - a bad frame followed by valid ones, or one in an older segment or in a
//     snapshot, means the disk damaged data: it is logged at Error level and
//     reported by Damaged, and the file is left whole (appends go to a new
//     segment if it was the newest). The entries after the bad frame are
//     lost to this directory; the next snapshot, which replaces the file,
//     renames it to <name>.damaged instead of deleting it.
//
// A snapshot or older segment whose frames are all valid but which lacks
// its end frame was cut short exactly at a frame boundary: that is damage
// too, and so is a segment missing from the run that starts at the
// snapshot's number (or at 1), or an end frame that is not the file's last
// frame. A newest segment that has its end frame was closed by a crash just
// before its successor was created; appends go to a new segment.
//
// Both log lines name the file, the offset and the bytes dropped. Entries
// before the bad frame are never lost.
//
// # Fsync modes
//
// Every mode writes an entry to the OS before Commit returns, so a committed
// entry survives the crash of the process (including SIGKILL) in every mode.
// The modes differ on power loss or a kernel crash, as Redis's appendfsync:
//
//   - always: Commit also fsyncs; a committed entry survives power loss.
//     Concurrent commits share one fsync, so throughput grows with the number
//     of concurrent writers, but each Commit waits for the disk.
//   - everysec (the zero value): a background goroutine fsyncs once a second;
//     power loss may lose the last second or so of committed entries.
//   - no: the store never fsyncs on its own (the kernel writes dirty pages
//     back within about 30 s by default); power loss may lose that much.
//
// Entries appended but not committed may be lost by a process crash for a few
// milliseconds (until the background flush). Close fsyncs in every mode.
// Snapshots and segment switches are always fsynced, so a crash never loses
// data that had been made durable before.
//
// After a write or fsync error the Log fails for good (the page cache may
// have dropped the data): every later Commit returns the error (see Err),
// and the entries in memory, those of the failed write and every later
// Append are dropped and counted (Stats.Dropped), so memory does not grow
// while the disk refuses writes. Once a second, in every mode, the Log also
// checks that its open segment is still linked into the directory: a data
// directory deleted under the server fails it the same way. The server
// should restart on a healthy disk.
//
// # Performance
//
// On the 2-vCPU development machine, with 8 concurrent writers committing
// ~120-byte entries: about 1M commits/s with everysec or no, and 10–16k/s
// with always (about 4 entries share each fsync). bbolt and pebble were
// measured for the same workload; see BENCH.md.
package store
