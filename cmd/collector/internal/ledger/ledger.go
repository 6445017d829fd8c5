// Package ledger is the collector's durable store of attestations, their
// verdicts, held seqs, chain breaks, forks and draws, in bbolt.
//
// # Layout (schema 2)
//
//	meta                 "version" -> 2, "chain_id" -> uint64 BE
//	dev/<device 20>/     one bucket per device:
//	    "head"           head record (below)
//	    "lost"           JSON Loss: the seqs the device announced it may have lost
//	    att/<seq 8 BE>   digest (32) || wire form
//	    verdict/<seq 8>  JSON Verdict: eligible for tickets or not, and why
//	    modes/<name>     meters in that drive mode, uint64 BE (all stored spans)
//	    held/<seq 8 BE>  digest (32) || received unix ns (8 BE) || wire form:
//	                     a seq beyond head + 1 waiting for the missing ones
//	    breaks/<from 8>  JSON Break: a missing range the chain continues past
//	batch/<batch 8 BE>/  per-batch ticket index for the draw (eligible spans only):
//	    <device 20><seq 8 BE> -> tickets, uint64 BE
//	undrawn/<batch 8 BE> batches with tickets and no draw yet
//	late/<batch 8><device 20><seq 8> -> tickets arriving after the batch's draw
//	forks/<device 20><seq 8><digest 32> -> JSON Fork
//	draws/<batch 8 BE>   JSON draw.Result with the time it was made
//
// Only the next seq of a device is ever appended (seq = head + 1), so a
// device's stored seqs are 1 .. head except the ranges of its recorded
// chain breaks, and an attestation, once stored, is never changed or
// removed. Every stored attestation has a verdict; only eligible ones are in
// the ticket index.
//
// A batch's index is frozen once its draw is recorded: tickets of an
// attestation arriving later for that batch go to "late", so re-running the
// draw from the index always gives the recorded result.
//
// Batches before [draw.Genesis] drop nothing and are not indexed.
//
// # Versions
//
// A ledger of schema 1 (written before verdicts, held seqs and chain breaks)
// is migrated in place when opened for writing: every stored attestation was
// accepted under the old rules and gets an eligible verdict, and the head
// record is rewritten in the new form, in one transaction. Opened read-only,
// a schema 1 ledger is refused with [ErrVersion], as is any schema newer
// than this code knows.
package ledger

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/csop/tbox/cmd/collector/internal/draw"
	"github.com/csop/tbox/signer"
	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// DefaultLockTimeout bounds the wait for another process holding the
// database.
const DefaultLockTimeout = 5 * time.Second

const schemaVersion = 2

var (
	bucketMeta    = []byte("meta")
	bucketDev     = []byte("dev")
	bucketBatch   = []byte("batch")
	bucketUndrawn = []byte("undrawn")
	bucketLate    = []byte("late")
	bucketForks   = []byte("forks")
	bucketDraws   = []byte("draws")
	bucketReg     = []byte("registry")
	keyVersion    = []byte("version")
	keyChainID    = []byte("chain_id")
	keyHead       = []byte("head")
	bucketAtt     = []byte("att")
	bucketModes   = []byte("modes")
	bucketVerdict = []byte("verdict")
	bucketHeld    = []byte("held")
	bucketBreaks  = []byte("breaks")
	keyLost       = []byte("lost")
)

// Errors of this package; test with errors.Is.
var (
	// ErrChainID: the database holds attestations of another chain ID.
	ErrChainID = errors.New("database of another chain ID")
	// ErrLocked: another process holds the database.
	ErrLocked = errors.New("database locked by another process")
	// ErrNotNext: Append of a seq other than head + 1.
	ErrNotNext = errors.New("not the next seq")
	// ErrDrawn: a draw recorded twice for one batch.
	ErrDrawn = errors.New("batch already drawn")
	// ErrCorrupt: a record that does not decode.
	ErrCorrupt = errors.New("corrupt record")
	// ErrReadOnly: a write to a ledger opened read-only.
	ErrReadOnly = errors.New("ledger opened read-only")
	// ErrVersion: a ledger of a schema this code does not read (a newer
	// one, or schema 1 opened read-only before its migration).
	ErrVersion = errors.New("ledger schema version")
)

// Options configure a Ledger. A nil *Options or a zero field means the
// default.
type Options struct {
	// ChainID the stored digests are computed for. Open refuses a database
	// made for another one ([ErrChainID]).
	ChainID uint64
	// LockTimeout bounds the wait for bbolt's file lock;
	// DefaultLockTimeout if zero.
	LockTimeout time.Duration
	// NoSync skips fsync at commit (benchmarks and tests only: a power cut
	// can then lose acknowledged attestations).
	NoSync bool
	// ReadOnly opens the database for reading (the draw and stats
	// commands); it must exist.
	ReadOnly bool
}

// Ledger is the store. It is safe for concurrent use; bbolt serializes
// writers, so several collectors in one process may share one Ledger.
type Bolt struct {
	db      *bbolt.DB
	chainID uint64
}

// Open opens or creates the ledger at path.
func Open(path string, opts *Options) (*Bolt, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.ReadOnly {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("ledger %s: %w", path, err)
		}
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: o.LockTimeout, NoSync: o.NoSync, ReadOnly: o.ReadOnly})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("ledger %s: waited %s: %w", path, o.LockTimeout, ErrLocked)
		}
		return nil, fmt.Errorf("ledger %s: %w", path, err)
	}
	l := &Bolt{db: db, chainID: o.ChainID}
	check := func(tx *bbolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		if m == nil {
			return fmt.Errorf("no meta bucket: %w", ErrCorrupt)
		}
		if c := m.Get(keyChainID); len(c) != 8 || binary.BigEndian.Uint64(c) != o.ChainID {
			found := "none"
			if len(c) == 8 {
				found = fmt.Sprint(binary.BigEndian.Uint64(c))
			}
			return fmt.Errorf("chain ID %s, expected %d: %w", found, o.ChainID, ErrChainID)
		}
		if v := m.Get(keyVersion); len(v) != 8 || binary.BigEndian.Uint64(v) != schemaVersion {
			if len(v) == 8 && binary.BigEndian.Uint64(v) == 1 && o.ReadOnly {
				return fmt.Errorf("schema 1, this collector reads schema %d: run `collector run` (or `collector migrate`) once to migrate it: %w", schemaVersion, ErrVersion)
			}
			if len(v) == 8 {
				return fmt.Errorf("schema %d, this collector reads schema %d (and migrates schema 1): %w", binary.BigEndian.Uint64(v), schemaVersion, ErrVersion)
			}
			return fmt.Errorf("schema version record %x, expected 8 bytes: %w", v, ErrCorrupt)
		}
		return nil
	}
	if o.ReadOnly {
		err = db.View(check)
	} else {
		err = db.Update(func(tx *bbolt.Tx) error {
			if tx.Bucket(bucketMeta) == nil {
				m, err := tx.CreateBucket(bucketMeta)
				if err != nil {
					return err
				}
				if err := m.Put(keyVersion, u64(schemaVersion)); err != nil {
					return err
				}
				if err := m.Put(keyChainID, u64(o.ChainID)); err != nil {
					return err
				}
			}
			for _, name := range [][]byte{bucketDev, bucketBatch, bucketUndrawn, bucketLate, bucketForks, bucketDraws, bucketReg} {
				if _, err := tx.CreateBucketIfNotExists(name); err != nil {
					return err
				}
			}
			if err := migrate(tx, o.ChainID); err != nil {
				return err
			}
			return check(tx)
		})
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("ledger %s: %w", path, err)
	}
	return l, nil
}

// Close closes the database.
func (l *Bolt) Close() error { return l.db.Close() }

// ChainID returns the chain ID the ledger's digests are computed for.
func (l *Bolt) ChainID() uint64 { return l.chainID }

// Path returns the database file.
func (l *Bolt) Path() string { return l.db.Path() }

// Where returns the database file.
func (l *Bolt) Where() string { return l.db.Path() }

var _ Ledger = (*Bolt)(nil)

// Update runs fn in one write transaction, committed when fn returns nil
// and rolled back when it returns an error.
func (l *Bolt) Update(fn func(Tx) error) error {
	return l.db.Update(func(tx *bbolt.Tx) error { return fn(&boltTx{tx: tx}) })
}

// View runs fn in a read transaction.
func (l *Bolt) View(fn func(Tx) error) error {
	return l.db.View(func(tx *bbolt.Tx) error { return fn(&boltTx{tx: tx}) })
}

// Tx is a transaction on the ledger; valid only inside Update or View.
type boltTx struct {
	tx *bbolt.Tx
	// The head last read or written, of device headDev when headOK: a
	// group reads a device's head to decide, again to append, and again
	// to ack. Every write of a head goes through putHead.
	headDev signer.Address
	head    Head
	headOK  bool
}

// putHead writes the device's head record into its bucket d.
func (t *boltTx) putHead(d *bbolt.Bucket, dev signer.Address, h Head) error {
	t.headOK = false
	if err := d.Put(keyHead, h.marshal()); err != nil {
		return err
	}
	t.headDev, t.head, t.headOK = dev, h, true
	return nil
}

// bucket returns the child bucket name of b, created if missing: as
// CreateBucketIfNotExists, without its copy of the name when the bucket
// is open already (bbolt keeps a write transaction's open buckets).
func bucket(b *bbolt.Bucket, name []byte) (*bbolt.Bucket, error) {
	if c := b.Bucket(name); c != nil {
		return c, nil
	}
	return b.CreateBucketIfNotExists(name)
}

// Head is what the ledger holds about a device: its chain head, its
// eligible tail and totals.
type Head struct {
	Seq    uint64   // highest stored seq; every seq <= Seq is stored or in a recorded chain break. 0: none.
	Digest [32]byte // digest signed for Seq (after a break with nothing stored yet: the prev the next seq claims)

	// The eligible tail: the last span that earned tickets. Batch order and
	// the speed limit are judged against it, so an ineligible span (a
	// glitch, a wrong clock) constrains nothing after it.
	TailSeq  uint64 // seq of that span; 0: none yet
	Batch    uint64 // its first batch
	Batches  uint32 // its batches
	Credited uint64 // tickets credited to its last batch by all the device's eligible spans sharing that batch

	Attestations   uint64 // stored attestations
	Meters         uint64 // their meters
	EligibleMeters uint64 // meters of the eligible ones (the tickets)
	Ineligible     uint64 // stored attestations judged ineligible
	Breaks         uint64 // recorded chain breaks
	BatchCount     uint64 // distinct batches covered by eligible spans
	Wins           uint64 // winning tickets in recorded draws
	AwardMicro     uint64 // their worth, µStone
}

// LastBatch returns the last batch of the eligible tail's span.
func (h Head) LastBatch() uint64 { return h.Batch + uint64(h.Batches) - 1 }

// CreditedIn returns the meters the device already has credited in batch b.
// Batches before the tail's last one are closed to it by the batch order.
func (h Head) CreditedIn(b uint64) uint64 {
	if h.TailSeq == 0 || b != h.LastBatch() {
		return 0
	}
	return h.Credited
}

const (
	headV1Len = 1 + 8 + 32 + 8 + 4 + 8 + 5*8
	headLen   = 1 + 8 + 32 + 8 + 8 + 4 + 8 + 8*8
)

func (h Head) marshal() []byte {
	b := make([]byte, 0, headLen)
	b = append(b, 2)
	b = binary.BigEndian.AppendUint64(b, h.Seq)
	b = append(b, h.Digest[:]...)
	b = binary.BigEndian.AppendUint64(b, h.TailSeq)
	b = binary.BigEndian.AppendUint64(b, h.Batch)
	b = binary.BigEndian.AppendUint32(b, h.Batches)
	b = binary.BigEndian.AppendUint64(b, h.Credited)
	for _, v := range []uint64{h.Attestations, h.Meters, h.EligibleMeters, h.Ineligible, h.Breaks, h.BatchCount, h.Wins, h.AwardMicro} {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	return b
}

func unmarshalHead(b []byte) (Head, error) {
	var h Head
	if len(b) != headLen || b[0] != 2 {
		return h, fmt.Errorf("head record of %d bytes, expected %d with version 2: %w", len(b), headLen, ErrCorrupt)
	}
	b = b[1:]
	next := func() uint64 { v := binary.BigEndian.Uint64(b); b = b[8:]; return v }
	h.Seq = next()
	copy(h.Digest[:], b)
	b = b[32:]
	h.TailSeq = next()
	h.Batch = next()
	h.Batches = binary.BigEndian.Uint32(b)
	b = b[4:]
	h.Credited = next()
	h.Attestations, h.Meters, h.EligibleMeters, h.Ineligible = next(), next(), next(), next()
	h.Breaks, h.BatchCount, h.Wins, h.AwardMicro = next(), next(), next(), next()
	return h, nil
}

// unmarshalHeadV1 reads a schema 1 head: every stored attestation was
// accepted, so the tail is the head and all meters are eligible.
func unmarshalHeadV1(b []byte) (Head, error) {
	var h Head
	if len(b) != headV1Len || b[0] != 1 {
		return h, fmt.Errorf("schema 1 head record of %d bytes, expected %d with version 1: %w", len(b), headV1Len, ErrCorrupt)
	}
	b = b[1:]
	next := func() uint64 { v := binary.BigEndian.Uint64(b); b = b[8:]; return v }
	h.Seq = next()
	copy(h.Digest[:], b)
	b = b[32:]
	h.Batch = next()
	h.Batches = binary.BigEndian.Uint32(b)
	b = b[4:]
	h.Credited = next()
	h.Attestations, h.Meters, h.BatchCount, h.Wins, h.AwardMicro = next(), next(), next(), next(), next()
	h.TailSeq, h.EligibleMeters = h.Seq, h.Meters
	return h, nil
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func (t *boltTx) devBucket(dev signer.Address) *bbolt.Bucket {
	return t.tx.Bucket(bucketDev).Bucket(dev[:])
}

// Head returns the device's head; the zero Head for a device never seen.
func (t *boltTx) Head(dev signer.Address) (Head, error) {
	if t.headOK && t.headDev == dev {
		return t.head, nil
	}
	d := t.devBucket(dev)
	if d == nil {
		return Head{}, nil
	}
	v := d.Get(keyHead)
	if v == nil { // never seen, or only held seqs or a loss announcement
		return Head{}, nil
	}
	h, err := unmarshalHead(v)
	if err != nil {
		return h, fmt.Errorf("device %s: %w", dev, err)
	}
	t.headDev, t.head, t.headOK = dev, h, true
	return h, nil
}

// Stored returns the digest and wire form stored for seq, and whether it
// is stored. The wire slice is a copy.
func (t *boltTx) Stored(dev signer.Address, seq uint64) (digest [32]byte, wire []byte, ok bool) {
	d := t.devBucket(dev)
	if d == nil {
		return digest, nil, false
	}
	v := d.Bucket(bucketAtt).Get(u64(seq))
	if len(v) < 32 {
		return digest, nil, false
	}
	copy(digest[:], v)
	return digest, bytes.Clone(v[32:]), true
}

// Append stores a, whose signed digest is digest and wire form wire, as
// the device's next seq with its verdict, and indexes its tickets when the
// verdict is eligible. The caller has verified it and checked its prev;
// Append only refuses a seq other than head + 1 ([ErrNotNext]).
func (t *boltTx) Append(a *signer.Attestation, digest [32]byte, wire []byte, v Verdict) error {
	h, err := t.Head(a.Device)
	if err != nil {
		return err
	}
	if a.Seq != h.Seq+1 {
		return fmt.Errorf("device %s: append seq %d, head is %d: %w", a.Device, a.Seq, h.Seq, ErrNotNext)
	}
	d, err := bucket(t.tx.Bucket(bucketDev), a.Device[:])
	if err != nil {
		return fmt.Errorf("device %s: %w", a.Device, err)
	}
	att, err := bucket(d, bucketAtt)
	if err != nil {
		return err
	}
	modes, err := bucket(d, bucketModes)
	if err != nil {
		return err
	}
	verdicts, err := bucket(d, bucketVerdict)
	if err != nil {
		return err
	}
	val := make([]byte, 0, 32+len(wire))
	val = append(append(val, digest[:]...), wire...)
	if err := att.Put(u64(a.Seq), val); err != nil {
		return err
	}
	vj, err := MarshalVerdict(v)
	if err != nil {
		return err
	}
	if err := verdicts.Put(u64(a.Seq), vj); err != nil {
		return err
	}
	for _, m := range a.Modes {
		name := []byte(m.Mode)
		var cur uint64
		if v := modes.Get(name); len(v) == 8 {
			cur = binary.BigEndian.Uint64(v)
		}
		if err := modes.Put(name, u64(cur+m.Meters)); err != nil {
			return err
		}
	}

	if err := t.putHead(d, a.Device, h.After(a, digest, v)); err != nil {
		return err
	}
	if !v.Eligible {
		return nil
	}
	return t.index(a)
}

// After returns the head after a, with digest and verdict v, is appended
// to a device whose head is h.
func (h Head) After(a *signer.Attestation, digest [32]byte, v Verdict) Head {
	nh := h
	nh.Seq, nh.Digest = a.Seq, digest
	nh.Attestations++
	nh.Meters += a.Meters
	if !v.Eligible {
		nh.Ineligible++
		return nh
	}
	shared := h.TailSeq > 0 && a.Batch == h.LastBatch()
	last := a.Batch + uint64(a.Batches) - 1
	nh.TailSeq, nh.Batch, nh.Batches = a.Seq, a.Batch, a.Batches
	nh.Credited = draw.Share(a.Batch, a.Batches, a.Meters, last)
	nh.EligibleMeters += a.Meters
	nh.BatchCount += uint64(a.Batches)
	if shared {
		nh.BatchCount--
		if a.Batches == 1 {
			nh.Credited += h.Credited
		}
	}
	return nh
}

// Encode returns the head's binary record (the form both ledgers store).
func (h Head) Encode() []byte { return h.marshal() }

// DecodeHead reads a head's binary record.
func DecodeHead(b []byte) (Head, error) { return unmarshalHead(b) }

// Tickets calls fn with each batch of a's span that has tickets, from
// [draw.Genesis] on, and the tickets it gives that batch: min(meters,
// batches) batches.
func Tickets(a *signer.Attestation, fn func(batch, tickets uint64) error) error {
	n := uint64(a.Batches)
	if a.Meters < n {
		n = a.Meters
	}
	for j := uint64(0); j < n; j++ {
		b := a.Batch + j
		if b < a.Batch { // wrapped past 2^64-1
			break
		}
		if b < draw.Genesis {
			continue
		}
		if err := fn(b, draw.Share(a.Batch, a.Batches, a.Meters, b)); err != nil {
			return err
		}
	}
	return nil
}

// index adds a's tickets to the index of each batch it covers, or to
// "late" for a batch already drawn. Only batches with tickets are visited:
// min(meters, batches) of them.
func (t *boltTx) index(a *signer.Attestation) error {
	idx := t.tx.Bucket(bucketBatch)
	draws := t.tx.Bucket(bucketDraws)
	key := make([]byte, 28)
	copy(key, a.Device[:])
	binary.BigEndian.PutUint64(key[20:], a.Seq)
	return Tickets(a, func(b, n uint64) error {
		tickets := u64(n)
		bk := u64(b)
		if draws.Get(bk) != nil {
			if err := t.tx.Bucket(bucketLate).Put(append(bk, key...), tickets); err != nil {
				return err
			}
			return nil
		}
		bb, err := bucket(idx, bk)
		if err != nil {
			return fmt.Errorf("batch %d index: %w", b, err)
		}
		if err := bb.Put(key, tickets); err != nil {
			return err
		}
		return t.tx.Bucket(bucketUndrawn).Put(bk, nil)
	})
}

// Fork is evidence that a device signed two different attestations where
// its chain allows one: two for one seq ("seq"), or one whose prev is not
// the digest stored for seq-1 ("prev").
type Fork struct {
	Device   signer.Address `json:"device"`
	Seq      uint64         `json:"seq"`
	Kind     string         `json:"kind"`   // "seq" or "prev"
	Digest   string         `json:"digest"` // of the refused attestation, 0x hex
	Stored   string         `json:"stored"` // the stored digest it contradicts, 0x hex
	Wire     string         `json:"wire"`   // the refused attestation
	Received time.Time      `json:"received"`
}

// RecordFork records f under its device, seq and digest. It reports
// whether it was new; recording the same evidence again is a no-op.
func (t *boltTx) RecordFork(f Fork, digest [32]byte) (bool, error) {
	key := make([]byte, 0, 60)
	key = append(append(append(key, f.Device[:]...), u64(f.Seq)...), digest[:]...)
	b := t.tx.Bucket(bucketForks)
	if b.Get(key) != nil {
		return false, nil
	}
	v, err := json.Marshal(f)
	if err != nil {
		return false, err
	}
	return true, b.Put(key, v)
}

// Forks returns the recorded forks, by device and seq.
func (t *boltTx) Forks() ([]Fork, error) {
	var fs []Fork
	err := t.tx.Bucket(bucketForks).ForEach(func(k, v []byte) error {
		var f Fork
		if err := json.Unmarshal(v, &f); err != nil {
			return fmt.Errorf("fork %x: %w: %v", k, ErrCorrupt, err)
		}
		fs = append(fs, f)
		return nil
	})
	return fs, err
}

// Undrawn returns the batches with tickets and no recorded draw, ascending.
func (t *boltTx) Undrawn() []uint64 {
	var bs []uint64
	t.tx.Bucket(bucketUndrawn).ForEach(func(k, _ []byte) error {
		if len(k) == 8 {
			bs = append(bs, binary.BigEndian.Uint64(k))
		}
		return nil
	})
	return bs
}

// Entries returns the ticket index of batch b, in canonical order (device,
// then seq).
func (t *boltTx) Entries(b uint64) ([]draw.Entry, error) {
	bb := t.tx.Bucket(bucketBatch).Bucket(u64(b))
	if bb == nil {
		return nil, nil
	}
	var es []draw.Entry
	err := bb.ForEach(func(k, v []byte) error {
		if len(k) != 28 || len(v) != 8 {
			return fmt.Errorf("batch %d index entry %x: %w", b, k, ErrCorrupt)
		}
		var e draw.Entry
		copy(e.Device[:], k)
		e.Seq = binary.BigEndian.Uint64(k[20:])
		e.Tickets = binary.BigEndian.Uint64(v)
		es = append(es, e)
		return nil
	})
	return es, err
}

// Late returns the tickets of attestations that arrived for batch b after
// its draw (not part of it).
func (t *boltTx) Late(b uint64) []draw.Entry {
	var es []draw.Entry
	c := t.tx.Bucket(bucketLate).Cursor()
	p := u64(b)
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		if len(k) != 36 || len(v) != 8 {
			continue
		}
		var e draw.Entry
		copy(e.Device[:], k[8:])
		e.Seq = binary.BigEndian.Uint64(k[28:])
		e.Tickets = binary.BigEndian.Uint64(v)
		es = append(es, e)
	}
	return es
}

// DrawRecord is a recorded draw.
type DrawRecord struct {
	draw.Result
	At time.Time `json:"at"`
}

// Draw returns the recorded draw of batch b, or nil.
func (t *boltTx) Draw(b uint64) (*DrawRecord, error) {
	v := t.tx.Bucket(bucketDraws).Get(u64(b))
	if v == nil {
		return nil, nil
	}
	var r DrawRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("draw of batch %d: %w: %v", b, ErrCorrupt, err)
	}
	return &r, nil
}

// RecordDraw records the draw of a batch, credits the awards to the
// devices and freezes the batch's index. A second draw of the same batch
// is refused ([ErrDrawn]). A batch without tickets may be closed with a
// nil result: it is then marked drawn with no winners.
func (t *boltTx) RecordDraw(b uint64, res *draw.Result, at time.Time) error {
	bk := u64(b)
	draws := t.tx.Bucket(bucketDraws)
	if draws.Get(bk) != nil {
		return fmt.Errorf("batch %d: %w", b, ErrDrawn)
	}
	rec := DrawRecord{At: at.UTC()}
	if res != nil {
		if res.Batch != b {
			return fmt.Errorf("draw of batch %d recorded as batch %d", res.Batch, b)
		}
		rec.Result = *res
	} else {
		rec.Batch = b
	}
	v, err := json.Marshal(&rec)
	if err != nil {
		return err
	}
	if err := draws.Put(bk, v); err != nil {
		return err
	}
	if err := t.tx.Bucket(bucketUndrawn).Delete(bk); err != nil {
		return err
	}
	for _, a := range rec.Awards {
		h, err := t.Head(a.Device)
		if err != nil {
			return err
		}
		d := t.devBucket(a.Device)
		if d == nil || h.Seq == 0 {
			return fmt.Errorf("draw of batch %d: award to unknown device %s", b, a.Device)
		}
		h.Wins += uint64(a.Wins)
		h.AwardMicro += a.Micro
		if err := t.putHead(d, a.Device, h); err != nil {
			return err
		}
	}
	return nil
}

// DeviceStats is the summary of one device.
type DeviceStats struct {
	Device       signer.Address    `json:"device"`
	Attestations uint64            `json:"attestations"`
	Meters       uint64            `json:"meters"`
	Modes        map[string]uint64 `json:"modes"`
	// EligibleMeters are the meters that earn tickets; Ineligible counts
	// the stored attestations that earn none (see their verdicts).
	EligibleMeters uint64 `json:"eligible_meters"`
	Ineligible     uint64 `json:"ineligible"`
	Batches        uint64 `json:"batches"` // distinct batches covered by eligible spans
	Head           uint64 `json:"head"`    // highest stored seq
	Held           int    `json:"held"`    // seqs beyond a gap, waiting
	Breaks         uint64 `json:"breaks"`  // recorded chain breaks
	Wins           uint64 `json:"wins"`
	AwardMicro     uint64 `json:"award_micro"`
}

// Stats summarizes the ledger.
type Stats struct {
	Devices []DeviceStats `json:"devices"` // by address
	Forks   int           `json:"forks"`
	Breaks  uint64        `json:"breaks"`
	Held    int           `json:"held"`
	Draws   int           `json:"draws"`
	Undrawn int           `json:"undrawn"`
}

// Stats summarizes the ledger (see [StatsOf]).
func (l *Bolt) Stats() (*Stats, error) { return StatsOf(l) }

// Device returns the report of one device (see [DeviceOf]).
func (l *Bolt) Device(dev signer.Address) (*DeviceReport, error) { return DeviceOf(l, dev) }

// Audit runs bbolt's own consistency check, then [AuditTx].
func (l *Bolt) Audit() error {
	return l.db.View(func(tx *bbolt.Tx) error {
		var first error
		for err := range tx.Check() { // drain: Check's goroutine sends every error
			if first == nil {
				first = fmt.Errorf("bbolt check: %w", err)
			}
		}
		if first != nil {
			return first
		}
		return AuditTx(&boltTx{tx: tx}, l.chainID)
	})
}
