// Package ledgertest is the conformance suite every ledger implementation
// passes (bbolt and PostgreSQL): the same tests, run by each
// implementation's own test with a function that opens a fresh store.
package ledgertest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/csop/tbox/cmd/collector/internal/draw"
	"github.com/csop/tbox/cmd/collector/internal/ledger"
	"github.com/csop/tbox/signer"
)

// ChainID is the chain ID the suite signs for.
const ChainID = 20220807

// Factory opens a fresh, empty ledger for chain ID [ChainID] and returns
// it with a function that opens the same store again as another writer
// would (another process for PostgreSQL; the same *Bolt for bbolt, whose
// file admits one process). The implementation closes what it opened at
// the test's cleanup.
type Factory func(t *testing.T) (l ledger.Ledger, another func() ledger.Ledger)

// Run runs the suite.
func Run(t *testing.T, open Factory) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, Factory)
	}{
		{"AppendAccounting", testAppend},
		{"Rollback", testRollback},
		{"Ineligible", testIneligible},
		{"HeldAndBreak", testHeldAndBreak},
		{"Forks", testForks},
		{"Loss", testLoss},
		{"Draw", testDraw},
		{"LastDraws", testLastDraws},
		{"Registry", testRegistry},
		{"ConcurrentWriters", testConcurrent},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

var eligible = ledger.Verdict{Eligible: true, Code: "eligible"}

// Chain is a device key and its chain, for signing test attestations.
type Chain struct {
	key  *signer.MemKey
	Seq  uint64
	Prev [32]byte
}

// NewChain returns a chain of a new random key.
func NewChain(t testing.TB) *Chain {
	t.Helper()
	priv, err := signer.GenerateScalar()
	if err != nil {
		t.Fatal(err)
	}
	k, err := signer.NewMemKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return &Chain{key: k}
}

// Device returns the chain's device address.
func (c *Chain) Device() signer.Address { return c.key.Address() }

// Att is a signed attestation with its digest and wire form.
type Att struct {
	A      *signer.Attestation
	Digest [32]byte
	Wire   []byte
}

// Next signs the next attestation of the chain.
func (c *Chain) Next(t testing.TB, batch uint64, batches uint32, meters uint64) Att {
	t.Helper()
	a := &signer.Attestation{V: 1, Device: c.key.Address(), Seq: c.Seq + 1, Batch: batch, Batches: batches, Meters: meters, Prev: c.Prev}
	if meters > 0 {
		a.Modes = []signer.ModeMeters{{Mode: "ECO", Meters: meters}}
	}
	if err := signer.Sign(c.key, ChainID, a); err != nil {
		t.Fatal(err)
	}
	d := signer.Digest(ChainID, a)
	c.Seq, c.Prev = a.Seq, d
	return Att{a, d, a.AppendWire(nil)}
}

func mustUpdate(t *testing.T, l ledger.Ledger, fn func(ledger.Tx) error) {
	t.Helper()
	if err := l.Update(fn); err != nil {
		t.Fatal(err)
	}
}

func mustView(t *testing.T, l ledger.Ledger, fn func(ledger.Tx) error) {
	t.Helper()
	if err := l.View(fn); err != nil {
		t.Fatal(err)
	}
}

func audit(t *testing.T, l ledger.Ledger) {
	t.Helper()
	if err := l.Audit(); err != nil {
		t.Errorf("audit: %v", err)
	}
}

// testAppend: heads, per-batch credits, distinct batches and the index
// across a shared batch and a catch-up span; stats and the device report.
func testAppend(t *testing.T, open Factory) {
	l, _ := open(t)
	c := NewChain(t)
	G := draw.Genesis + 10
	xs := []Att{c.Next(t, G, 1, 1000), c.Next(t, G, 3, 3001), c.Next(t, G+2, 1, 500)}
	mustUpdate(t, l, func(tx ledger.Tx) error {
		for _, x := range xs {
			if err := tx.Append(x.A, x.Digest, x.Wire, eligible); err != nil {
				return err
			}
		}
		if err := tx.Append(xs[2].A, xs[2].Digest, xs[2].Wire, eligible); !errors.Is(err, ledger.ErrNotNext) {
			t.Errorf("append of seq 3 again: %v, want ErrNotNext", err)
		}
		return nil
	})
	dev := c.Device()
	mustView(t, l, func(tx ledger.Tx) error {
		h, err := tx.Head(dev)
		if err != nil {
			return err
		}
		want := ledger.Head{Seq: 3, Digest: xs[2].Digest, TailSeq: 3, Batch: G + 2, Batches: 1, Credited: 1000 + 500, Attestations: 3, Meters: 4501, EligibleMeters: 4501, BatchCount: 3}
		h.Wins, h.AwardMicro = 0, 0
		if h != want {
			t.Errorf("head %+v\nwant %+v", h, want)
		}
		for i, x := range xs {
			d, w, ok := tx.Stored(dev, uint64(i+1))
			if !ok || d != x.Digest || string(w) != string(x.Wire) {
				t.Errorf("stored seq %d: ok %v, digest %x", i+1, ok, d)
			}
		}
		if _, _, ok := tx.Stored(dev, 4); ok {
			t.Error("seq 4 stored")
		}
		wantIdx := map[uint64][]draw.Entry{
			G:     {{Device: dev, Seq: 1, Tickets: 1000}, {Device: dev, Seq: 2, Tickets: 1001}},
			G + 1: {{Device: dev, Seq: 2, Tickets: 1000}},
			G + 2: {{Device: dev, Seq: 2, Tickets: 1000}, {Device: dev, Seq: 3, Tickets: 500}},
			G + 3: nil,
		}
		for b, want := range wantIdx {
			got, err := tx.Entries(b)
			if err != nil {
				return err
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("batch %d index %+v, want %+v", b, got, want)
			}
		}
		if u := tx.Undrawn(); fmt.Sprint(u) != fmt.Sprint([]uint64{G, G + 1, G + 2}) {
			t.Errorf("undrawn %v, want G .. G+2", u)
		}
		ms, err := tx.Modes(dev)
		if err != nil || ms["ECO"] != 4501 || len(ms) != 1 {
			t.Errorf("modes %v, %v; want ECO=4501", ms, err)
		}
		devs, err := tx.Devices()
		if err != nil || len(devs) != 1 || devs[0] != dev {
			t.Errorf("devices %v, %v", devs, err)
		}
		return nil
	})
	s, err := l.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Devices) != 1 || s.Devices[0].Attestations != 3 || s.Devices[0].Head != 3 || s.Undrawn != 3 || s.Devices[0].Modes["ECO"] != 4501 {
		t.Errorf("stats %+v", s)
	}
	r, err := l.Device(dev)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Records) != 3 || r.Records[1].Meters != 3001 || r.Records[1].Batches != 3 || !r.Records[2].Verdict.Eligible {
		t.Errorf("device report %+v", r)
	}
	audit(t, l)
}

// testRollback: an update that returns an error leaves nothing.
func testRollback(t *testing.T, open Factory) {
	l, _ := open(t)
	c := NewChain(t)
	x := c.Next(t, draw.Genesis, 1, 10)
	boom := errors.New("boom")
	err := l.Update(func(tx ledger.Tx) error {
		if err := tx.Append(x.A, x.Digest, x.Wire, eligible); err != nil {
			return err
		}
		if _, err := tx.RegistryAdd([]signer.Address{c.Device()}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("update: %v, want boom", err)
	}
	mustView(t, l, func(tx ledger.Tx) error {
		h, err := tx.Head(c.Device())
		if err != nil || h.Seq != 0 {
			t.Errorf("head after rollback %+v, %v", h, err)
		}
		if devs, _ := tx.Devices(); len(devs) != 0 {
			t.Errorf("devices after rollback %v", devs)
		}
		if u := tx.Undrawn(); len(u) != 0 {
			t.Errorf("undrawn after rollback %v", u)
		}
		if r, _ := tx.Registry(); len(r) != 0 {
			t.Errorf("registry after rollback %v", r)
		}
		return nil
	})
}

// testIneligible: an ineligible attestation is stored with its verdict,
// earns no tickets and leaves the tail where it was.
func testIneligible(t *testing.T, open Factory) {
	l, _ := open(t)
	c := NewChain(t)
	G := draw.Genesis + 5
	x1, x2 := c.Next(t, G, 1, 100), c.Next(t, G+1, 1, 99999999)
	bad := ledger.Verdict{Code: "impossible meters", Reason: "impossible meters: 99999999 m in 1 batch"}
	mustUpdate(t, l, func(tx ledger.Tx) error {
		if err := tx.Append(x1.A, x1.Digest, x1.Wire, eligible); err != nil {
			return err
		}
		return tx.Append(x2.A, x2.Digest, x2.Wire, bad)
	})
	mustView(t, l, func(tx ledger.Tx) error {
		v, ok, err := tx.Verdict(c.Device(), 2)
		if err != nil || !ok || v != bad {
			t.Errorf("verdict of seq 2: %+v %v %v, want %+v", v, ok, err, bad)
		}
		h, _ := tx.Head(c.Device())
		if h.Seq != 2 || h.TailSeq != 1 || h.Ineligible != 1 || h.EligibleMeters != 100 || h.Meters != 100+99999999 {
			t.Errorf("head %+v", h)
		}
		if es, _ := tx.Entries(G + 1); len(es) != 0 {
			t.Errorf("ineligible span indexed: %+v", es)
		}
		return nil
	})
	audit(t, l)
}

// testHeldAndBreak: held seqs in unsigned order (also past 2^63), a
// conflicting hold, release, a chain break that moves the head, and the
// chain going on after it.
func testHeldAndBreak(t *testing.T, open Factory) {
	l, _ := open(t)
	c := NewChain(t)
	G := draw.Genesis + 7
	var xs []Att
	for i := 0; i < 6; i++ {
		xs = append(xs, c.Next(t, G+uint64(i), 1, 10))
	}
	dev := c.Device()
	other := NewChain(t)
	other.key = c.key
	other.Seq, other.Prev = 3, [32]byte{9} // another attestation for seq 4
	fork4 := other.Next(t, G+3, 1, 11)
	far := &signer.Attestation{V: 1, Device: dev, Seq: 1<<63 + 5, Batch: G, Batches: 1, Prev: [32]byte{7}}
	if err := signer.Sign(c.key, ChainID, far); err != nil {
		t.Fatal(err)
	}
	farD := signer.Digest(ChainID, far)
	at := time.Unix(1_800_000_000, 123).UTC()
	mustUpdate(t, l, func(tx ledger.Tx) error {
		if err := tx.Append(xs[0].A, xs[0].Digest, xs[0].Wire, eligible); err != nil {
			return err
		}
		for _, x := range []Att{xs[4], xs[3], {far, farD, far.AppendWire(nil)}} {
			if conflict, err := tx.Hold(x.A, x.Digest, x.Wire, at); err != nil || conflict != nil {
				t.Errorf("hold seq %d: %v %v", x.A.Seq, conflict, err)
			}
		}
		if conflict, err := tx.Hold(xs[3].A, xs[3].Digest, xs[3].Wire, at.Add(time.Hour)); err != nil || conflict != nil {
			t.Errorf("hold of a copy: %v %v, want nothing", conflict, err)
		}
		conflict, err := tx.Hold(fork4.A, fork4.Digest, fork4.Wire, at)
		if err != nil || conflict == nil || conflict.Digest != xs[3].Digest || !conflict.Received.Equal(at) {
			t.Errorf("hold of another seq 4: %+v %v, want the held one as conflict", conflict, err)
		}
		return nil
	})
	mustView(t, l, func(tx ledger.Tx) error {
		hs, err := tx.HeldSeqs(dev)
		if err != nil {
			return err
		}
		if len(hs) != 3 || hs[0].Seq != 4 || hs[1].Seq != 5 || hs[2].Seq != far.Seq || !hs[0].Received.Equal(at) || string(hs[0].Wire) != string(xs[3].Wire) {
			t.Errorf("held %+v, want seqs 4, 5, 2^63+5", hs)
		}
		return nil
	})
	if s, err := l.Stats(); err != nil || s.Held != 3 {
		t.Errorf("stats held %+v %v, want 3", s, err)
	}
	// Seqs 2 and 3 given up: the break moves the head to 3 with seq 4's prev.
	mustUpdate(t, l, func(tx ledger.Tx) error {
		if err := tx.Release(dev, far.Seq); err != nil {
			return err
		}
		b := ledger.Break{Device: dev, From: 2, To: 3, Cause: ledger.CauseTimeout, Reason: "test", At: at}
		if err := tx.RecordBreak(ledger.Break{Device: dev, From: 3, To: 3}, xs[3].A.Prev); !errors.Is(err, ledger.ErrNotNext) {
			t.Errorf("break not at head + 1: %v, want ErrNotNext", err)
		}
		if err := tx.RecordBreak(b, xs[3].A.Prev); err != nil {
			return err
		}
		h, err := tx.Head(dev)
		if err != nil || h.Seq != 3 || h.Digest != xs[3].A.Prev || h.Breaks != 1 {
			t.Errorf("head after break %+v %v", h, err)
		}
		for _, x := range xs[3:5] {
			if err := tx.Release(dev, x.A.Seq); err != nil {
				return err
			}
			if err := tx.Append(x.A, x.Digest, x.Wire, eligible); err != nil {
				return err
			}
		}
		return tx.Append(xs[5].A, xs[5].Digest, xs[5].Wire, eligible)
	})
	mustView(t, l, func(tx ledger.Tx) error {
		if hs, err := tx.HeldSeqs(dev); err != nil || len(hs) != 0 {
			t.Errorf("held after release %+v %v", hs, err)
		}
		for seq, want := range map[uint64]bool{1: false, 2: true, 3: true, 4: false} {
			b, err := tx.BreakOf(dev, seq)
			if err != nil || (b != nil) != want {
				t.Errorf("break of seq %d: %+v %v, want %v", seq, b, err, want)
			}
		}
		bs, err := tx.Breaks(dev)
		if err != nil || len(bs) != 1 || bs[0].From != 2 || bs[0].To != 3 || bs[0].Prev != fmt.Sprintf("0x%x", xs[3].A.Prev) || !bs[0].At.Equal(at) {
			t.Errorf("breaks %+v %v", bs, err)
		}
		h, _ := tx.Head(dev)
		if h.Seq != 6 || h.Attestations != 4 || h.Breaks != 1 {
			t.Errorf("head %+v", h)
		}
		return nil
	})
	audit(t, l)
}

// testForks: fork evidence recorded once, listed by device and seq.
func testForks(t *testing.T, open Factory) {
	l, _ := open(t)
	c := NewChain(t)
	x := c.Next(t, draw.Genesis, 1, 1)
	f := ledger.Fork{Device: c.Device(), Seq: 1, Kind: "seq", Digest: fmt.Sprintf("0x%x", x.Digest), Stored: "0x00", Wire: string(x.Wire), Received: time.Unix(1_800_000_000, 0).UTC()}
	mustUpdate(t, l, func(tx ledger.Tx) error {
		for i, want := range []bool{true, false} {
			isNew, err := tx.RecordFork(f, x.Digest)
			if err != nil || isNew != want {
				t.Errorf("record %d: new %v %v, want %v", i, isNew, err, want)
			}
		}
		return nil
	})
	mustView(t, l, func(tx ledger.Tx) error {
		fs, err := tx.Forks()
		if err != nil || len(fs) != 1 || fs[0] != f {
			t.Errorf("forks %+v %v, want %+v", fs, err, f)
		}
		return nil
	})
}

// testLoss: a loss announcement recorded, its repetition a no-op.
func testLoss(t *testing.T, open Factory) {
	l, _ := open(t)
	c := NewChain(t)
	ls := ledger.Loss{From: 3, To: 9, At: time.Unix(1_800_000_000, 0).UTC()}
	mustUpdate(t, l, func(tx ledger.Tx) error {
		for i, want := range []bool{true, false} {
			changed, err := tx.AnnounceLoss(c.Device(), ls)
			if err != nil || changed != want {
				t.Errorf("announce %d: changed %v %v, want %v", i, changed, err, want)
			}
		}
		return nil
	})
	mustView(t, l, func(tx ledger.Tx) error {
		got, ok, err := tx.Lost(c.Device())
		if err != nil || !ok || got != ls {
			t.Errorf("lost %+v %v %v, want %+v", got, ok, err, ls)
		}
		if _, ok, _ := tx.Lost(NewChain(t).Device()); ok {
			t.Error("loss of an unknown device")
		}
		return nil
	})
	audit(t, l)
}

// testDraw: claim, record, the second draw refused, late tickets, awards.
func testDraw(t *testing.T, open Factory) {
	l, _ := open(t)
	c := NewChain(t)
	G := draw.Genesis
	x := c.Next(t, G, 1, 10)
	at := time.Unix(1_700_000_000, 0).UTC()
	var res *draw.Result
	mustUpdate(t, l, func(tx ledger.Tx) error {
		return tx.Append(x.A, x.Digest, x.Wire, eligible)
	})
	mustUpdate(t, l, func(tx ledger.Tx) error {
		mine, err := tx.ClaimDraw(G)
		if err != nil || !mine {
			t.Errorf("claim: %v %v, want true", mine, err)
		}
		es, err := tx.Entries(G)
		if err != nil {
			return err
		}
		res, err = draw.Run(draw.Seed{1}, G, es, 3)
		if err != nil {
			return err
		}
		return tx.RecordDraw(G, res, at)
	})
	mustUpdate(t, l, func(tx ledger.Tx) error {
		if mine, err := tx.ClaimDraw(G); err != nil || mine {
			t.Errorf("claim of a drawn batch: %v %v, want false", mine, err)
		}
		if err := tx.RecordDraw(G, res, at); !errors.Is(err, ledger.ErrDrawn) {
			t.Errorf("second draw: %v, want ErrDrawn", err)
		}
		return nil
	})
	x2 := c.Next(t, G, 1, 5)
	mustUpdate(t, l, func(tx ledger.Tx) error { return tx.Append(x2.A, x2.Digest, x2.Wire, eligible) })
	mustView(t, l, func(tx ledger.Tx) error {
		rec, err := tx.Draw(G)
		if err != nil || rec == nil || rec.Total != 10 || !rec.At.Equal(at) || len(rec.Wins) != 3 {
			t.Errorf("recorded %+v, %v", rec, err)
		}
		es, _ := tx.Entries(G)
		late := tx.Late(G)
		if len(es) != 1 || len(late) != 1 || late[0].Seq != 2 || late[0].Tickets != 5 {
			t.Errorf("index %+v, late %+v; want seq 1 indexed, seq 2 late", es, late)
		}
		if u := tx.Undrawn(); len(u) != 0 {
			t.Errorf("undrawn %v after the draw", u)
		}
		wins, micro, err := tx.Awards(c.Device())
		if err != nil || wins != 3 || micro != draw.Drop(G) {
			t.Errorf("awards %d %d %v, want 3 and %d", wins, micro, err, draw.Drop(G))
		}
		if n, err := tx.Draws(); err != nil || n != 1 {
			t.Errorf("draws %d %v", n, err)
		}
		return nil
	})
	if err := l.Update(func(tx ledger.Tx) error {
		return tx.RecordDraw(G+1, &draw.Result{Batch: G + 1, Awards: []draw.Award{{Device: NewChain(t).Device(), Wins: 1}}}, at)
	}); err == nil {
		t.Error("award to an unknown device recorded")
	}
	s, err := l.Stats()
	if err != nil || s.Draws != 1 || s.Devices[0].Wins != 3 {
		t.Errorf("stats %+v %v", s, err)
	}
	audit(t, l)
}

// testLastDraws: the last draws by batch, highest first, however far
// apart (the status page lists them), in unsigned order past 2^63.
func testLastDraws(t *testing.T, open Factory) {
	l, _ := open(t)
	G := draw.Genesis
	at := time.Unix(1_700_000_000, 0).UTC()
	batches := []uint64{G + 5, G, 1<<63 + 7, G + 40*24*6} // the third sorts highest unsigned; the last is 40 days after G+5
	for _, b := range batches {
		mustUpdate(t, l, func(tx ledger.Tx) error { return tx.RecordDraw(b, nil, at) })
	}
	mustView(t, l, func(tx ledger.Tx) error {
		for _, tc := range []struct {
			n    int
			want []uint64
		}{
			{0, nil},
			{1, []uint64{1<<63 + 7}},
			{3, []uint64{1<<63 + 7, G + 40*24*6, G + 5}},
			{10, []uint64{1<<63 + 7, G + 40*24*6, G + 5, G}},
		} {
			rs, err := tx.LastDraws(tc.n)
			if err != nil {
				t.Fatalf("LastDraws(%d): %v", tc.n, err)
			}
			var got []uint64
			for _, r := range rs {
				got = append(got, r.Batch)
				if !r.At.Equal(at) {
					t.Errorf("batch %d recorded at %v, want %v", r.Batch, r.At, at)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("LastDraws(%d) = %v, want %v", tc.n, got, tc.want)
			}
		}
		return nil
	})
}

// testRegistry: add, remove and list.
func testRegistry(t *testing.T, open Factory) {
	l, _ := open(t)
	a, b := NewChain(t).Device(), NewChain(t).Device()
	mustUpdate(t, l, func(tx ledger.Tx) error {
		if n, err := tx.RegistryAdd([]signer.Address{a, b, a}); err != nil || n != 2 {
			t.Errorf("add: %d %v, want 2", n, err)
		}
		if n, err := tx.RegistryRemove([]signer.Address{b, b}); err != nil || n != 1 {
			t.Errorf("remove: %d %v, want 1", n, err)
		}
		return nil
	})
	mustView(t, l, func(tx ledger.Tx) error {
		r, err := tx.Registry()
		if err != nil || len(r) != 1 || r[0] != a {
			t.Errorf("registry %v %v, want [%s]", r, err, a)
		}
		if _, err := tx.RegistryAdd([]signer.Address{b}); err == nil {
			t.Error("registry add in a read transaction: no error")
		}
		return nil
	})
}

// testConcurrent: writers (other processes for a shared database) given
// every device's seqs in their own random order each append a seq only
// when it is the device's head + 1 as its transaction sees it: every seq
// is stored exactly once, in order.
func testConcurrent(t *testing.T, open Factory) {
	l, another := open(t)
	const writers, devices, seqs = 4, 12, 15
	var all []Att
	for d := 0; d < devices; d++ {
		c := NewChain(t)
		for s := 0; s < seqs; s++ {
			all = append(all, c.Next(t, draw.Genesis+uint64(s), 1, 100))
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		lw := l
		if w > 0 {
			lw = another()
		}
		order := rand.Perm(len(all))
		wg.Add(1)
		go func() {
			defer wg.Done()
			pending := order
			for round := 0; len(pending) > 0; round++ {
				if round > 10*len(all) {
					errs <- fmt.Errorf("writer made no progress: %d left", len(pending))
					return
				}
				var next []int
				// A group of up to 8, its devices locked at once.
				n := min(8, len(pending))
				group := pending[:n]
				err := lw.Update(func(tx ledger.Tx) error {
					next = next[:0]
					var devs []signer.Address
					for _, i := range group {
						devs = append(devs, all[i].A.Device)
					}
					sortAddrs(devs)
					if err := tx.Lock(devs); err != nil {
						return err
					}
					for _, i := range group {
						x := all[i]
						h, err := tx.Head(x.A.Device)
						if err != nil {
							return err
						}
						switch {
						case x.A.Seq <= h.Seq:
							if d, _, ok := tx.Stored(x.A.Device, x.A.Seq); !ok || d != x.Digest {
								return fmt.Errorf("device %s seq %d: stored %x ok %v", x.A.Device, x.A.Seq, d, ok)
							}
						case x.A.Seq == h.Seq+1:
							if err := tx.Append(x.A, x.Digest, x.Wire, eligible); err != nil {
								return err
							}
						default:
							next = append(next, i)
						}
					}
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
				pending = append(append([]int(nil), pending[n:]...), next...)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	s, err := l.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Devices) != devices {
		t.Fatalf("%d devices, want %d", len(s.Devices), devices)
	}
	for _, d := range s.Devices {
		if d.Head != seqs || d.Attestations != seqs || d.EligibleMeters != 100*seqs {
			t.Errorf("device %s: head %d, %d attestations, %d m; want %d, %d, %d", d.Device, d.Head, d.Attestations, d.EligibleMeters, seqs, seqs, 100*seqs)
		}
	}
	audit(t, l)
}

func sortAddrs(a []signer.Address) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && string(a[j][:]) < string(a[j-1][:]); j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}
