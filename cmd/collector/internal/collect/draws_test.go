package collect

import (
	"testing"
	"time"

	"github.com/csop/tbox/cmd/collector/internal/draw"
	"github.com/csop/tbox/cmd/collector/internal/ledger"
	"github.com/csop/tbox/signer"
)

// fakeClock is a settable clock.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

func batchTime(b uint64) time.Time { return time.Unix(int64(b)*600, 0) }

func mustAck(t *testing.T, c *Collector, m Message, seq uint64) {
	t.Helper()
	rs, err := c.Process([]Message{m})
	if err != nil || len(rs) != 1 || !rs[0].Ack() || rs[0].Seq != seq {
		t.Fatalf("replies %+v, err %v; want an ack of seq %d", rs, err, seq)
	}
}

// TestDrawClosedBatches: batches are drawn once closed (end + grace), the
// awards add up to the drop, a re-run from the stored attestations gives
// the recorded draw, and a late attestation does not change it.
func TestDrawClosedBatches(t *testing.T) {
	G := draw.Genesis + 100
	clock := &fakeClock{batchTime(G + 3)}
	l := newLedger(t, false)
	A, B, C := newDevice(t, G), newDevice(t, G), newDevice(t, G+1)
	seed := draw.Seed{0xc5, 0x01}
	c, err := New(l, Config{ChainID: testChainID, Allow: allowSet{A.addr: true, B.addr: true, C.addr: true},
		Seed: seed, Winners: 10, Grace: time.Hour, Now: clock.Now}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	mustAck(t, c, A.msg(A.next(3000)), 1)
	mustAck(t, c, B.msg(B.next(1000)), 1)
	// A catch-up span of B over G .. G+2 sharing batch G with seq 1:
	// 3001 m gives 1001, 1000, 1000.
	mustAck(t, c, B.msg(B.next(3001, func(a *signer.Attestation) { a.Batches = 3; a.Flags = signer.FlagCatchup })), 2)

	if got, err := c.DrawClosed(); err != nil || len(got) != 0 {
		t.Fatalf("before the grace period: %d draws, err %v; want none", len(got), err)
	}
	clock.t = batchTime(G + 3).Add(time.Hour) // G+2 ends at G+3's start; + grace
	got, err := c.DrawClosed()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Batch != G || got[1].Batch != G+1 || got[2].Batch != G+2 {
		t.Fatalf("drew %d batches, want G, G+1, G+2", len(got))
	}
	wantTotal := []uint64{3000 + 1000 + 1001, 1000, 1000}
	var awarded uint64
	for i, res := range got {
		if res.Total != wantTotal[i] || res.N != 10 || res.Seed != seed {
			t.Errorf("batch %d: total %d, n %d; want %d, 10", res.Batch, res.Total, res.N, wantTotal[i])
		}
		var sum uint64
		for _, a := range res.Awards {
			sum += a.Micro
		}
		if sum != draw.Drop(res.Batch) {
			t.Errorf("batch %d: awards sum to %d, drop is %d", res.Batch, sum, draw.Drop(res.Batch))
		}
		awarded += sum
		r, err := Redraw(l, seed, 10, res.Batch)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Match() {
			t.Errorf("batch %d: re-run %+v differs from recorded %+v", res.Batch, r.Result, r.Recorded)
		}
	}
	// Batches G+1 and G+2 hold only B's tickets.
	for _, res := range got[1:] {
		if len(res.Awards) != 1 || res.Awards[0].Device != B.addr || res.Awards[0].Wins != 10 {
			t.Errorf("batch %d: awards %+v, want all 10 wins to B", res.Batch, res.Awards)
		}
	}
	ha, hb := headOf(t, l, A.addr), headOf(t, l, B.addr)
	if ha.AwardMicro+hb.AwardMicro != awarded || ha.Wins+hb.Wins != 30 {
		t.Errorf("credited %d + %d µStone in %d + %d wins, want %d in 30", ha.AwardMicro, hb.AwardMicro, ha.Wins, hb.Wins, awarded)
	}

	// C's attestation for G+1 arrives after the draw: stored, not drawn.
	mustAck(t, c, C.msg(C.next(700)), 1)
	if again, err := c.DrawClosed(); err != nil || len(again) != 0 {
		t.Errorf("second pass drew %d batches, err %v; want none", len(again), err)
	}
	r, err := Redraw(l, seed, 10, G+1)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Match() || len(r.Late) != 1 || r.Late[0].Device != C.addr || r.Late[0].Tickets != 700 {
		t.Errorf("after a late arrival: match %v, late %+v; want a match and C's 700 tickets late", r.Match(), r.Late)
	}
	if r, err := Redraw(l, draw.Seed{1}, 10, G); err != nil || r.Match() {
		t.Errorf("re-run with another seed: match %v, err %v; want a mismatch", r.Match(), err)
	}
	s, err := l.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.Draws != 3 || s.Undrawn != 0 {
		t.Errorf("stats: %d draws, %d undrawn; want 3, 0", s.Draws, s.Undrawn)
	}
	var bs ledger.DeviceStats
	for _, d := range s.Devices {
		if d.Device == B.addr {
			bs = d
		}
	}
	if bs.Batches != 3 || bs.Meters != 4001 || bs.Attestations != 2 {
		t.Errorf("B's stats %+v, want 2 attestations, 4001 m, 3 distinct batches", bs)
	}
}
