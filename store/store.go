package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Defaults for a zero Options field.
const (
	// DefaultMaxBytes caps the outbox at 64 MiB of records: about 145,000
	// attestations of 400 bytes (463 bytes stored), almost three years of
	// driving around the clock (144 a day) and decades of ordinary use.
	DefaultMaxBytes = 64 << 20

	// DefaultLockTimeout bounds the wait for another process's lock.
	DefaultLockTimeout = 5 * time.Second

	// DefaultMmapSize is bbolt's initial mmap: small enough for the address
	// space of a 32-bit ARM process; bbolt remaps as the file grows.
	DefaultMmapSize = 2 << 20

	// DefaultCheckpointEvery is the least time between two durable
	// Checkpoint writes; Checkpoints in between are held in memory.
	DefaultCheckpointEvery = time.Minute

	// allocSize is how much bbolt grows the file by once it is past its
	// initial mmap (bbolt's default is 16 MiB; flash partitions are small).
	allocSize = 1 << 20

	// keepCorrupt is how many moved-aside databases are kept.
	keepCorrupt = 3
)

const dbName = "outbox.db"

var (
	bucketRec    = []byte("rec")
	bucketMeta   = []byte("meta")
	keyHead      = []byte("head")
	keyState     = []byte("state")
	keyAcked     = []byte("acked")
	keyNacks     = []byte("nacks")
	keyLastNack  = []byte("lastnack")
	keyCreatedAt = []byte("created")
	keyRepaired  = []byte("repaired")
	keyReceipt   = []byte("receipt")
)

// Options configure a Store. A nil *Options or a zero field means the default.
type Options struct {
	_ [0]func() // not comparable: no generated equality function (tboxd size)

	// MaxBytes caps the bytes of unacked records (key and value, as
	// stored); DefaultMaxBytes if zero. The database file is larger by
	// bbolt's page overhead, up to about twice as large.
	MaxBytes int64

	// MaxRecords caps the number of unacked records; no cap if zero.
	MaxRecords int

	// LockTimeout bounds the wait for the directory lock and bbolt's file
	// lock; DefaultLockTimeout if zero. It never waits forever.
	LockTimeout time.Duration

	// MmapSize is bbolt's InitialMmapSize; DefaultMmapSize if zero.
	MmapSize int

	// CheckpointEvery is the least time between durable Checkpoint writes;
	// DefaultCheckpointEvery if zero; a negative value makes every
	// Checkpoint durable before it returns.
	CheckpointEvery time.Duration

	// NoSync skips every fsync. For tests and benchmarks only: a power cut
	// can then lose or fork anything.
	NoSync bool

	// Logger receives repairs (Error) and notices (Warn, Info); discarded if nil.
	Logger *slog.Logger
}

func (o *Options) resolve() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.MaxBytes <= 0 {
		r.MaxBytes = DefaultMaxBytes
	}
	if r.MaxRecords < 0 {
		r.MaxRecords = 0
	}
	if r.LockTimeout <= 0 {
		r.LockTimeout = DefaultLockTimeout
	}
	if r.MmapSize <= 0 {
		r.MmapSize = DefaultMmapSize
	}
	if r.CheckpointEvery == 0 {
		r.CheckpointEvery = DefaultCheckpointEvery
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	return r
}

// Nack is the collector's last refusal.
type Nack struct {
	Seq    uint64
	Reason string
	Time   time.Time
}

// Recovery says what Open had to repair. The zero value means the files
// were consistent.
type Recovery struct {
	// MovedAside is where a damaged or inconsistent database was moved
	// (outbox.db.corrupt-<unix>); empty if none.
	MovedAside string
	// Requeued is the seq of the record Open re-inserted from the sidecar,
	// after a crash between the sidecar write and the database commit or
	// into a fresh database; 0 if none.
	Requeued uint64
	// SidecarRewritten is set when the sidecar was missing, damaged or
	// behind and was rewritten from the database.
	SidecarRewritten bool
	// MaybeLost is how many unacked records older than the head may have
	// been lost with a damaged database: the seqs between the acked-through
	// point recorded in the sidecar and the head. Some may have been acked
	// after the sidecar was written.
	MaybeLost uint64
	// Lost is the range of seqs the re-seed may have lost (MaybeLost of
	// them); empty if Open did not re-seed. Stats.Lost keeps it after
	// later Opens.
	Lost LostRange
	// Notes has one line per repair, as logged.
	Notes []string
}

// Repaired reports whether Open changed anything.
func (r Recovery) Repaired() bool { return len(r.Notes) > 0 }

// Stats is a snapshot of the outbox.
type Stats struct {
	Head         uint64    // seq of the last record ever appended
	AckedThrough uint64    // every seq <= this is acked
	Depth        int       // unacked records
	Bytes        int64     // their size as counted against MaxBytes
	MaxBytes     int64     // the cap in force
	MaxRecords   int       // the record cap in force, 0 for none
	Oldest       time.Time // Created of the oldest unacked record; zero if none
	Full         bool      // see Store.Full
	Nacks        uint64    // nacks received over the store's life
	LastNack     Nack      // the last one; zero if none
	Fsyncs       uint64    // fsync/fdatasync calls since Open: 2 per synced commit, 1 per file growth, 2 per sidecar write
	Commits      uint64    // bbolt write transactions committed since Open
	Sidecars     uint64    // sidecar replacements since Open
	Recovery     Recovery  // what Open repaired
	Lost         LostRange // seqs the last re-seed from the sidecar may have lost, kept in the database
}

// Store is the durable outbox. Its methods are safe for concurrent use.
type Store struct {
	dir  string
	path string
	opt  Options
	log  *slog.Logger
	lock *dirLock
	now  func() time.Time

	mu        sync.Mutex
	db        *bbolt.DB
	closed    bool
	broken    error
	head      Record // last record ever appended (Nacks fields unused)
	state     []byte // latest state, durable or not
	dirty     bool   // state holds a Checkpoint not yet written
	lastState time.Time
	acked     uint64
	depth     int
	bytes     int64
	oldest    time.Time
	lastSize  int64
	nacks     uint64
	lastNack  Nack
	fsyncs    uint64
	commits   uint64
	sidecars  uint64
	fileSize  int64
	recovery  Recovery
	lost      LostRange
	scState   string // at Open: "intact", "damaged (...)" or "missing"
	untrimmed int64  // bytes of records appended or acked since the last trimMapping
	readOnly  bool   // opened by OpenReadOnly: every write returns ErrReadOnly
}

// trimEvery is how many bytes of records (about 1,100 attestations)
// appended or acked go through the memory map before its pages are
// dropped from the resident set (trimMapping).
const trimEvery = 512 << 10

// testHookAfterSidecar, if set, runs between the sidecar write and the
// database commit of an Append; an error aborts the Append there, as a
// crash would.
var testHookAfterSidecar func() error

// Open opens the outbox in dir, creating dir and the files as needed. dir
// holds outbox.db, the sidecar "head" and a lock file.
//
// Open repairs what it can (see the package documentation, "Power cuts")
// and reports it in Stats().Recovery; it fails only on I/O errors, a lock
// held elsewhere (ErrLocked), or when both copies of the chain head are
// unusable (ErrHeadLost).
func Open(dir string, opts *Options) (*Store, error) {
	o := opts.resolve()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, errorf("store directory: %w", err)
	}
	lk, err := lockDir(dir, o.LockTimeout)
	if err != nil {
		return nil, err
	}
	s := &Store{
		dir:  dir,
		path: filepath.Join(dir, dbName),
		opt:  o,
		log:  o.Logger.With("dir", dir),
		lock: lk,
		now:  time.Now,
	}
	if err := s.open(); err != nil {
		if s.db != nil {
			_ = s.db.Close()
		}
		_ = lk.release()
		return nil, err
	}
	return s, nil
}

func (s *Store) boltOptions() *bbolt.Options {
	return &bbolt.Options{
		Timeout:         s.opt.LockTimeout,
		FreelistType:    bbolt.FreelistMapType,
		InitialMmapSize: s.opt.MmapSize,
		NoSync:          s.opt.NoSync,
	}
}

// note logs a repair and keeps it for Stats().Recovery.
func (s *Store) note(level slog.Level, msg string, args ...any) {
	line := msg
	for i := 0; i+1 < len(args); i += 2 {
		line += fmt.Sprintf(" %v=%v", args[i], args[i+1])
	}
	s.recovery.Notes = append(s.recovery.Notes, line)
	s.log.Log(context.Background(), level, msg, args...)
}

// open reconciles the sidecar and the database. See doc.go, "Power cuts".
func (s *Store) open() error {
	sc, scErr := readSidecar(s.dir)
	scAbsent := errors.Is(scErr, fs.ErrNotExist)
	scCorrupt, scDamaged := errors.AsType[*CorruptError](scErr)
	if scErr != nil && !scAbsent && !scDamaged {
		return errorf("sidecar: %w", scErr)
	}
	scOK := scErr == nil
	switch {
	case scDamaged:
		s.scState = "damaged (" + scCorrupt.Err.Error() + ")"
	case scAbsent:
		s.scState = "missing"
	default:
		s.scState = "intact"
	}

	dbErr := s.openExisting()
	noDB := errors.Is(dbErr, errNoDB)
	dbCorrupt, dbDamaged := errors.AsType[*CorruptError](dbErr)
	if dbErr != nil && !noDB && !dbDamaged {
		return dbErr
	}
	if scDamaged && dbErr != nil {
		return errorf("open %s: %w: the sidecar is damaged (%v) and the database is %s; "+
			"starting would risk signing a seq twice, files left in place",
			s.dir, ErrHeadLost, scCorrupt.Err, dbState(dbErr))
	}
	if dbCorrupt != nil {
		if err := s.moveAside(dbCorrupt.Err.Error()); err != nil {
			return err
		}
	}
	if dbErr != nil {
		if err := s.createDB(); err != nil {
			return err
		}
		if err := s.openExisting(); err != nil {
			return errorf("new database: %w", err)
		}
	}

	dbNew := dbErr != nil // created above: the file was missing or damaged
	switch {
	case !scOK && s.head.Seq == 0:
		if scDamaged {
			// The database is intact and has never held a record, so no
			// Append completed: the damaged sidecar is from one that never
			// returned, or flash damage. Either way nothing was published.
			aside := filepath.Join(s.dir, fmt.Sprintf("%s.corrupt-%d", sidecarName, s.now().Unix()))
			if err := os.Rename(filepath.Join(s.dir, sidecarName), aside); err != nil {
				return errorf("sidecar: %w", err)
			}
			s.note(slog.LevelError, "damaged sidecar moved aside; the database holds no record", "moved_to", aside, "err", scCorrupt.Err)
		}
	case !scOK:
		why, level := "missing", slog.LevelWarn
		if scDamaged {
			why, level = "damaged: "+scCorrupt.Err.Error(), slog.LevelError
		}
		if err := s.rewriteSidecar(); err != nil {
			return err
		}
		s.recovery.SidecarRewritten = true
		s.note(level, "sidecar rewritten from the database", "reason", why, "seq", s.head.Seq)
	case dbNew:
		if err := s.reseed(sc, "database missing or damaged"); err != nil {
			return err
		}
	case s.head.Seq == sc.rec.Seq && s.head.Digest == sc.rec.Digest:
		// Consistent.
	case s.head.Seq > sc.rec.Seq:
		// The sidecar is always written first, so it cannot lag unless it
		// was replaced by an older copy. Never go back: the higher head wins.
		if err := s.rewriteSidecar(); err != nil {
			return err
		}
		s.recovery.SidecarRewritten = true
		s.note(slog.LevelError, "sidecar behind the database, rewritten", "sidecar_seq", sc.rec.Seq, "db_seq", s.head.Seq)
	case s.head.Seq+1 == sc.rec.Seq:
		// A crash between the sidecar write and the database commit.
		if err := s.seed(sc, LostRange{}); err != nil {
			return err
		}
		s.note(slog.LevelWarn, "completed an append interrupted between the sidecar write and the database commit", "seq", sc.rec.Seq)
	default:
		// The database is behind by more than one record, or holds another
		// digest for the head seq: it is not this chain's latest state.
		reason := fmt.Sprintf("database head %d (digest %x...) inconsistent with sidecar head %d (digest %x...)",
			s.head.Seq, s.head.Digest[:8], sc.rec.Seq, sc.rec.Digest[:8])
		_ = s.db.Close()
		s.db = nil
		if err := s.moveAside(reason); err != nil {
			return err
		}
		if err := s.createDB(); err != nil {
			return err
		}
		if err := s.openExisting(); err != nil {
			return errorf("new database: %w", err)
		}
		if err := s.reseed(sc, reason); err != nil {
			return err
		}
	}
	// A head.tmp is an Append that never returned: nothing was published.
	_ = os.Remove(filepath.Join(s.dir, sidecarTmpName))
	s.pruneCorrupt()
	return nil
}

var errNoDB = errors.New("no database file")

func dbState(err error) string {
	if ce, ok := errors.AsType[*CorruptError](err); ok {
		return "damaged (" + ce.Err.Error() + ")"
	}
	return "missing"
}

// openExisting checks and opens outbox.db and loads its state into s.
// It returns errNoDB when there is no file and a *CorruptError when the
// file is damaged (the file is then closed and left in place).
func (s *Store) openExisting() error {
	f, err := os.OpenFile(s.path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return errNoDB
	}
	if err != nil {
		return errorf("database: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return errorf("database: %w", err)
	}
	size := fi.Size()
	if size == 0 {
		f.Close()
		return &CorruptError{Path: s.path, Err: errors.New("file is empty")}
	}
	badMeta, err := verifyBolt(f, size)
	f.Close()
	if err != nil {
		return &CorruptError{Path: s.path, Err: err}
	}
	if badMeta >= 0 && s.scState != "intact" && s.scState != "missing" {
		// Refused before bbolt opens the file: nothing is written.
		return s.headLostAfterFallback(badMeta, s.scState)
	}
	db, err := boltOpen(s.path, s.boltOptions())
	if err != nil {
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return errorf("database %s: %w", s.path, ErrLocked)
		case errors.Is(err, ErrCorrupt), errors.Is(err, berrors.ErrInvalid),
			errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
			return &CorruptError{Path: s.path, Err: err}
		}
		return errorf("database: %w", err)
	}
	db.AllocSize = allocSize
	s.db = db
	s.fileSize = size
	err = s.loadAll()
	if err != nil {
		_ = db.Close()
		s.db = nil
		return &CorruptError{Path: s.path, Err: err}
	}
	trimMapping(db) // loadAll read every record
	if badMeta >= 0 && s.scState == "missing" && s.head.Seq > 0 {
		// Records were appended, so a sidecar was written: without it
		// nothing says whether the lost transaction appended one more.
		_ = db.Close()
		s.db = nil
		return s.headLostAfterFallback(badMeta, s.scState)
	}
	if badMeta >= 0 {
		// One commit writes the invalid meta page: bbolt alternates them.
		err := s.update(func(tx *bbolt.Tx) error {
			return putUint(tx.Bucket(bucketMeta), keyRepaired, uint64(s.now().Unix()))
		})
		if err != nil {
			return errorf("database: rewriting meta page %d: %w", badMeta, err)
		}
		s.note(slog.LevelWarn, "database meta page invalid (a torn write?); bbolt used the previous transaction and the page was rewritten", "page", badMeta)
	}
	return nil
}

// boltOpen is bbolt.Open with a panic turned into an error: bbolt panics on
// some damage its Open finds while rebuilding the freelist.
func boltOpen(path string, o *bbolt.Options) (db *bbolt.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, errorf("bbolt open: %w: %v", ErrCorrupt, r)
		}
	}()
	return bbolt.Open(path, 0o600, o)
}

// loadAll reads the database's head, state, counters and every record,
// checking each record's checksum and the invariants between them. (bbolt's
// own tx.Check is not run here: it also fails on a meta page torn by a
// power cut, which bbolt handles by design; verifyBolt covers the tree.)
func (s *Store) loadAll() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errorf("reading the database: %v", r)
		}
	}()
	return s.db.View(s.load)
}

func (s *Store) load(tx *bbolt.Tx) error {
	meta, rec := tx.Bucket(bucketMeta), tx.Bucket(bucketRec)
	if meta == nil || rec == nil {
		return errors.New(`buckets "meta" and "rec": expected both, found one or none`)
	}
	var head Record
	if v := meta.Get(keyHead); v != nil {
		if len(v) < 8 {
			return errorf("meta/head: expected at least 8 bytes, found %d", len(v))
		}
		h, err := decodeRecord(v[:8], v[8:])
		if err != nil {
			return errorf("meta/head: %w", err)
		}
		head = h
	}
	acked, err := getUint(meta, keyAcked)
	if err != nil {
		return err
	}
	if acked > head.Seq {
		return errorf("meta/acked: %d above head %d", acked, head.Seq)
	}
	state := meta.Get(keyState)
	if len(state) > MaxStateSize {
		return errorf("meta/state: expected at most %d bytes, found %d", MaxStateSize, len(state))
	}
	nacks, err := getUint(meta, keyNacks)
	if err != nil {
		return err
	}
	var last Nack
	if v := meta.Get(keyLastNack); v != nil {
		if len(v) < 16 || len(v) > 16+maxReasonSize {
			return errorf("meta/lastnack: expected 16..%d bytes, found %d", 16+maxReasonSize, len(v))
		}
		last = Nack{Seq: be64(v), Time: fromNanos(int64(be64(v[8:]))), Reason: string(v[16:])}
	}

	var depth int
	var size, lastSize int64
	var oldest time.Time
	var prev Record
	c := rec.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		r, err := decodeRecord(k, v)
		if err != nil {
			return err
		}
		switch {
		case depth > 0 && r.Seq != prev.Seq+1:
			return errorf("record %d follows record %d: expected %d", r.Seq, prev.Seq, prev.Seq+1)
		case r.Seq <= acked:
			return errorf("record %d: at or below acked-through %d", r.Seq, acked)
		case r.Seq > head.Seq:
			return errorf("record %d: above head %d", r.Seq, head.Seq)
		}
		if depth == 0 {
			oldest = r.Created
		}
		depth++
		lastSize = recordSize(len(v))
		size += lastSize
		prev = r
		if size/trimEvery != (size-lastSize)/trimEvery {
			trimTx(tx) // a backlog read once at startup need not stay resident
		}
	}
	if depth > 0 && (prev.Seq != head.Seq || prev.Digest != head.Digest) {
		return errorf("last record %d (digest %x): expected the head %d (digest %x)", prev.Seq, prev.Digest[:8], head.Seq, head.Digest[:8])
	}
	if depth == 0 && acked != head.Seq {
		return errorf("no pending record but acked-through %d is below head %d", acked, head.Seq)
	}

	lost, err := loadLost(meta, head.Seq)
	if err != nil {
		return err
	}

	s.head, s.acked, s.state, s.lost = head, acked, bytes.Clone(state), lost
	s.depth, s.bytes, s.oldest = depth, size, oldest
	s.lastSize = lastSize
	s.nacks, s.lastNack = nacks, last
	return nil
}

func getUint(b *bbolt.Bucket, k []byte) (uint64, error) {
	v := b.Get(k)
	if v == nil {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, errorf("meta/%s: expected 8 bytes, found %d", k, len(v))
	}
	return be64(v), nil
}

func putUint(b *bbolt.Bucket, k []byte, v uint64) error {
	return b.Put(k, appendBE64(nil, v))
}

// createDB makes an empty database atomically: built as outbox.db.new,
// then renamed, so a crash never leaves a half-initialized outbox.db.
func (s *Store) createDB() error {
	tmp := s.path + ".new"
	_ = os.Remove(tmp)
	db, err := bbolt.Open(tmp, 0o600, s.boltOptions())
	if err != nil {
		return errorf("new database: %w", err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		if _, err := tx.CreateBucket(bucketRec); err != nil {
			return err
		}
		m, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		return putUint(m, keyCreatedAt, uint64(s.now().Unix()))
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.path)
	}
	if err == nil && !s.opt.NoSync {
		err = syncDir(s.dir)
	}
	if err != nil {
		return errorf("new database: %w", err)
	}
	return nil
}

// moveAside renames a damaged outbox.db to outbox.db.corrupt-<unix>.
func (s *Store) moveAside(reason string) error {
	base := fmt.Sprintf("%s.corrupt-%d", s.path, s.now().Unix())
	aside := base
	for i := 1; ; i++ {
		if _, err := os.Lstat(aside); errors.Is(err, fs.ErrNotExist) {
			break
		}
		aside = fmt.Sprintf("%s-%d", base, i)
	}
	if err := os.Rename(s.path, aside); err != nil {
		return errorf("moving the damaged database aside: %w", err)
	}
	if !s.opt.NoSync {
		if err := syncDir(s.dir); err != nil {
			return errorf("moving the damaged database aside: %w", err)
		}
	}
	s.recovery.MovedAside = aside
	s.note(slog.LevelError, "outbox database damaged or inconsistent; moved aside", "reason", reason, "moved_to", aside)
	return nil
}

// pruneCorrupt keeps the newest keepCorrupt moved-aside databases.
func (s *Store) pruneCorrupt() {
	// The names Glob(s.path + ".corrupt-*") would give, without its
	// pattern matcher (and taking the directory's name as it is).
	dir, prefix := filepath.Split(s.path)
	entries, _ := os.ReadDir(dir)
	var old []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix+".corrupt-") {
			old = append(old, filepath.Join(dir, e.Name()))
		}
	}
	if len(old) <= keepCorrupt {
		return
	}
	slices.Sort(old)
	for _, p := range old[:len(old)-keepCorrupt] {
		if err := os.Remove(p); err == nil {
			s.log.Warn("old damaged database removed", "path", p)
		}
	}
}

// seed writes the sidecar's record and state into the open database: the
// completion of an interrupted Append, or the start of a fresh database.
func (s *Store) seed(sc sidecar, lost LostRange) error {
	acked := max(s.acked, sc.acked)
	requeue := sc.rec.Seq > acked
	var size int64
	err := s.update(func(tx *bbolt.Tx) error {
		meta, rec := tx.Bucket(bucketMeta), tx.Bucket(bucketRec)
		if requeue {
			v := encodeRecord(sc.rec)
			size = recordSize(len(v))
			if err := rec.Put(seqKey(sc.rec.Seq), v); err != nil {
				return err
			}
		} else {
			acked = sc.rec.Seq
		}
		if err := meta.Put(keyHead, append(seqKey(sc.rec.Seq), encodeRecord(sc.rec)...)); err != nil {
			return err
		}
		if err := meta.Put(keyState, sc.state); err != nil {
			return err
		}
		if !lost.Empty() {
			if err := meta.Put(keyLost, encodeLost(lost)); err != nil {
				return err
			}
		}
		return putUint(meta, keyAcked, acked)
	})
	if err != nil {
		return errorf("seeding the database from the sidecar: %w", err)
	}
	head := sc.rec
	head.Wire = bytes.Clone(head.Wire)
	s.head, s.state, s.acked = head, bytes.Clone(sc.state), acked
	if !lost.Empty() {
		s.lost = lost
	}
	if requeue {
		if s.depth == 0 {
			s.oldest = sc.rec.Created
		}
		s.depth++
		s.bytes += size
		s.lastSize = size
		s.recovery.Requeued = sc.rec.Seq
	}
	return nil
}

// reseed starts a fresh database from the sidecar's head: the records
// between the sidecar's acked-through point and the head are gone.
func (s *Store) reseed(sc sidecar, reason string) error {
	var lost LostRange
	if sc.rec.Seq-1 > sc.acked {
		lost = LostRange{From: sc.acked + 1, To: sc.rec.Seq - 1, At: s.now().Round(0)}
	}
	if err := s.seed(sc, lost); err != nil {
		return err
	}
	if !lost.Empty() {
		s.recovery.MaybeLost = lost.To - lost.From + 1
		s.recovery.Lost = lost
	}
	s.note(slog.LevelError, "outbox re-seeded from the sidecar", "reason", reason, "head", sc.rec.Seq,
		"acked_through", sc.acked, "records_maybe_lost", s.recovery.MaybeLost, "seqs_maybe_lost", lost.String())
	return nil
}

// rewriteSidecar writes the database's head and state to the sidecar.
func (s *Store) rewriteSidecar() error {
	n, err := writeSidecar(s.dir, sidecar{rec: s.head, acked: s.acked, state: s.state}, !s.opt.NoSync)
	s.fsyncs += uint64(n)
	s.sidecars++
	return err
}

// update runs fn in one bbolt write transaction and counts its fsyncs.
func (s *Store) update(fn func(tx *bbolt.Tx) error) error {
	err := s.db.Update(fn)
	if err != nil {
		return err
	}
	s.commits++
	if !s.opt.NoSync {
		s.fsyncs += 2 // data pages, then the meta page
		if fi, err := os.Stat(s.path); err == nil && fi.Size() > s.fileSize {
			s.fsyncs++ // bbolt's grow truncates and fsyncs
			s.fileSize = fi.Size()
		}
	}
	return nil
}

// writable reports why the store cannot be written to, or nil.
func (s *Store) writable() error {
	if s.closed {
		return ErrClosed
	}
	if s.readOnly {
		return ErrReadOnly
	}
	if s.broken != nil {
		return errorf("%w: %w", ErrBroken, s.broken)
	}
	return nil
}

// Append stores rec, which must be the head's successor, and the caller's
// state that goes with it. The sidecar is replaced first, then the record
// and state are committed in one transaction (see "Power cuts"). Publish
// rec only after Append returns nil.
//
// It returns a *SeqError (ErrSeqGap, ErrDuplicate) for a wrong seq and
// ErrFull at the cap; then nothing was written. After an I/O error the
// store is broken (ErrBroken) until reopened.
func (s *Store) Append(rec Record, state []byte) error {
	if len(rec.Wire) == 0 || len(rec.Wire) > MaxWireSize {
		return errorf("append seq %d: %w: wire bytes: expected 1..%d, found %d", rec.Seq, ErrInvalidRecord, MaxWireSize, len(rec.Wire))
	}
	if len(state) > MaxStateSize {
		return errorf("append seq %d: %w: state: expected at most %d bytes, found %d", rec.Seq, ErrInvalidRecord, MaxStateSize, len(state))
	}
	s.mu.Lock()
	defer s.unlock()
	if err := s.writable(); err != nil {
		return err
	}
	if want := s.head.Seq + 1; rec.Seq != want {
		return &SeqError{Got: rec.Seq, Want: want}
	}
	if rec.Created.IsZero() {
		rec.Created = s.now()
	}
	rec.Created = rec.Created.Round(0)
	rec.Nacks, rec.NackReason = 0, ""
	rec.Wire = bytes.Clone(rec.Wire)
	state = bytes.Clone(state)
	v := encodeRecord(rec)
	size := recordSize(len(v))
	if (s.opt.MaxRecords > 0 && s.depth+1 > s.opt.MaxRecords) || s.bytes+size > s.opt.MaxBytes {
		return errorf("append seq %d: %w: %d records, %d bytes + %d, caps %d records, %d bytes",
			rec.Seq, ErrFull, s.depth, s.bytes, size, s.opt.MaxRecords, s.opt.MaxBytes)
	}

	n, err := writeSidecar(s.dir, sidecar{rec: rec, acked: s.acked, state: state}, !s.opt.NoSync)
	s.fsyncs += uint64(n)
	if err != nil {
		if errors.Is(err, errReplaced) {
			s.broken = err
		}
		return errorf("append seq %d: %w", rec.Seq, err)
	}
	s.sidecars++
	if testHookAfterSidecar != nil {
		if err := testHookAfterSidecar(); err != nil {
			s.broken = err
			return errorf("append seq %d: %w", rec.Seq, err)
		}
	}
	err = s.update(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if err := tx.Bucket(bucketRec).Put(seqKey(rec.Seq), v); err != nil {
			return err
		}
		if err := meta.Put(keyHead, append(seqKey(rec.Seq), v...)); err != nil {
			return err
		}
		return meta.Put(keyState, state)
	})
	if err != nil {
		// The sidecar is ahead by this record; Open will complete it.
		s.broken = err
		return errorf("append seq %d: database: %w", rec.Seq, err)
	}
	s.head, s.state, s.dirty, s.lastState = rec, state, false, s.now()
	if s.depth == 0 {
		s.oldest = rec.Created
	}
	s.depth++
	s.bytes += size
	s.lastSize = size
	s.trimAfter(size)
	return nil
}

// trimAfter counts bytes of records that went through the memory map and
// trims it (trimMapping) every trimEvery bytes.
func (s *Store) trimAfter(n int64) {
	if s.untrimmed += n; s.untrimmed >= trimEvery {
		trimMapping(s.db)
		s.untrimmed = 0
	}
}

// Checkpoint saves the caller's state without a record (the open span, the
// odometer high-water mark). With CheckpointEvery > 0 it is written at once
// if the last state write is at least that old; otherwise it is held in
// memory and written by a later Checkpoint, Flush or Close, or superseded
// by the next Append's state. State returns it either way.
func (s *Store) Checkpoint(state []byte) error {
	if len(state) > MaxStateSize {
		return errorf("checkpoint: %w: state: expected at most %d bytes, found %d", ErrInvalidRecord, MaxStateSize, len(state))
	}
	s.mu.Lock()
	defer s.unlock()
	if err := s.writable(); err != nil {
		return err
	}
	s.state, s.dirty = bytes.Clone(state), true
	if every := s.opt.CheckpointEvery; every > 0 && !s.lastState.IsZero() && s.now().Sub(s.lastState) < every {
		return nil
	}
	return s.flushLocked()
}

// Flush writes a Checkpoint held in memory, if any.
func (s *Store) Flush() error {
	s.mu.Lock()
	defer s.unlock()
	if err := s.writable(); err != nil {
		return err
	}
	return s.flushLocked()
}

func (s *Store) flushLocked() error {
	if !s.dirty {
		return nil
	}
	state := s.state
	err := s.update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyState, state)
	})
	if err != nil {
		s.broken = err
		return errorf("checkpoint: %w", err)
	}
	s.dirty, s.lastState = false, s.now()
	return nil
}

// State returns the last state saved by Append or Checkpoint, nil for a
// fresh store.
func (s *Store) State() ([]byte, error) {
	s.mu.Lock()
	defer s.unlock()
	if s.closed {
		return nil, ErrClosed
	}
	return bytes.Clone(s.state), nil
}

// Last returns the chain head: the seq and digest of the last record ever
// appended (0 and zeros for a fresh store). The next record is seq+1 with
// prev = digest. It survives acks and the loss of the database file.
func (s *Store) Last() (seq uint64, digest [32]byte) {
	s.mu.Lock()
	defer s.unlock()
	return s.head.Seq, s.head.Digest
}

// view runs fn in a read transaction.
func (s *Store) view(fn func(tx *bbolt.Tx) error) error {
	s.mu.Lock()
	db, closed := s.db, s.closed
	s.mu.Unlock()
	if closed || db == nil {
		return ErrClosed
	}
	err := db.View(fn)
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// Pending returns up to limit unacked records with seq > after, oldest
// first; limit <= 0 means all of them.
func (s *Store) Pending(after uint64, limit int) ([]Record, error) {
	var out []Record
	err := s.view(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketRec).Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Next() {
			r, err := decodeRecord(k, v)
			if err != nil {
				return &CorruptError{Path: s.path, Err: err}
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, errorf("pending: %w", err)
	}
	return out, nil
}

// Get returns the unacked record seq, or ErrNotFound.
func (s *Store) Get(seq uint64) (Record, error) {
	var r Record
	err := s.view(func(tx *bbolt.Tx) error {
		k := seqKey(seq)
		v := tx.Bucket(bucketRec).Get(k)
		if v == nil {
			return ErrNotFound
		}
		var err error
		r, err = decodeRecord(k, v)
		if err != nil {
			return &CorruptError{Path: s.path, Err: err}
		}
		return nil
	})
	if err != nil {
		return Record{}, errorf("get seq %d: %w", seq, err)
	}
	return r, nil
}

// Ack removes every record with seq <= the acked seq (the collector's ack
// is cumulative) and returns how many it removed. An ack at or below the
// acked-through point removes nothing and is not an error; an ack above
// the head is ErrAckAhead.
func (s *Store) Ack(seq uint64) (removed int, err error) {
	return s.ack(seq, nil)
}

// AckReceipt is Ack for the collector's verified receipt of seq, whose
// wire form it keeps in the same transaction as the car's proof that its
// mileage up to seq was stored (LastReceipt). The caller verifies the
// receipt; the store keeps at most MaxReceiptSize bytes of it.
func (s *Store) AckReceipt(seq uint64, receipt []byte) (removed int, err error) {
	if len(receipt) == 0 || len(receipt) > MaxReceiptSize {
		return 0, errorf("ack seq %d: receipt of %d bytes, want 1 to %d", seq, len(receipt), MaxReceiptSize)
	}
	return s.ack(seq, receipt)
}

// MaxReceiptSize bounds a receipt kept by AckReceipt.
const MaxReceiptSize = 4 << 10

// LastReceipt returns the wire form of the last receipt AckReceipt kept,
// or nil when there is none.
func (s *Store) LastReceipt() ([]byte, error) {
	var out []byte
	err := s.view(func(tx *bbolt.Tx) error {
		out = bytes.Clone(tx.Bucket(bucketMeta).Get(keyReceipt))
		return nil
	})
	if err != nil {
		return nil, errorf("last receipt: %w", err)
	}
	return out, nil
}

func (s *Store) ack(seq uint64, receipt []byte) (removed int, err error) {
	s.mu.Lock()
	defer s.unlock()
	if err := s.writable(); err != nil {
		return 0, err
	}
	if seq > s.head.Seq {
		return 0, errorf("ack seq %d: %w %d", seq, ErrAckAhead, s.head.Seq)
	}
	if seq <= s.acked {
		return 0, nil
	}
	var freed int64
	var oldest time.Time
	err = s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketRec)
		c := b.Cursor()
		var keys [][]byte
		for k, v := c.First(); k != nil && be64(k) <= seq; k, v = c.Next() {
			keys = append(keys, bytes.Clone(k))
			freed += recordSize(len(v))
		}
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		removed = len(keys)
		if k, v := b.Cursor().First(); k != nil {
			r, err := decodeRecord(k, v)
			if err != nil {
				return &CorruptError{Path: s.path, Err: err}
			}
			oldest = r.Created
		}
		if receipt != nil {
			if err := tx.Bucket(bucketMeta).Put(keyReceipt, receipt); err != nil {
				return err
			}
		}
		return putUint(tx.Bucket(bucketMeta), keyAcked, seq)
	})
	if err != nil {
		if _, ok := errors.AsType[*CorruptError](err); !ok {
			s.broken = err
		}
		return 0, errorf("ack seq %d: %w", seq, err)
	}
	s.acked = seq
	s.depth -= removed
	s.bytes -= freed
	s.oldest = oldest
	if s.depth == 0 && s.untrimmed+freed >= 64<<10 {
		s.untrimmed = trimEvery // a backlog drained: nothing more to read for now
	}
	s.trimAfter(freed)
	return removed, nil
}

// Nack records the collector's refusal of a pending record: the record is
// kept, its Nacks count and NackReason updated, and the store's nack count
// and last nack (Stats) too. ErrNotFound if seq is not pending.
func (s *Store) Nack(seq uint64, reason string) error {
	s.mu.Lock()
	defer s.unlock()
	if err := s.writable(); err != nil {
		return err
	}
	reason = cleanReason(reason)
	now := s.now().Round(0)
	var delta int64
	err := s.update(func(tx *bbolt.Tx) error {
		b, meta := tx.Bucket(bucketRec), tx.Bucket(bucketMeta)
		k := seqKey(seq)
		v := b.Get(k)
		if v == nil {
			return ErrNotFound
		}
		r, err := decodeRecord(k, v)
		if err != nil {
			return &CorruptError{Path: s.path, Err: err}
		}
		r.Nacks++
		r.NackReason = reason
		nv := encodeRecord(r)
		if err := b.Put(k, nv); err != nil {
			return err
		}
		delta = recordSize(len(nv)) - recordSize(len(v))
		if err := putUint(meta, keyNacks, s.nacks+1); err != nil {
			return err
		}
		ln := appendBE64(nil, seq)
		ln = appendBE64(ln, uint64(nanos(now)))
		return meta.Put(keyLastNack, append(ln, reason...))
	})
	if err != nil {
		if _, ok := errors.AsType[*CorruptError](err); !errors.Is(err, ErrNotFound) && !ok {
			s.broken = err
		}
		return errorf("nack seq %d: %w", seq, err)
	}
	s.bytes += delta
	s.nacks++
	s.lastNack = Nack{Seq: seq, Reason: reason, Time: now}
	return nil
}

// Full reports whether an Append of a record the size of the last one
// would be refused with ErrFull.
func (s *Store) Full() bool {
	s.mu.Lock()
	defer s.unlock()
	return s.fullLocked()
}

func (s *Store) fullLocked() bool {
	next := s.lastSize
	if next == 0 {
		next = recordSize(recFixedSize + 400)
	}
	return (s.opt.MaxRecords > 0 && s.depth >= s.opt.MaxRecords) || s.bytes+next > s.opt.MaxBytes
}

// Stats returns a snapshot of the outbox.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.unlock()
	rec := s.recovery
	rec.Notes = slices.Clone(rec.Notes)
	return Stats{
		Head:         s.head.Seq,
		AckedThrough: s.acked,
		Depth:        s.depth,
		Bytes:        s.bytes,
		MaxBytes:     s.opt.MaxBytes,
		MaxRecords:   s.opt.MaxRecords,
		Oldest:       s.oldest,
		Full:         s.fullLocked(),
		Nacks:        s.nacks,
		LastNack:     s.lastNack,
		Fsyncs:       s.fsyncs,
		Commits:      s.commits,
		Sidecars:     s.sidecars,
		Recovery:     rec,
		Lost:         s.lost,
	}
}

// Check runs bbolt's consistency check and the store's own (every record's
// checksum, contiguous seqs, head and counters agreeing) on the open
// database. It returns a *CorruptError describing the first problems.
func (s *Store) Check() error {
	// Hold the lock for the whole check: a writer that remaps the file
	// waits for read transactions, so taking the lock inside one deadlocks.
	s.mu.Lock()
	defer s.unlock()
	if s.closed {
		return ErrClosed
	}
	err := s.db.View(func(tx *bbolt.Tx) error {
		var errs []error
		for e := range tx.Check() {
			if len(errs) < 5 {
				errs = append(errs, e)
			}
		}
		if len(errs) > 0 {
			return &CorruptError{Path: s.path, Err: errors.Join(errs...)}
		}
		probe := &Store{}
		if err := probe.load(tx); err != nil {
			return &CorruptError{Path: s.path, Err: err}
		}
		if probe.head.Seq != s.head.Seq || probe.head.Digest != s.head.Digest || probe.depth != s.depth ||
			probe.bytes != s.bytes || probe.acked != s.acked {
			return &CorruptError{Path: s.path, Err: errorf("database holds head %d, %d records, %d bytes, acked %d; memory says %d, %d, %d, %d",
				probe.head.Seq, probe.depth, probe.bytes, probe.acked, s.head.Seq, s.depth, s.bytes, s.acked)}
		}
		return nil
	})
	if err != nil {
		return errorf("check: %w", err)
	}
	return nil
}

// Close writes a Checkpoint held in memory, then closes the database and
// releases the directory lock. Calling it again returns nil.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	if s.broken == nil && s.dirty {
		errs = append(errs, s.flushLocked())
	}
	if s.db != nil {
		errs = append(errs, s.db.Close())
	}
	errs = append(errs, s.lock.release())
	if err := errors.Join(errs...); err != nil {
		return errorf("close: %w", err)
	}
	return nil
}
