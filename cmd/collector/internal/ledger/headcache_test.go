package ledger

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/csop/tbox/cmd/collector/internal/draw"
	"github.com/csop/tbox/signer"
)

// A head read inside a write transaction, after that transaction wrote
// it (Append, RecordBreak, RecordDraw's awards) for one device and
// another, is what the committed ledger holds: the bolt transaction keeps
// the head it last read or wrote, and must never return a stale one.
func TestHeadWithinTransaction(t *testing.T) {
	l := open(t, filepath.Join(t.TempDir(), "c.db"), &Options{ChainID: chainID})
	defer l.Close()
	c1, c2 := newChain(t), newChain(t)
	dev1, dev2 := c1.key.Address(), c2.key.Address()
	G := draw.Genesis
	a1, d1, w1 := c1.next(G, 1, 100)
	b1, e1, x1 := c2.next(G, 1, 200)
	a2, d2, w2 := c1.next(G+1, 1, 300)
	c2.next(G+1, 1, 1) // seq 2 of dev2: never arrives
	b3, e3, x3 := c2.next(G+2, 1, 400)
	inTx := map[signer.Address]Head{}
	err := l.Update(func(tx Tx) error {
		head := func(dev signer.Address, wantSeq uint64) Head {
			t.Helper()
			h, err := tx.Head(dev)
			if err != nil || h.Seq != wantSeq {
				t.Fatalf("head of %s: seq %d, %v; want seq %d", dev, h.Seq, err, wantSeq)
			}
			return h
		}
		head(dev1, 0)
		if err := tx.Append(a1, d1, w1, ok); err != nil {
			return err
		}
		head(dev2, 0)
		if err := tx.Append(b1, e1, x1, ok); err != nil {
			return err
		}
		if h := head(dev1, 1); h.Meters != 100 || h.Digest != d1 {
			t.Errorf("dev1 head after one append: %+v", h)
		}
		if err := tx.Append(a2, d2, w2, ok); err != nil {
			return err
		}
		head(dev2, 1)
		if err := tx.RecordBreak(Break{Device: dev2, From: 2, To: 2, Cause: CauseTimeout, At: time.Unix(1800000000, 0).UTC()}, b3.Prev); err != nil {
			return err
		}
		if h := head(dev2, 2); h.Breaks != 1 || h.Digest != b3.Prev {
			t.Errorf("dev2 head after its break: %+v", h)
		}
		if err := tx.Append(b3, e3, x3, ok); err != nil {
			return err
		}
		head(dev1, 2)
		es, err := tx.Entries(G)
		if err != nil {
			return err
		}
		res, err := draw.Run(draw.Seed{7}, G, es, 5)
		if err != nil {
			return err
		}
		if err := tx.RecordDraw(G, res, time.Unix(1700000000, 0)); err != nil {
			return err
		}
		var wins uint64
		for _, dev := range []signer.Address{dev1, dev2} {
			inTx[dev] = head(dev, map[signer.Address]uint64{dev1: 2, dev2: 3}[dev])
			wins += inTx[dev].Wins
		}
		if wins != 5 || inTx[dev1].Meters != 400 || inTx[dev2].Meters != 600 || inTx[dev2].Breaks != 1 {
			t.Errorf("heads in the transaction: %+v", inTx)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = l.View(func(tx Tx) error {
		for dev, want := range inTx {
			if h, err := tx.Head(dev); err != nil || h != want {
				t.Errorf("committed head of %s:\n %+v, %v\nread in the transaction:\n %+v", dev, h, err, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Audit(); err != nil {
		t.Fatal(err)
	}
}
