package web

import (
	"fmt"

	"github.com/csop/tbox/cmd/collector/internal/ledger"
	"github.com/csop/tbox/signer"
)

// Bolt is a [Source] over a collector's ledger: written for the embedded
// bbolt ledger, whose read transactions run beside the collector's writes,
// and served the same way by any [ledger.Ledger] (PostgreSQL's read
// transactions too).
type Bolt struct {
	L ledger.Ledger
}

var _ Source = (*Bolt)(nil)

// Devices implements [Source].
func (b *Bolt) Devices(offset, limit int) ([]Device, int, error) {
	s, err := b.L.Stats()
	if err != nil {
		return nil, 0, fmt.Errorf("ledger stats: %w", err)
	}
	forks := map[signer.Address]int{}
	err = b.L.View(func(t ledger.Tx) error {
		fs, err := t.Forks()
		for _, f := range fs {
			forks[f.Device]++
		}
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("ledger forks: %w", err)
	}
	total := len(s.Devices)
	offset = min(max(offset, 0), total)
	end := min(offset+max(limit, 0), total)
	out := make([]Device, 0, end-offset)
	for _, d := range s.Devices[offset:end] {
		out = append(out, Device{Address: d.Device, Head: d.Head, Attestations: d.Attestations, Ineligible: d.Ineligible,
			Meters: d.Meters, EligibleMeters: d.EligibleMeters, Held: d.Held, Breaks: d.Breaks, Forks: forks[d.Device]})
	}
	return out, total, nil
}

// Draws implements [Source]: the draws of the n highest batches, however
// old (ledger.Tx.LastDraws: one query on PostgreSQL).
func (b *Bolt) Draws(n int) ([]Draw, error) {
	var out []Draw
	err := b.L.View(func(t ledger.Tx) error {
		rs, err := t.LastDraws(n)
		out = out[:0]
		for _, r := range rs {
			out = append(out, Draw{Batch: r.Batch, At: r.At, Tickets: r.Total, Winners: len(r.Wins), Devices: len(r.Awards), Micro: r.Drop})
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ledger draws: %w", err)
	}
	return out, nil
}

// MetersPerBatch implements [Source]: a drawn batch's tickets are its
// recorded total plus what arrived late; an undrawn one's are summed from
// its ticket index.
func (b *Bolt) MetersPerBatch(last uint64, n int) ([]BatchMeters, error) {
	if n <= 0 {
		return nil, nil
	}
	first := uint64(0)
	if last+1 > uint64(n) {
		first = last + 1 - uint64(n)
	}
	out := make([]BatchMeters, 0, last-first+1)
	err := b.L.View(func(t ledger.Tx) error {
		for bt := first; bt <= last; bt++ {
			bm := BatchMeters{Batch: bt}
			r, err := t.Draw(bt)
			if err != nil {
				return err
			}
			if r != nil {
				bm.Drawn, bm.Meters = true, r.Total
				for _, e := range t.Late(bt) {
					bm.Meters += e.Tickets
				}
			} else {
				es, err := t.Entries(bt)
				if err != nil {
					return err
				}
				for _, e := range es {
					bm.Meters += e.Tickets
				}
			}
			out = append(out, bm)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ledger tickets per batch: %w", err)
	}
	return out, nil
}

// Totals implements [Source].
func (b *Bolt) Totals() (Totals, error) {
	s, err := b.L.Stats()
	if err != nil {
		return Totals{}, fmt.Errorf("ledger stats: %w", err)
	}
	return Totals{Devices: len(s.Devices), Forks: s.Forks, Breaks: s.Breaks, Held: s.Held, Draws: s.Draws, Undrawn: s.Undrawn}, nil
}
