package collect

import (
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/csop/tbox/cmd/collector/internal/draw"
	"github.com/csop/tbox/cmd/collector/internal/ledger"
	"github.com/csop/tbox/signer"
)

// Closed reports whether batch b is closed for the draw at now: the wall
// clock is past its end plus the grace period.
func Closed(b uint64, now time.Time, grace time.Duration) bool {
	end := int64(b+1) * draw.BatchSeconds
	return now.Unix() >= end+int64(grace/time.Second)
}

// DrawClosed draws every batch that has tickets, no recorded draw and is
// closed, one transaction per batch, and returns the draws it recorded.
func (c *Collector) DrawClosed() ([]*draw.Result, error) {
	now := c.cfg.Now()
	var undrawn []uint64
	if err := c.l.View(func(tx ledger.Tx) error { undrawn = tx.Undrawn(); return nil }); err != nil {
		return nil, err
	}
	var done []*draw.Result
	for _, b := range undrawn {
		if !Closed(b, now, c.cfg.Grace) {
			break // ascending: the rest are later
		}
		var res *draw.Result
		err := c.l.Update(func(tx ledger.Tx) error {
			res = nil
			if mine, err := tx.ClaimDraw(b); err != nil || !mine {
				return err // another collector on this ledger drew it
			}
			es, err := tx.Entries(b)
			if err != nil {
				return err
			}
			res, err = draw.Run(c.cfg.Seed, b, es, c.cfg.Winners)
			if errors.Is(err, draw.ErrNoTickets) {
				return tx.RecordDraw(b, nil, now)
			}
			if err != nil {
				return err
			}
			return tx.RecordDraw(b, res, now)
		})
		if err != nil {
			return done, fmt.Errorf("draw of batch %d: %w", b, err)
		}
		if res != nil {
			c.log.Info("batch drawn", "batch", b, "tickets", res.Total, "entries", res.Entries, "drop", draw.FormatMicro(res.Drop), "devices_awarded", len(res.Awards))
			done = append(done, res)
		}
	}
	return done, nil
}

// Rerun is a draw re-run from the stored attestations.
type Rerun struct {
	Result   *draw.Result       // nil when the batch has no tickets
	Recorded *ledger.DrawRecord // nil when not drawn yet
	Late     []draw.Entry       // tickets that arrived after the draw: not in it
}

// Match reports whether the re-run gives the recorded draw (false when
// there is no recorded draw).
func (r *Rerun) Match() bool {
	if r.Recorded == nil {
		return false
	}
	if r.Result == nil {
		return len(r.Recorded.Wins) == 0 && r.Recorded.Total == 0
	}
	return reflect.DeepEqual(*r.Result, r.Recorded.Result)
}

// ErrIndexMismatch: the ticket index of a batch does not agree with the
// stored attestations.
var ErrIndexMismatch = errors.New("ticket index differs from attestations")

// Redraw re-runs the draw of batch b from the stored attestations: each
// attestation in the batch's index is read back, verified again (signature
// and stored digest) and its tickets recomputed from its span, then the
// draw is run with seed and n. It does not record anything.
func Redraw(l ledger.Ledger, seed draw.Seed, n int, b uint64) (*Rerun, error) {
	r := &Rerun{}
	err := l.View(func(tx ledger.Tx) error {
		var err error
		if r.Recorded, err = tx.Draw(b); err != nil {
			return err
		}
		r.Late = tx.Late(b)
		index, err := tx.Entries(b)
		if err != nil {
			return err
		}
		entries := make([]draw.Entry, 0, len(index))
		for _, e := range index {
			digest, wire, ok := tx.Stored(e.Device, e.Seq)
			if !ok {
				return fmt.Errorf("batch %d: index names device %s seq %d, not stored: %w", b, e.Device, e.Seq, ErrIndexMismatch)
			}
			a, err := signer.ParseWire(wire)
			if err != nil {
				return fmt.Errorf("batch %d: stored device %s seq %d: %w", b, e.Device, e.Seq, err)
			}
			if err := signer.Verify(l.ChainID(), a); err != nil {
				return fmt.Errorf("batch %d: stored device %s seq %d: %w", b, e.Device, e.Seq, err)
			}
			if a.Device != e.Device || a.Seq != e.Seq || signer.Digest(l.ChainID(), a) != digest {
				return fmt.Errorf("batch %d: stored device %s seq %d is another attestation: %w", b, e.Device, e.Seq, ErrIndexMismatch)
			}
			if v, ok, err := tx.Verdict(e.Device, e.Seq); err != nil {
				return err
			} else if !ok || !v.Eligible {
				return fmt.Errorf("batch %d: index names device %s seq %d, whose verdict is not eligible (%q): %w", b, e.Device, e.Seq, v.Reason, ErrIndexMismatch)
			}
			t := draw.Share(a.Batch, a.Batches, a.Meters, b)
			if t != e.Tickets {
				return fmt.Errorf("batch %d: device %s seq %d has %d tickets by its span, %d in the index: %w", b, e.Device, e.Seq, t, e.Tickets, ErrIndexMismatch)
			}
			entries = append(entries, draw.Entry{Device: a.Device, Seq: a.Seq, Tickets: t})
		}
		r.Result, err = draw.Run(seed, b, entries, n)
		if errors.Is(err, draw.ErrNoTickets) {
			r.Result, err = nil, nil
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}
