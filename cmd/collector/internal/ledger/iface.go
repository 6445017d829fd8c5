package ledger

import (
	"bytes"
	"fmt"
	"sort"
	"time"

	"github.com/csop/tbox/cmd/collector/internal/draw"
	"github.com/csop/tbox/signer"
)

// Ledger is a collector's durable store. Two implementations pass the
// one conformance suite (package ledgertest): [Bolt], the embedded
// single-process file, and the PostgreSQL ledger (package pgledger), shared
// by the collectors of a fleet. Both are safe for concurrent use.
type Ledger interface {
	// ChainID returns the chain ID the stored digests are computed for.
	ChainID() uint64
	// Where names the store for operators: a file path, or a database
	// URL without its password.
	Where() string
	// Update runs fn in one write transaction, committed when fn returns
	// nil and rolled back when it returns an error. fn may run more than
	// once (a database that aborts one of two conflicting transactions is
	// retried), so it must not keep what it saw of a failed attempt.
	Update(fn func(Tx) error) error
	// View runs fn in a read transaction.
	View(fn func(Tx) error) error
	// Audit re-checks everything stored (see [AuditTx]).
	Audit() error
	// Stats summarizes the ledger (see [StatsOf]).
	Stats() (*Stats, error)
	// Device reports one device (see [DeviceOf]).
	Device(dev signer.Address) (*DeviceReport, error)
	Close() error
}

// Tx is a transaction on a ledger; valid only inside Update or View. The
// write methods fail in View.
//
// Per-device order: the writes of a device's chain (Append, Hold,
// Release, RecordBreak, AnnounceLoss) and the Head they are decided on are
// serialized per device by the store itself: bbolt has one writer at a
// time; PostgreSQL locks the device's head row (SELECT ... FOR UPDATE) for
// the rest of the transaction at the first Head or Lock of the device. So
// a decision made on a Head stays true until commit, whichever collector
// process made it.
//
// Methods without an error result (Stored, Undrawn, Late) report a failure
// of the store by failing the transaction: Update or View returns it.
type Tx interface {
	// Lock takes the per-device order of devs at once, in a fixed order
	// (no deadlock between two transactions locking overlapping groups).
	// Optional: Head locks a device on its own.
	Lock(devs []signer.Address) error
	// Head returns the device's head; the zero Head for a device never
	// seen. Wins and AwardMicro may be zero: see Awards.
	Head(dev signer.Address) (Head, error)
	// Stored returns the digest and wire form stored for seq.
	Stored(dev signer.Address, seq uint64) (digest [32]byte, wire []byte, ok bool)
	// Append stores a as the device's next seq (head + 1, else
	// [ErrNotNext]) with its verdict, and indexes its tickets when
	// eligible (or files them as late for a batch already drawn).
	Append(a *signer.Attestation, digest [32]byte, wire []byte, v Verdict) error
	Verdict(dev signer.Address, seq uint64) (Verdict, bool, error)
	// Records calls fn for each stored attestation of dev, by seq.
	Records(dev signer.Address, fn func(seq uint64, digest [32]byte, wire []byte) error) error
	// Devices returns every device the ledger has anything of, by address.
	Devices() ([]signer.Address, error)
	// Modes returns the device's meters per drive mode.
	Modes(dev signer.Address) (map[string]uint64, error)
	// Awards returns the device's winning tickets and their worth.
	Awards(dev signer.Address) (wins, micro uint64, err error)

	Hold(a *signer.Attestation, digest [32]byte, wire []byte, at time.Time) (conflict *Held, err error)
	HeldSeqs(dev signer.Address) ([]Held, error)
	Release(dev signer.Address, seq uint64) error
	RecordBreak(b Break, prev [32]byte) error
	Breaks(dev signer.Address) ([]Break, error)
	BreakOf(dev signer.Address, seq uint64) (*Break, error)
	AnnounceLoss(dev signer.Address, l Loss) (bool, error)
	Lost(dev signer.Address) (Loss, bool, error)
	RecordFork(f Fork, digest [32]byte) (bool, error)
	Forks() ([]Fork, error)

	// Undrawn returns the batches with tickets and no recorded draw.
	Undrawn() []uint64
	Entries(b uint64) ([]draw.Entry, error)
	Late(b uint64) []draw.Entry
	Draw(b uint64) (*DrawRecord, error)
	// ClaimDraw claims the draw of batch b for this transaction: true when
	// no draw is recorded, and until commit no other transaction can
	// record one or add tickets to the batch's index (an attestation for
	// b stored meanwhile waits, then goes to Late). False: drawn already.
	ClaimDraw(b uint64) (bool, error)
	RecordDraw(b uint64, res *draw.Result, at time.Time) error
	// Draws returns how many draws are recorded.
	Draws() (int, error)
	// LastDraws returns the recorded draws of the n highest batches,
	// highest first, however far back they are: one index walk (bbolt),
	// one query (PostgreSQL).
	LastDraws(n int) ([]DrawRecord, error)

	// Registry: the devices allowed to attest.
	RegistryAdd(devs []signer.Address) (added int, err error)
	RegistryRemove(devs []signer.Address) (removed int, err error)
	Registry() ([]signer.Address, error)
}

// DeviceStatsOf returns the summary of one device.
func DeviceStatsOf(t Tx, dev signer.Address) (DeviceStats, error) {
	h, err := t.Head(dev)
	if err != nil {
		return DeviceStats{}, err
	}
	ds := DeviceStats{Device: dev, Attestations: h.Attestations, Meters: h.Meters, Batches: h.BatchCount,
		EligibleMeters: h.EligibleMeters, Ineligible: h.Ineligible, Head: h.Seq, Breaks: h.Breaks}
	if ds.Wins, ds.AwardMicro, err = t.Awards(dev); err != nil {
		return ds, err
	}
	held, err := t.HeldSeqs(dev)
	if err != nil {
		return ds, err
	}
	ds.Held = len(held)
	if ds.Modes, err = t.Modes(dev); err != nil {
		return ds, err
	}
	if ds.Modes == nil {
		ds.Modes = map[string]uint64{}
	}
	return ds, nil
}

// StatsOf summarizes the ledger: per device its attestations, meters (in
// all and per drive mode), batches and awards.
func StatsOf(l Ledger) (*Stats, error) {
	s := &Stats{}
	err := l.View(func(t Tx) error {
		*s = Stats{}
		devs, err := t.Devices()
		if err != nil {
			return err
		}
		for _, dev := range devs {
			ds, err := DeviceStatsOf(t, dev)
			if err != nil {
				return err
			}
			s.Breaks += ds.Breaks
			s.Held += ds.Held
			s.Devices = append(s.Devices, ds)
		}
		fs, err := t.Forks()
		if err != nil {
			return err
		}
		s.Forks = len(fs)
		if s.Draws, err = t.Draws(); err != nil {
			return err
		}
		s.Undrawn = len(t.Undrawn())
		return nil
	})
	sort.Slice(s.Devices, func(i, j int) bool { return bytes.Compare(s.Devices[i].Device[:], s.Devices[j].Device[:]) < 0 })
	return s, err
}

// DeviceOf returns the report of one device: each stored attestation with
// its verdict, its chain breaks, held seqs, forks and loss announcement.
func DeviceOf(l Ledger, dev signer.Address) (*DeviceReport, error) {
	r := &DeviceReport{}
	err := l.View(func(t Tx) error {
		*r = DeviceReport{Device: dev}
		h, err := t.Head(dev)
		if err != nil {
			return err
		}
		r.Head = h.Seq
		err = t.Records(dev, func(seq uint64, digest [32]byte, wire []byte) error {
			a, err := signer.ParseWire(wire)
			if err != nil {
				return fmt.Errorf("device %s seq %d: %w", dev, seq, err)
			}
			vd, _, err := t.Verdict(dev, seq)
			if err != nil {
				return err
			}
			r.Records = append(r.Records, Record{Seq: seq, Digest: fmt.Sprintf("0x%x", digest), Batch: a.Batch, Batches: a.Batches,
				Meters: a.Meters, Flags: a.Flags, Verdict: vd})
			return nil
		})
		if err != nil {
			return err
		}
		if r.Breaks, err = t.Breaks(dev); err != nil {
			return err
		}
		hs, err := t.HeldSeqs(dev)
		if err != nil {
			return err
		}
		for _, h := range hs {
			r.Held = append(r.Held, HeldInfo{Seq: h.Seq, Digest: fmt.Sprintf("0x%x", h.Digest), Received: h.Received})
		}
		fs, err := t.Forks()
		if err != nil {
			return err
		}
		for _, f := range fs {
			if f.Device == dev {
				r.Forks = append(r.Forks, f)
			}
		}
		sort.Slice(r.Forks, func(i, j int) bool { return r.Forks[i].Seq < r.Forks[j].Seq })
		if lost, ok, err := t.Lost(dev); err != nil {
			return err
		} else if ok {
			r.Lost = &lost
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// AuditTx re-checks every device's chain inside t: from seq 1 with
// [signer.ChainChecker] (signature, fields, seq continuity, prev links),
// resumed after each recorded chain break at the prev its next seq
// claims; each stored digest against the attestation; a verdict for each;
// and the head against the chain. It returns the first problem found.
func AuditTx(t Tx, chainID uint64) error {
	cc := signer.NewChainChecker(chainID)
	devs, err := t.Devices()
	if err != nil {
		return err
	}
	for _, dev := range devs {
		h, err := t.Head(dev)
		if err != nil {
			return err
		}
		breaks, err := t.Breaks(dev)
		if err != nil {
			return err
		}
		byFrom := map[uint64]Break{}
		for _, b := range breaks {
			byFrom[b.From] = b
		}
		var next, count, last, ineligible uint64 = 1, 0, 0, 0
		err = t.Records(dev, func(seq uint64, digest [32]byte, wire []byte) error {
			a, err := signer.ParseWire(wire)
			if err != nil {
				return fmt.Errorf("device %s seq %d: %w", dev, seq, err)
			}
			if seq != next {
				b, ok := byFrom[next]
				if !ok || b.To != seq-1 {
					return fmt.Errorf("device %s: seq %d follows seq %d without a recorded chain break: %w", dev, seq, last, ErrCorrupt)
				}
				cc.Resume(dev, b.To, a.Prev)
			}
			count++
			last, next = seq, seq+1
			if a.Device != dev || a.Seq != seq {
				return fmt.Errorf("device %s seq %d: attestation of device %s seq %d: %w", dev, seq, a.Device, a.Seq, ErrCorrupt)
			}
			if ps := cc.Check(a); len(ps) > 0 {
				return fmt.Errorf("device %s: %w", dev, ps[0])
			}
			if d := signer.Digest(chainID, a); d != digest {
				return fmt.Errorf("device %s seq %d: stored digest differs: %w", dev, seq, ErrCorrupt)
			}
			vd, ok, err := t.Verdict(dev, seq)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("device %s seq %d: no verdict: %w", dev, seq, ErrCorrupt)
			}
			if !vd.Eligible {
				ineligible++
			}
			return nil
		})
		if err != nil {
			return err
		}
		if count == 0 {
			continue // announced loss or held seqs only
		}
		if last != h.Seq || h.Attestations != count || h.Ineligible != ineligible || h.Breaks != uint64(len(breaks)) {
			return fmt.Errorf("device %s: %d attestations (%d ineligible) up to seq %d and %d breaks stored, head says %d (%d) up to seq %d and %d breaks: %w",
				dev, count, ineligible, last, len(breaks), h.Attestations, h.Ineligible, h.Seq, h.Breaks, ErrCorrupt)
		}
	}
	return nil
}
