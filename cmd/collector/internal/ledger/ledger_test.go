package ledger

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/csop/tbox/cmd/collector/internal/draw"
	"github.com/csop/tbox/signer"
)

const chainID = 20220807

var ok = Verdict{Eligible: true, Code: "eligible"}

type chain struct {
	t    *testing.T
	key  *signer.FileKey
	seq  uint64
	prev [32]byte
}

func newChain(t *testing.T) *chain {
	t.Helper()
	path := filepath.Join(t.TempDir(), "k")
	if _, err := signer.GenerateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	k, err := signer.LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return &chain{t: t, key: k}
}

// next signs the next attestation of the chain.
func (c *chain) next(batch uint64, batches uint32, meters uint64) (*signer.Attestation, [32]byte, []byte) {
	c.t.Helper()
	a := &signer.Attestation{V: 1, Device: c.key.Address(), Seq: c.seq + 1, Batch: batch, Batches: batches, Meters: meters, Prev: c.prev}
	if meters > 0 {
		a.Modes = []signer.ModeMeters{{Mode: "ECO", Meters: meters}}
	}
	if err := signer.Sign(c.key, chainID, a); err != nil {
		c.t.Fatal(err)
	}
	d := signer.Digest(chainID, a)
	c.seq, c.prev = a.Seq, d
	return a, d, a.AppendWire(nil)
}

func open(t *testing.T, path string, o *Options) *Bolt {
	t.Helper()
	l, err := Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestOpenErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	l := open(t, path, &Options{ChainID: chainID})
	if _, err := Open(path, &Options{ChainID: chainID, LockTimeout: 50 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		t.Errorf("second open while held: %v, want ErrLocked", err)
	}
	l.Close()
	if _, err := Open(path, &Options{ChainID: chainID + 1}); !errors.Is(err, ErrChainID) {
		t.Errorf("open with another chain ID: %v, want ErrChainID", err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing.db"), &Options{ChainID: chainID, ReadOnly: true}); err == nil {
		t.Error("read-only open of a missing file: no error")
	}
	ro := open(t, path, &Options{ChainID: chainID, ReadOnly: true})
	defer ro.Close()
	if err := ro.Update(func(Tx) error { return nil }); err == nil {
		t.Error("update of a read-only ledger: no error")
	}
}

// TestAppendAccounting: heads, per-batch credits, distinct batches and the
// index, across a shared batch and a catch-up span; a rolled-back update
// leaves nothing; the state survives reopening.
func TestAppendAccounting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	l := open(t, path, &Options{ChainID: chainID})
	c := newChain(t)
	G := draw.Genesis + 10
	a1, d1, w1 := c.next(G, 1, 1000)
	a2, d2, w2 := c.next(G, 3, 3001) // shares G: 1001 more there, then 1000, 1000
	a3, d3, w3 := c.next(G+2, 1, 500)
	err := l.Update(func(tx Tx) error {
		for _, x := range []struct {
			a *signer.Attestation
			d [32]byte
			w []byte
		}{{a1, d1, w1}, {a2, d2, w2}, {a3, d3, w3}} {
			if err := tx.Append(x.a, x.d, x.w, ok); err != nil {
				return err
			}
		}
		if err := tx.Append(a3, d3, w3, ok); !errors.Is(err, ErrNotNext) {
			t.Errorf("append of seq 3 again: %v, want ErrNotNext", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A failed update is rolled back.
	_, d4, w4 := c.next(G+3, 1, 10)
	a4, _ := signer.ParseWire(w4)
	boom := errors.New("boom")
	if err := l.Update(func(tx Tx) error {
		if err := tx.Append(a4, d4, w4, ok); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("update: %v", err)
	}
	l.Close()
	l = open(t, path, &Options{ChainID: chainID})
	defer l.Close()
	if err := l.Audit(); err != nil {
		t.Fatal(err)
	}
	err = l.View(func(tx Tx) error {
		h, err := tx.Head(c.key.Address())
		if err != nil {
			return err
		}
		want := Head{Seq: 3, Digest: d3, TailSeq: 3, Batch: G + 2, Batches: 1, Credited: 1000 + 500, Attestations: 3, Meters: 4501, EligibleMeters: 4501, BatchCount: 3}
		if h != want {
			t.Errorf("head %+v\nwant %+v", h, want)
		}
		if h.CreditedIn(G+2) != 1500 || h.CreditedIn(G+1) != 0 {
			t.Errorf("credited in G+2 %d, G+1 %d; want 1500, 0", h.CreditedIn(G+2), h.CreditedIn(G+1))
		}
		wantIdx := map[uint64][]draw.Entry{
			G:     {{Device: c.key.Address(), Seq: 1, Tickets: 1000}, {Device: c.key.Address(), Seq: 2, Tickets: 1001}},
			G + 1: {{Device: c.key.Address(), Seq: 2, Tickets: 1000}},
			G + 2: {{Device: c.key.Address(), Seq: 2, Tickets: 1000}, {Device: c.key.Address(), Seq: 3, Tickets: 500}},
			G + 3: nil,
		}
		for b, want := range wantIdx {
			got, err := tx.Entries(b)
			if err != nil {
				return err
			}
			if len(got) != len(want) {
				t.Errorf("batch %d index %+v, want %+v", b, got, want)
				continue
			}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("batch %d index %+v, want %+v", b, got, want)
				}
			}
		}
		if u := tx.Undrawn(); len(u) != 3 || u[0] != G || u[2] != G+2 {
			t.Errorf("undrawn %v, want G .. G+2", u)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRecordDraw(t *testing.T) {
	l := open(t, filepath.Join(t.TempDir(), "c.db"), &Options{ChainID: chainID})
	defer l.Close()
	c := newChain(t)
	G := draw.Genesis
	a, d, w := c.next(G, 1, 10)
	at := time.Unix(1700000000, 0)
	err := l.Update(func(tx Tx) error {
		if err := tx.Append(a, d, w, ok); err != nil {
			return err
		}
		es, err := tx.Entries(G)
		if err != nil {
			return err
		}
		res, err := draw.Run(draw.Seed{1}, G, es, 3)
		if err != nil {
			return err
		}
		if err := tx.RecordDraw(G, res, at); err != nil {
			return err
		}
		if err := tx.RecordDraw(G, res, at); !errors.Is(err, ErrDrawn) {
			t.Errorf("second draw: %v, want ErrDrawn", err)
		}
		rec, err := tx.Draw(G)
		if err != nil || rec == nil || rec.Total != 10 || !rec.At.Equal(at) || len(rec.Wins) != 3 {
			t.Errorf("recorded %+v, %v", rec, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Seq 2 for the drawn batch goes to late, not the index.
	a2, d2, w2 := c.next(G, 1, 5)
	err = l.Update(func(tx Tx) error {
		if err := tx.Append(a2, d2, w2, ok); err != nil {
			return err
		}
		es, _ := tx.Entries(G)
		late := tx.Late(G)
		if len(es) != 1 || len(late) != 1 || late[0].Seq != 2 || late[0].Tickets != 5 {
			t.Errorf("index %+v, late %+v; want seq 1 indexed, seq 2 late", es, late)
		}
		h, _ := tx.Head(c.key.Address())
		if h.Wins != 3 || h.AwardMicro != draw.Drop(G) {
			t.Errorf("head wins %d award %d, want 3 and %d", h.Wins, h.AwardMicro, draw.Drop(G))
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
