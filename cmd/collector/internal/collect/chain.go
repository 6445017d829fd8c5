package collect

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/csop/tbox/cmd/collector/internal/draw"
	"github.com/csop/tbox/cmd/collector/internal/ledger"
	wirefmt "github.com/csop/tbox/cmd/collector/internal/wire"
	"github.com/csop/tbox/signer"
)

// outcome is what deciding one candidate did.
type outcome struct {
	nacks  []Reply // refusals: this candidate's, or of held seqs it released
	stored uint64  // attestations stored: this one and the held ones that followed it
	dup    bool    // a copy of a stored attestation: receipted again
	held   bool    // beyond head + 1: kept until the chain reaches it, no reply
	ack    bool    // the device gets its cumulative ack
	// Counted by the caller once the transaction commits (a transaction
	// may run more than once: Ledger.Update).
	ineligible uint64 // stored with an ineligible verdict
	breaks     uint64 // chain breaks recorded
}

// add adds what a later step of the same candidate did.
func (o *outcome) add(x outcome) {
	o.nacks = append(o.nacks, x.nacks...)
	o.stored += x.stored
	o.ineligible += x.ineligible
	o.breaks += x.breaks
}

// nackOf is the refusal of the attestation dev signed for seq with digest
// (the digest the signed refusal names).
func (c *Collector) nackOf(dev signer.Address, seq uint64, digest [32]byte, kind error, format string, args ...any) Reply {
	err := &refusal{kind, kind.Error() + ": " + fmt.Sprintf(format, args...)}
	c.log.Info("attestation refused", "device", dev, "seq", seq, "reason", err.msg)
	return Reply{Topic: "csop/v1/" + dev.String() + "/nack", Seq: seq, Digest: digest, Err: err}
}

// decide places one verified candidate in its device's chain inside the
// group's transaction: stored (with its verdict), receipted again, held,
// or refused. An error aborts the transaction.
func (c *Collector) decide(tx ledger.Tx, cd *candidate) (outcome, error) {
	var o outcome
	a := cd.a
	h, err := tx.Head(a.Device)
	if err != nil {
		return o, err
	}
	switch {
	case a.Seq <= h.Seq:
		nack, dup, err := c.atOrBelowHead(tx, a.Device, a.Seq, cd.digest, cd.wire)
		if err != nil {
			return o, err
		}
		if nack != nil {
			o.nacks = append(o.nacks, *nack)
			return o, nil
		}
		if dup {
			c.log.Debug("duplicate attestation, receipted again", "device", a.Device, "seq", a.Seq)
		}
		o.dup, o.ack = dup, dup
		return o, nil
	case a.Seq == h.Seq+1:
		if a.Prev != h.Digest { // h.Digest is zero for a device never seen
			if h.Seq == 0 {
				o.nacks = append(o.nacks, c.nackOf(a.Device, a.Seq, cd.digest, signer.ErrPrevMismatch, "seq 1 has prev 0x%x, expected 32 zero bytes", a.Prev))
				return o, nil
			}
			if err := c.recordFork(tx, a, cd.digest, cd.wire, "prev", h.Digest); err != nil {
				return o, err
			}
			o.nacks = append(o.nacks, c.nackOf(a.Device, a.Seq, cd.digest, signer.ErrPrevMismatch, "prev 0x%x, but seq %d is stored with digest 0x%x (a fork)", a.Prev, h.Seq, h.Digest))
			return o, nil
		}
		eligible, err := c.store(tx, h, a, cd.digest, cd.wire)
		if err != nil {
			return o, err
		}
		o.stored, o.ack = 1, true
		if !eligible {
			o.ineligible++
		}
	default:
		held, err := tx.HeldSeqs(a.Device)
		if err != nil {
			return o, err
		}
		if len(held) >= c.cfg.MaxHeld {
			c.log.Warn("held seqs at their limit; not holding this one, the device will send it again", "device", a.Device, "seq", a.Seq, "held", len(held))
		} else {
			conflict, err := tx.Hold(a, cd.digest, cd.wire, c.cfg.Now())
			if err != nil {
				return o, err
			}
			if conflict != nil {
				if err := c.recordFork(tx, a, cd.digest, cd.wire, "seq", conflict.Digest); err != nil {
					return o, err
				}
				o.nacks = append(o.nacks, c.nackOf(a.Device, a.Seq, cd.digest, ErrFork, "seq %d is held with digest 0x%x; this one has digest 0x%x", a.Seq, conflict.Digest, cd.digest))
				return o, nil
			}
			o.held = true
			c.log.Debug("attestation held: seqs before it are missing", "device", a.Device, "seq", a.Seq, "expected", h.Seq+1)
		}
	}
	d, err := c.drain(tx, a.Device)
	if err != nil {
		return o, err
	}
	o.add(d)
	if d.stored > 0 {
		o.ack = true
		if o.held {
			if d, _, ok := tx.Stored(a.Device, a.Seq); ok && d == cd.digest {
				o.held = false
			}
		}
	}
	return o, nil
}

// atOrBelowHead handles a seq at or below the head: a copy of the stored
// one (dup), a fork, or a seq of a recorded chain break.
func (c *Collector) atOrBelowHead(tx ledger.Tx, dev signer.Address, seq uint64, digest [32]byte, wire []byte) (*Reply, bool, error) {
	stored, _, ok := tx.Stored(dev, seq)
	if ok {
		if stored == digest {
			return nil, true, nil
		}
		a, err := wirefmt.Parse(wire)
		if err != nil {
			return nil, false, fmt.Errorf("device %s seq %d: verified attestation does not parse: %w", dev, seq, err)
		}
		if err := c.recordFork(tx, a, digest, wire, "seq", stored); err != nil {
			return nil, false, err
		}
		r := c.nackOf(dev, seq, digest, ErrFork, "seq %d is stored with digest 0x%x; this one has digest 0x%x", seq, stored, digest)
		return &r, false, nil
	}
	b, err := tx.BreakOf(dev, seq)
	if err != nil {
		return nil, false, err
	}
	if b == nil {
		return nil, false, fmt.Errorf("device %s: seq %d missing below head and in no chain break: %w", dev, seq, ledger.ErrCorrupt)
	}
	r := c.nackOf(dev, seq, digest, ErrBroken, "seq %d is in the chain break %d .. %d recorded at %s (%s); the chain continues at seq %d",
		seq, b.From, b.To, b.At.Format(time.RFC3339), b.Cause, b.To+1)
	return &r, false, nil
}

// store judges a (the next seq, prev checked) and appends it; it reports
// the verdict's eligibility.
func (c *Collector) store(tx ledger.Tx, h ledger.Head, a *signer.Attestation, digest [32]byte, wire []byte) (bool, error) {
	v := Judge(h, a, draw.BatchOf(c.cfg.Now().Unix()), c.cfg.MaxSpeedKmh)
	if err := tx.Append(a, digest, wire, v); err != nil {
		return false, err
	}
	if v.Eligible {
		if c.log.Enabled(context.Background(), slog.LevelDebug) { // the arguments cost allocations on the hot path
			c.log.Debug("attestation stored", "device", a.Device, "seq", a.Seq, "batch", a.Batch, "meters", a.Meters)
		}
	} else {
		c.log.Warn("attestation stored, ineligible for tickets", "device", a.Device, "seq", a.Seq, "batch", a.Batch, "meters", a.Meters,
			"flags", a.Flags, "reason", v.Reason)
	}
	return v.Eligible, nil
}

// drain stores the device's held seqs that now follow its head, in order,
// and records a chain break before the lowest held one when the missing
// seqs are announced lost or have not come within GapTimeout of the
// oldest held one's arrival.
func (c *Collector) drain(tx ledger.Tx, dev signer.Address) (o outcome, err error) {
	for {
		held, err := tx.HeldSeqs(dev)
		if err != nil || len(held) == 0 {
			return o, err
		}
		h, err := tx.Head(dev)
		if err != nil {
			return o, err
		}
		first := held[0]
		a, err := wirefmt.Parse(first.Wire)
		if err != nil {
			return o, fmt.Errorf("device %s held seq %d: %w: %w", dev, first.Seq, ledger.ErrCorrupt, err)
		}
		if first.Seq <= h.Seq {
			nack, _, err := c.atOrBelowHead(tx, dev, first.Seq, first.Digest, first.Wire)
			if err != nil {
				return o, err
			}
			if nack != nil {
				o.nacks = append(o.nacks, *nack)
			}
			if err := tx.Release(dev, first.Seq); err != nil {
				return o, err
			}
			continue
		}
		if first.Seq > h.Seq+1 {
			cause, reason := c.breakCause(tx, dev, h, held)
			if cause == "" {
				return o, nil
			}
			b := ledger.Break{Device: dev, From: h.Seq + 1, To: first.Seq - 1, Cause: cause, Reason: reason, At: c.cfg.Now().UTC()}
			if err := tx.RecordBreak(b, a.Prev); err != nil {
				return o, err
			}
			o.breaks++
			c.log.Warn("chain break recorded; the chain continues from the held seqs", "device", dev, "from", b.From, "to", b.To, "cause", cause, "reason", reason)
			if h, err = tx.Head(dev); err != nil {
				return o, err
			}
		}
		if err := tx.Release(dev, first.Seq); err != nil {
			return o, err
		}
		if a.Prev != h.Digest {
			if err := c.recordFork(tx, a, first.Digest, first.Wire, "prev", h.Digest); err != nil {
				return o, err
			}
			o.nacks = append(o.nacks, c.nackOf(dev, a.Seq, first.Digest, signer.ErrPrevMismatch, "prev 0x%x, but seq %d is stored with digest 0x%x (a fork)", a.Prev, h.Seq, h.Digest))
			continue
		}
		eligible, err := c.store(tx, h, a, first.Digest, first.Wire)
		if err != nil {
			return o, err
		}
		o.stored++
		if !eligible {
			o.ineligible++
		}
	}
}

// breakCause says why the gap before the lowest held seq is given up, or
// "" while it is still awaited.
func (c *Collector) breakCause(tx ledger.Tx, dev signer.Address, h ledger.Head, held []ledger.Held) (cause, reason string) {
	from, to := h.Seq+1, held[0].Seq-1
	if l, ok, err := tx.Lost(dev); err == nil && ok && l.Covers(from, to) {
		return ledger.CauseAnnounced, fmt.Sprintf("the device announced at %s that seqs %d .. %d may be lost", l.At.Format(time.RFC3339), l.From, l.To)
	} else if err != nil {
		c.log.Error("loss announcement unreadable; waiting for gap_timeout", "device", dev, "err", err)
	}
	oldest := held[0].Received
	for _, x := range held[1:] {
		if x.Received.Before(oldest) {
			oldest = x.Received
		}
	}
	if waited := c.cfg.Now().Sub(oldest); waited >= c.cfg.GapTimeout {
		return ledger.CauseTimeout, fmt.Sprintf("seqs %d .. %d did not come within gap_timeout %s while %d later seq(s) waited (the oldest since %s)",
			from, to, c.cfg.GapTimeout, len(held), oldest.Format(time.RFC3339))
	}
	return "", ""
}

func (c *Collector) recordFork(tx ledger.Tx, a *signer.Attestation, digest [32]byte, wire []byte, kind string, stored [32]byte) error {
	f := ledger.Fork{
		Device: a.Device, Seq: a.Seq, Kind: kind,
		Digest: fmt.Sprintf("0x%x", digest), Stored: fmt.Sprintf("0x%x", stored),
		Wire: string(wire), Received: c.cfg.Now().UTC(),
	}
	isNew, err := tx.RecordFork(f, digest)
	if err != nil {
		return fmt.Errorf("fork record: %w", err)
	}
	if isNew {
		c.log.Error("fork: device signed two attestations where its chain allows one", "device", a.Device, "seq", a.Seq,
			"kind", kind, "digest", f.Digest, "stored", f.Stored)
	}
	return nil
}
