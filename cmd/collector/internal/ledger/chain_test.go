package ledger

import (
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/csop/tbox/cmd/collector/internal/draw"
	"github.com/csop/tbox/signer"
	"go.etcd.io/bbolt"
)

// v1Fixture is testdata/ledger-v1.db.gz: written by the schema 1 collector
// (before verdicts), chain ID 20220807, one device with seqs 1 .. 3 of
// 1000, 2000 and 3000 m in batches 2900000 .. 2900002, batch 2900000
// closed without winners.
var v1Device = func() signer.Address {
	a, err := signer.ParseAddress("0x0d1fa62f8109c830272789b0d355582f5172f448")
	if err != nil {
		panic(err)
	}
	return a
}()

func v1Copy(t *testing.T) string {
	t.Helper()
	f, err := os.Open("testdata/ledger-v1.db.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "v1.db")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, zr); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestMigrateV1: a ledger written by the schema 1 collector is refused
// read-only with ErrVersion, not misread; opened for writing it is
// migrated, audits clean and keeps its chain, totals, index and draws.
func TestMigrateV1(t *testing.T) {
	path := v1Copy(t)
	if _, err := Open(path, &Options{ChainID: chainID, ReadOnly: true}); !errors.Is(err, ErrVersion) {
		t.Fatalf("read-only open of a schema 1 ledger: %v, want ErrVersion", err)
	}
	if _, err := Open(path, &Options{ChainID: chainID + 1}); !errors.Is(err, ErrChainID) {
		t.Fatalf("open of a schema 1 ledger for another chain: %v, want ErrChainID", err)
	}
	// That refusal migrated nothing.
	if _, err := Open(path, &Options{ChainID: chainID, ReadOnly: true}); !errors.Is(err, ErrVersion) {
		t.Fatalf("after a refused open: %v, want ErrVersion still", err)
	}
	l := open(t, path, &Options{ChainID: chainID})
	if err := l.Audit(); err != nil {
		t.Fatalf("audit after migration: %v", err)
	}
	l.Close()
	l = open(t, path, &Options{ChainID: chainID, ReadOnly: true})
	defer l.Close()
	err := l.View(func(tx Tx) error {
		h, err := tx.Head(v1Device)
		if err != nil {
			return err
		}
		if h.Seq != 3 || h.TailSeq != 3 || h.Attestations != 3 || h.Meters != 6000 || h.EligibleMeters != 6000 || h.Ineligible != 0 ||
			h.Batch != 2900002 || h.Credited != 3000 || h.BatchCount != 3 {
			t.Errorf("migrated head %+v", h)
		}
		for seq := uint64(1); seq <= 3; seq++ {
			v, ok, err := tx.Verdict(v1Device, seq)
			if err != nil || !ok || !v.Eligible {
				t.Errorf("seq %d verdict %+v, %v, %v; want eligible", seq, v, ok, err)
			}
		}
		if es, err := tx.Entries(2900001); err != nil || len(es) != 1 || es[0].Tickets != 2000 {
			t.Errorf("batch 2900001 index %+v, %v; want seq 2's 2000 tickets", es, err)
		}
		if rec, err := tx.Draw(2900000); err != nil || rec == nil {
			t.Errorf("draw of batch 2900000: %+v, %v; want the recorded one", rec, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestNewerSchemaRefused: a ledger of a schema this code does not know is
// refused with ErrVersion, read-only or not, and left alone.
func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	open(t, path, &Options{ChainID: chainID}).Close()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyVersion, binary.BigEndian.AppendUint64(nil, 3))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	for _, ro := range []bool{false, true} {
		if _, err := Open(path, &Options{ChainID: chainID, ReadOnly: ro}); !errors.Is(err, ErrVersion) {
			t.Errorf("open (read-only %v) of schema 3: %v, want ErrVersion", ro, err)
		}
	}
}

// TestIneligible: an ineligible attestation is stored with its verdict,
// counted, not indexed, and is not the tail the next one is judged
// against.
func TestIneligible(t *testing.T) {
	l := open(t, filepath.Join(t.TempDir(), "c.db"), &Options{ChainID: chainID})
	defer l.Close()
	c := newChain(t)
	G := draw.Genesis + 100
	a1, d1, w1 := c.next(G, 1, 1000)
	a2, d2, w2 := c.next(G, 1, 42_803_053_630)
	a3, d3, w3 := c.next(G, 1, 500)
	bad := Verdict{Code: "impossible meters", Reason: "impossible meters: 42803053630 m in 1 batch"}
	err := l.Update(func(tx Tx) error {
		if err := tx.Append(a1, d1, w1, ok); err != nil {
			return err
		}
		if err := tx.Append(a2, d2, w2, bad); err != nil {
			return err
		}
		h, _ := tx.Head(c.key.Address())
		if h.Seq != 2 || h.TailSeq != 1 || h.CreditedIn(G) != 1000 || h.Ineligible != 1 || h.EligibleMeters != 1000 {
			t.Errorf("head after the ineligible seq 2: %+v", h)
		}
		return tx.Append(a3, d3, w3, ok)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Audit(); err != nil {
		t.Fatal(err)
	}
	err = l.View(func(tx Tx) error {
		es, err := tx.Entries(G)
		if err != nil {
			return err
		}
		if len(es) != 2 || es[0].Seq != 1 || es[1].Seq != 3 || es[0].Tickets+es[1].Tickets != 1500 {
			t.Errorf("batch index %+v, want seqs 1 and 3 with 1500 tickets", es)
		}
		h, _ := tx.Head(c.key.Address())
		if h.CreditedIn(G) != 1500 || h.Meters != 42_803_053_630+1500 || h.EligibleMeters != 1500 || h.BatchCount != 1 {
			t.Errorf("head %+v", h)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := l.Device(c.key.Address())
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Records) != 3 || r.Records[1].Verdict != bad || !r.Records[2].Verdict.Eligible {
		t.Errorf("device report records %+v", r.Records)
	}
}

// TestHeldAndBreak: held seqs survive reopening; a copy held again keeps
// its first arrival, another attestation for a held seq is a conflict; a
// chain break moves the head so the held seq is the next, and the chain
// audits clean across it.
func TestHeldAndBreak(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	l := open(t, path, &Options{ChainID: chainID})
	c := newChain(t)
	G := draw.Genesis + 100
	a1, d1, w1 := c.next(G, 1, 100)
	c.next(G+1, 1, 200) // seq 2: never arrives
	a3, d3, w3 := c.next(G+2, 1, 300)
	other := *a3
	other.Meters++
	other.Modes = []signer.ModeMeters{{Mode: "ECO", Meters: other.Meters}}
	if err := signer.Sign(c.key, chainID, &other); err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1800000000, 0).UTC()
	err := l.Update(func(tx Tx) error {
		if err := tx.Append(a1, d1, w1, ok); err != nil {
			return err
		}
		if conflict, err := tx.Hold(a3, d3, w3, t0); err != nil || conflict != nil {
			t.Errorf("hold seq 3: %v, %v", conflict, err)
		}
		if conflict, err := tx.Hold(a3, d3, w3, t0.Add(time.Minute)); err != nil || conflict != nil {
			t.Errorf("hold seq 3 again: %v, %v", conflict, err)
		}
		if conflict, err := tx.Hold(&other, signer.Digest(chainID, &other), other.AppendWire(nil), t0); err != nil || conflict == nil || conflict.Digest != d3 {
			t.Errorf("hold another seq 3: conflict %v, %v; want the held one", conflict, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = open(t, path, &Options{ChainID: chainID})
	defer l.Close()
	err = l.Update(func(tx Tx) error {
		hs, err := tx.HeldSeqs(c.key.Address())
		if err != nil {
			return err
		}
		if len(hs) != 1 || hs[0].Seq != 3 || hs[0].Digest != d3 || !hs[0].Received.Equal(t0) {
			t.Fatalf("held after reopening: %+v", hs)
		}
		if err := tx.RecordBreak(Break{Device: c.key.Address(), From: 3, To: 3}, a3.Prev); !errors.Is(err, ErrNotNext) {
			t.Errorf("break not starting at head + 1: %v, want ErrNotNext", err)
		}
		if err := tx.RecordBreak(Break{Device: c.key.Address(), From: 2, To: 2, Cause: CauseTimeout, At: t0}, a3.Prev); err != nil {
			return err
		}
		if err := tx.Append(a3, d3, w3, ok); err != nil {
			return err
		}
		return tx.Release(c.key.Address(), 3)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Audit(); err != nil {
		t.Fatalf("audit across the break: %v", err)
	}
	err = l.View(func(tx Tx) error {
		if b, err := tx.BreakOf(c.key.Address(), 2); err != nil || b == nil || b.From != 2 || b.To != 2 {
			t.Errorf("break of seq 2: %+v, %v", b, err)
		}
		for _, seq := range []uint64{1, 3, 4} {
			if b, err := tx.BreakOf(c.key.Address(), seq); err != nil || b != nil {
				t.Errorf("break of seq %d: %+v, %v; want none", seq, b, err)
			}
		}
		h, _ := tx.Head(c.key.Address())
		if h.Seq != 3 || h.Attestations != 2 || h.Breaks != 1 {
			t.Errorf("head %+v", h)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.Breaks != 1 || s.Held != 0 || s.Devices[0].Head != 3 {
		t.Errorf("stats %+v", s)
	}
}
