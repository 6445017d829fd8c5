// Package store keeps signed attestations on flash until the collector acks them.
//
// The store is generic over bytes: a Record carries its seq, the 32-byte
// digest that was signed (the next record's prev) and the wire bytes to
// publish. The caller's own state (seq, prev, odometer high-water mark, the
// open span, counters) is an opaque blob saved in the same transaction as the
// record it goes with, or alone with Checkpoint.
//
// # Files
//
// A store is a directory holding:
//
//   - outbox.db: a bbolt database. Bucket "rec" maps the 8-byte big-endian
//     seq to a record (record.go has the layout, with a crc32c per record);
//     bucket "meta" holds the head record, the state blob, the acked-through
//     seq and the nack counters.
//   - head: the sidecar, a copy of the chain head (seq, digest, wire bytes,
//     created time, acked-through and the state saved with that record) with a
//     crc32c (sidecar.go has the layout). It is replaced atomically: written to
//     head.tmp, fsynced, renamed over head, and the directory fsynced.
//   - lock: an flock held from Open to Close.
//   - outbox.db.corrupt-<unix>: damaged databases moved aside by Open (the
//     newest three are kept).
//
// bbolt runs with fsync on, the freelist written at every commit (with
// NoFreelistSync bbolt would rebuild it at Open by reading every page of
// the file, all of it then resident: 21 MiB of RSS for a backlog of 10,000
// attestations), the hashmap freelist, a lock timeout
// (Options.LockTimeout, never zero), a 2 MiB initial mmap that fits a 32-bit
// ARM address space, and file growth in 1 MiB steps. bbolt sizes the file to
// its initial mmap on the first growth, so outbox.db is 2 MiB from early on.
// The pages read through bbolt's memory map (the records, at Open and as
// they are uploaded and acked) are dropped from the process's resident set
// every 512 KiB of records (madvise MADV_DONTNEED on the read-only shared
// map; they stay in the page cache), so a long backlog never holds the
// agent's memory.
//
// # Cap
//
// Options.MaxBytes (default 64 MiB) caps the unacked records, counted as
// key plus value (about 460 bytes for a 400-byte attestation); Options.MaxRecords
// can cap their number too. 64 MiB is about 145,000 attestations: at the
// maximum of 144 a day that is almost three years of driving around the
// clock, and decades of ordinary use. The file itself is larger by bbolt's
// page overhead. At the cap Append returns ErrFull and writes nothing;
// nothing already stored is ever dropped. The agent keeps accumulating
// distance from the absolute odometer and, once an ack frees room, attests
// it in one CATCHUP span.
//
// # Power cuts
//
// Append(rec, state) checks that rec.Seq is head+1 and that the cap allows
// it, then writes in this order:
//
//  1. the sidecar, with rec and state (temp file, fsync, rename, fsync dir);
//  2. one bbolt transaction: the record, the head and the state.
//
// Append returns only after both, and the caller publishes a record only
// after Append returned nil. A power cut or crash at any instant leaves one
// of these states, which Open reconciles:
//
//   - before the rename is durable: the old sidecar, the old database. The
//     record never existed outside RAM and was never published, so the agent
//     signing that seq again, even with other content, forks nothing.
//   - after the rename, before the commit: the sidecar is one record ahead
//     of the database. Open re-inserts that record and its state (Recovery.Requeued);
//     the head is the record that was about to be published.
//   - after the commit: consistent.
//
// A torn bbolt meta page (a cut during the commit itself) makes bbolt use
// the previous transaction; Open then sees the sidecar one record ahead and
// completes it, and rewrites the torn meta page with one commit. Open
// cannot tell a torn newest meta page from a damaged older one, so it takes
// every invalid meta page for a fallback: the database may be one
// transaction, and so one record, behind.
//
// Ack, Nack and Checkpoint touch only the database. Their loss in a cut
// means an ack redone (the collector acks the re-sent record again), a nack
// count missing, or an older checkpoint: the state saved with a record or
// checkpoint is always a consistent whole, and distance is derived from
// the absolute odometer, so an older high-water mark makes a later
// attestation count that distance, never lose it or count it twice.
//
// Why a fork cannot happen: a seq is signed at most once with published
// content because (a) Append refuses any seq but head+1 (ErrDuplicate,
// ErrSeqGap); (b) the head is on flash in the sidecar before the database,
// so no completed Append leaves the head behind on both copies; (c) Open
// never moves the head backwards: with a sidecar and a database that
// disagree, the higher head wins, and for the same seq with different
// digests the sidecar (written first) wins; (d) when both copies are
// unusable (the sidecar damaged and the database missing or damaged), Open
// refuses to start with ErrHeadLost instead of restarting at seq 1, and
// leaves the files for an operator; (e) when a meta page is invalid (bbolt
// would fall back to the previous transaction) and the sidecar is damaged,
// or missing while the database holds records, nothing can say whether
// the lost transaction appended the head that was published: Open refuses
// with ErrHeadLost before bbolt writes anything, rather than rewrite the
// sidecar from a head that may be one behind (TestTornMetaWithDamagedSidecar
// tears the newest meta page of a real file). The operator's recovery from
// ErrHeadLost is in tboxd, not here: the directory is moved aside and the
// agent, with an empty store, adopts the collector's retained receipt
// (Store.Adopt), so that the next seq follows the last one the collector
// stored (README "A car is never stranded").
//
// A SIGKILL test (TestKill) kills a writer 60 times at random moments and
// checks every restart for gaps, duplicates and forks; a hook test and a
// hand-written sidecar simulate the cut between the two writes. A SIGKILL
// keeps the page cache, so it tests the ordering, not the fsyncs.
//
// # What can be lost
//
//   - With outbox.db lost or damaged (and the sidecar intact): the unacked
//     records older than the head. Open moves the damaged file aside, logs at
//     Error, starts a fresh database and re-queues the head record from the
//     sidecar with its state. Recovery.MaybeLost counts the seqs between the
//     sidecar's acked-through point and the head (some may have been acked
//     since). The chain continues at head+1 with the right prev. Checkpoints
//     made after the head record are lost too (the sidecar's state is the one
//     saved with the head record). The range of seqs that may be lost
//     (acked-through + 1 .. head - 1) is Recovery.Lost, and it is kept in
//     the new database ("meta"/"lost") so that Stats.Lost reports it after
//     every later Open too, until another re-seed replaces it: the agent
//     shows it in its log, shell and health report, for the collector to
//     record as a chain break.
//   - With the sidecar lost or damaged (and the database intact): nothing;
//     Open rewrites it from the database (Recovery.SidecarRewritten).
//   - With both unusable: Open fails with ErrHeadLost; nothing is signed.
//     The same with a meta page invalid and the sidecar unusable (above).
//   - With the whole directory wiped: the store cannot tell it from a new
//     device and starts at seq 1. The device key must then be replaced.
//   - A Checkpoint held in memory by Options.CheckpointEvery: at most that
//     interval of checkpoints (default one minute), delayed as above.
//
// # Damage
//
// bbolt trusts its file: a page id past the end faults on the mmap, a
// freelist page claiming more ids than it holds reads past it, and (for a
// file written with NoFreelistSync, as this store's were before) its Open
// walks the tree in a goroutine that panics on a damaged page. Neither can be recovered in Go, so before bbolt.Open the
// store walks the file with bounds-checked reads (verify.go): the meta page
// bbolt would pick, then every reachable page (inside the file, below the
// high-water mark, self-identified, a branch or a leaf, referenced once,
// elements and keys inside the page, keys in order). Then every record's
// crc32c, contiguous seqs, the head and the acked-through point are checked.
// A file that fails (zero-length, truncated, overwritten) is moved aside as
// above; Open does not fail for it. Check runs bbolt's tx.Check and the same
// record checks on demand.
//
// # Flash cost
//
// Append costs 4 fsyncs (sidecar file, directory, bbolt data pages, bbolt
// meta page) and about 17 KB of writes (four 4 KiB bbolt pages and the
// sidecar); Ack, Nack and a durable
// Checkpoint cost one commit, 2 fsyncs; a file growth adds one. Stats counts
// them (Fsyncs, Commits, Sidecars).
//
// Checkpoint writes are coalesced: Options.CheckpointEvery (default one
// minute) is the least time between two durable Checkpoints; the ones in
// between are kept in memory, returned by State, and written by a later
// Checkpoint, Flush or Close, or superseded by the next Append's state.
// A negative value makes every Checkpoint durable.
//
// One hour of driving at the normal pace (BenchmarkDrivenHour: six
// attestations, each acked, and the agent checkpointing every 10 s):
//
//	policy                          fsyncs/h  commits/h  bytes written/h
//	CheckpointEvery 1 min (default)      144         66      ~540 KB
//	CheckpointEvery 5 min                 48         18      ~150 KB
//	no Checkpoint, Append/Ack only        36         12      ~100 KB
//
// Bytes written are those passed to write calls (wchar); the block layer
// saw about 3.5 times as much on ext4 (write_bytes), as each small write
// dirties whole 4 KiB pages and the sidecar is a new file each time.
//
// # Concurrency
//
// A Store's methods are safe for concurrent use; writes are serialized.
// Only one process can open a directory: a second Open waits up to
// Options.LockTimeout and fails with ErrLocked.
package store
