package web

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/csop/tbox/cmd/collector/internal/ledger"
	"github.com/csop/tbox/cmd/collector/internal/ledger/pgledger"
	"github.com/csop/tbox/cmd/collector/internal/ledger/pgledger/pgtest"
)

// TestDrawsListsTheLastByBatch: the status page's draws are the last ones
// recorded, newest batch first, however old, on both ledgers (the
// listing once looked back 30 days from the clock, one query per batch
// on PostgreSQL, and showed nothing for a collector whose last draws were
// older).
func TestDrawsListsTheLastByBatch(t *testing.T) {
	for _, lc := range []struct {
		name string
		open func(t *testing.T) ledger.Ledger
	}{
		{"bbolt", func(t *testing.T) ledger.Ledger { return newLedger(t) }},
		{"postgres", func(t *testing.T) ledger.Ledger {
			l, err := pgledger.Open(context.Background(), pgtest.DB(t), &pgledger.Options{ChainID: testChainID})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			return l
		}},
	} {
		t.Run(lc.name, func(t *testing.T) {
			l := lc.open(t)
			now := nowBatch()
			at := time.Now().UTC().Truncate(time.Second)
			old := now - 40*24*6 // 40 days ago
			for _, b := range []uint64{old - 1, old, now - 2} {
				if err := l.Update(func(tx ledger.Tx) error { return tx.RecordDraw(b, nil, at) }); err != nil {
					t.Fatal(err)
				}
			}
			src := &Bolt{L: l}
			for _, tc := range []struct {
				n    int
				want []uint64
			}{
				{2, []uint64{now - 2, old}},
				{MaxDraws, []uint64{now - 2, old, old - 1}},
			} {
				ds, err := src.Draws(tc.n)
				if err != nil {
					t.Fatal(err)
				}
				var got []uint64
				for _, d := range ds {
					got = append(got, d.Batch)
				}
				if fmt.Sprint(got) != fmt.Sprint(tc.want) {
					t.Errorf("Draws(%d): batches %v, want %v", tc.n, got, tc.want)
				}
			}
		})
	}
}
