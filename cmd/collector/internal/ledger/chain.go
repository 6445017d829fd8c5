package ledger

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/csop/tbox/signer"
)

// Verdict is the collector's judgement of a stored attestation: whether
// its meters earn tickets, and why not. It is stored beside the
// attestation; the attestation is stored (and receipted) either way.
type Verdict struct {
	Eligible bool   `json:"eligible"`
	Code     string `json:"code"`             // "eligible", or the rule that failed ("impossible meters", ...)
	Reason   string `json:"reason,omitempty"` // the rule's numbers, starting with Code
}

// eligibleJSON is the stored form of the common verdict, marshalled once.
var eligibleJSON, _ = json.Marshal(Verdict{Eligible: true, Code: "eligible"})

// MarshalVerdict returns v's stored form (JSON).
func MarshalVerdict(v Verdict) ([]byte, error) {
	if v == (Verdict{Eligible: true, Code: "eligible"}) {
		return eligibleJSON, nil
	}
	return json.Marshal(v)
}

// Verdict returns the verdict stored for seq, and whether there is one.
func (t *boltTx) Verdict(dev signer.Address, seq uint64) (Verdict, bool, error) {
	var v Verdict
	d := t.devBucket(dev)
	if d == nil || d.Bucket(bucketVerdict) == nil {
		return v, false, nil
	}
	raw := d.Bucket(bucketVerdict).Get(u64(seq))
	if raw == nil {
		return v, false, nil
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, false, fmt.Errorf("device %s seq %d verdict: %w: %v", dev, seq, ErrCorrupt, err)
	}
	return v, true, nil
}

// Held is an attestation beyond head + 1, waiting for the missing seqs.
type Held struct {
	Seq      uint64
	Digest   [32]byte
	Received time.Time // when it was first held
	Wire     []byte
}

// Hold keeps an attestation whose seq is beyond head + 1 until the chain
// reaches it, with at as its reception time. A copy of one already held
// changes nothing (it keeps its first reception time, which gap_timeout
// counts from); for another attestation of a held seq, nothing is written
// and the one held is returned as conflict (fork evidence). The caller has
// verified a.
func (t *boltTx) Hold(a *signer.Attestation, digest [32]byte, wire []byte, at time.Time) (conflict *Held, err error) {
	d, err := t.tx.Bucket(bucketDev).CreateBucketIfNotExists(a.Device[:])
	if err != nil {
		return nil, fmt.Errorf("device %s: %w", a.Device, err)
	}
	hb, err := d.CreateBucketIfNotExists(bucketHeld)
	if err != nil {
		return nil, err
	}
	if old := hb.Get(u64(a.Seq)); old != nil {
		h, err := decodeHeld(a.Seq, old)
		if err != nil {
			return nil, fmt.Errorf("device %s: %w", a.Device, err)
		}
		if h.Digest == digest {
			return nil, nil
		}
		return &h, nil
	}
	v := make([]byte, 0, 40+len(wire))
	v = append(v, digest[:]...)
	v = binary.BigEndian.AppendUint64(v, uint64(at.UnixNano()))
	v = append(v, wire...)
	return nil, hb.Put(u64(a.Seq), v)
}

func decodeHeld(seq uint64, v []byte) (Held, error) {
	if len(v) < 40 {
		return Held{}, fmt.Errorf("held seq %d record of %d bytes: %w", seq, len(v), ErrCorrupt)
	}
	h := Held{Seq: seq, Received: time.Unix(0, int64(binary.BigEndian.Uint64(v[32:40]))).UTC(), Wire: bytes.Clone(v[40:])}
	copy(h.Digest[:], v)
	return h, nil
}

// HeldSeqs returns the device's held attestations, by seq.
func (t *boltTx) HeldSeqs(dev signer.Address) ([]Held, error) {
	d := t.devBucket(dev)
	if d == nil || d.Bucket(bucketHeld) == nil {
		return nil, nil
	}
	var hs []Held
	err := d.Bucket(bucketHeld).ForEach(func(k, v []byte) error {
		if len(k) != 8 {
			return fmt.Errorf("device %s held key %x: %w", dev, k, ErrCorrupt)
		}
		h, err := decodeHeld(binary.BigEndian.Uint64(k), v)
		if err != nil {
			return fmt.Errorf("device %s: %w", dev, err)
		}
		hs = append(hs, h)
		return nil
	})
	return hs, err
}

// Release removes a held seq (it was stored, or refused).
func (t *boltTx) Release(dev signer.Address, seq uint64) error {
	d := t.devBucket(dev)
	if d == nil || d.Bucket(bucketHeld) == nil {
		return nil
	}
	return d.Bucket(bucketHeld).Delete(u64(seq))
}

// Break is a recorded chain break: seqs From .. To of the device never
// reached the collector, and its chain continues at To + 1, whose prev
// (the digest it claims for seq To) cannot be checked.
type Break struct {
	Device signer.Address `json:"device"`
	From   uint64         `json:"from"`
	To     uint64         `json:"to"`
	Prev   string         `json:"prev"`  // 0x hex: the prev of seq To + 1
	Cause  string         `json:"cause"` // "gap_timeout" or "announced"
	Reason string         `json:"reason"`
	At     time.Time      `json:"at"`
}

// Break causes.
const (
	CauseTimeout   = "gap_timeout"
	CauseAnnounced = "announced"
)

// RecordBreak records that b.From .. b.To are missing, b.From being the
// device's head + 1, and moves the head to b.To with digest prev, so that
// the next Append is seq b.To + 1 with that prev.
func (t *boltTx) RecordBreak(b Break, prev [32]byte) error {
	h, err := t.Head(b.Device)
	if err != nil {
		return err
	}
	if b.From != h.Seq+1 || b.To < b.From {
		return fmt.Errorf("device %s: break %d .. %d, head is %d: %w", b.Device, b.From, b.To, h.Seq, ErrNotNext)
	}
	d, err := t.tx.Bucket(bucketDev).CreateBucketIfNotExists(b.Device[:])
	if err != nil {
		return fmt.Errorf("device %s: %w", b.Device, err)
	}
	bb, err := d.CreateBucketIfNotExists(bucketBreaks)
	if err != nil {
		return err
	}
	b.Prev = fmt.Sprintf("0x%x", prev)
	v, err := json.Marshal(b)
	if err != nil {
		return err
	}
	if err := bb.Put(u64(b.From), v); err != nil {
		return err
	}
	h.Seq, h.Digest = b.To, prev
	h.Breaks++
	return t.putHead(d, b.Device, h)
}

// Breaks returns the device's recorded chain breaks, by seq.
func (t *boltTx) Breaks(dev signer.Address) ([]Break, error) {
	d := t.devBucket(dev)
	if d == nil || d.Bucket(bucketBreaks) == nil {
		return nil, nil
	}
	var bs []Break
	err := d.Bucket(bucketBreaks).ForEach(func(k, v []byte) error {
		var b Break
		if err := json.Unmarshal(v, &b); err != nil {
			return fmt.Errorf("device %s break %x: %w: %v", dev, k, ErrCorrupt, err)
		}
		bs = append(bs, b)
		return nil
	})
	return bs, err
}

// BreakOf returns the recorded break containing seq, if any.
func (t *boltTx) BreakOf(dev signer.Address, seq uint64) (*Break, error) {
	d := t.devBucket(dev)
	if d == nil || d.Bucket(bucketBreaks) == nil {
		return nil, nil
	}
	c := d.Bucket(bucketBreaks).Cursor()
	k, v := c.Seek(u64(seq))
	if k == nil || binary.BigEndian.Uint64(k) != seq {
		k, v = c.Prev()
	}
	if k == nil {
		return nil, nil
	}
	var b Break
	if err := json.Unmarshal(v, &b); err != nil {
		return nil, fmt.Errorf("device %s break %x: %w: %v", dev, k, ErrCorrupt, err)
	}
	if seq < b.From || seq > b.To {
		return nil, nil
	}
	return &b, nil
}

// Loss is a device's announcement that seqs From .. To may be lost (its
// outbox was re-seeded from its sidecar). A gap within it is recorded as a
// chain break without waiting for gap_timeout.
type Loss struct {
	From uint64    `json:"from"`
	To   uint64    `json:"to"`
	At   time.Time `json:"at"`
}

// Covers reports whether the loss covers seqs from .. to.
func (l Loss) Covers(from, to uint64) bool { return l.From <= from && to <= l.To }

// AnnounceLoss records the device's latest loss announcement. It reports
// whether it changed anything (a retained announcement comes again at each
// connection).
func (t *boltTx) AnnounceLoss(dev signer.Address, l Loss) (bool, error) {
	if old, ok, err := t.Lost(dev); err != nil || (ok && old.From == l.From && old.To == l.To) {
		return false, err
	}
	d, err := t.tx.Bucket(bucketDev).CreateBucketIfNotExists(dev[:])
	if err != nil {
		return false, fmt.Errorf("device %s: %w", dev, err)
	}
	v, err := json.Marshal(l)
	if err != nil {
		return false, err
	}
	return true, d.Put(keyLost, v)
}

// Lost returns the device's latest loss announcement.
func (t *boltTx) Lost(dev signer.Address) (Loss, bool, error) {
	var l Loss
	d := t.devBucket(dev)
	if d == nil {
		return l, false, nil
	}
	v := d.Get(keyLost)
	if v == nil {
		return l, false, nil
	}
	if err := json.Unmarshal(v, &l); err != nil {
		return l, false, fmt.Errorf("device %s loss announcement: %w: %v", dev, ErrCorrupt, err)
	}
	return l, true, nil
}

// Record is one stored attestation of a device with its verdict.
type Record struct {
	Seq     uint64  `json:"seq"`
	Digest  string  `json:"digest"`
	Batch   uint64  `json:"batch"`
	Batches uint32  `json:"batches"`
	Meters  uint64  `json:"meters"`
	Flags   uint32  `json:"flags"`
	Verdict Verdict `json:"verdict"`
}

// DeviceReport is everything the ledger holds about one device's chain.
type DeviceReport struct {
	Device  signer.Address `json:"device"`
	Head    uint64         `json:"head"`
	Records []Record       `json:"records"`
	Breaks  []Break        `json:"breaks"`
	Held    []HeldInfo     `json:"held"`
	Forks   []Fork         `json:"forks"`
	Lost    *Loss          `json:"lost,omitempty"`
}

// HeldInfo is a held seq as reported.
type HeldInfo struct {
	Seq      uint64    `json:"seq"`
	Digest   string    `json:"digest"`
	Received time.Time `json:"received"`
}
