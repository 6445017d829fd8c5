package web

import (
	"testing"
	"time"

	"github.com/csop/tbox/cmd/collector/internal/collect"
	"github.com/csop/tbox/signer"
)

// TestBolt reads through the adapter what a real collector stored and
// drew in a real bbolt ledger.
func TestBolt(t *testing.T) {
	l := newLedger(t)
	now := time.Now()
	start := nowBatch() - 20
	a, b := newDevice(t, start), newDevice(t, start+2)
	allow := allowSet{a.addr: true, b.addr: true}
	c, err := collect.New(l, collect.Config{ChainID: testChainID, Allow: allow, Winners: 10, Grace: 0, Now: func() time.Time { return now }}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	send := func(d *device, wire []byte) {
		t.Helper()
		if _, err := c.Process([]collect.Message{{Topic: d.topic("att"), Payload: wire}}); err != nil {
			t.Fatal(err)
		}
	}
	want := map[uint64]uint64{}
	for i := range 3 { // a: batches start .. start+2
		want[a.batch] += uint64(1000 * (i + 1))
		send(a, a.next(uint64(1000*(i+1))))
	}
	for range 2 { // b: batches start+2, start+3
		want[b.batch] += 700
		send(b, b.next(700))
	}
	// A fork of a's seq 1: another attestation signed for it.
	fork := &signer.Attestation{V: signer.Version, Device: a.addr, Seq: 1, Batch: start, Batches: 1, Meters: 1}
	fork.Modes = []signer.ModeMeters{{Mode: "ECO", Meters: 1}}
	if err := signer.Sign(a.key, testChainID, fork); err != nil {
		t.Fatal(err)
	}
	send(a, fork.AppendWire(nil))

	drawn, err := c.DrawClosed()
	if err != nil {
		t.Fatal(err)
	}
	if len(drawn) != 4 {
		t.Fatalf("%d batches drawn, want 4", len(drawn))
	}
	src := &Bolt{L: l}

	devs, total, err := src.Devices(0, 10)
	if err != nil || total != 2 || len(devs) != 2 {
		t.Fatalf("Devices: %v, %d in all, %v", devs, total, err)
	}
	for _, d := range devs {
		switch d.Address {
		case a.addr:
			if d.Head != 3 || d.Attestations != 3 || d.Forks != 1 || d.EligibleMeters != 6000 || d.Eligible() != 3 {
				t.Errorf("a: %+v", d)
			}
		case b.addr:
			if d.Head != 2 || d.Forks != 0 || d.Meters != 1400 {
				t.Errorf("b: %+v", d)
			}
		default:
			t.Errorf("unknown device %s", d.Address)
		}
	}
	if page, total, _ := src.Devices(1, 10); len(page) != 1 || total != 2 || page[0].Address != devs[1].Address {
		t.Errorf("Devices(1, 10): %v", page)
	}
	if page, _, _ := src.Devices(5, 10); len(page) != 0 {
		t.Errorf("Devices past the end: %v", page)
	}

	draws, err := src.Draws(3)
	if err != nil {
		t.Fatal(err)
	}
	if len(draws) != 3 || draws[0].Batch != start+3 || draws[1].Batch != start+2 || draws[2].Batch != start+1 {
		t.Fatalf("Draws(3): %+v, want batches %d, %d, %d", draws, start+3, start+2, start+1)
	}
	if draws[1].Tickets != want[start+2] || draws[1].Winners != 10 || draws[1].Devices < 1 || draws[1].Micro == 0 {
		t.Errorf("draw of batch %d: %+v, want %d tickets", start+2, draws[1], want[start+2])
	}

	// One more attestation of b for its last batch (start+3), after that
	// batch's draw: late, not in the draw, but attested km of the batch.
	b.batch--
	want[b.batch] += 900
	send(b, b.next(900))
	bms, err := src.MetersPerBatch(nowBatch(), 30)
	if err != nil {
		t.Fatal(err)
	}
	if len(bms) != 30 || bms[29].Batch != nowBatch() {
		t.Fatalf("MetersPerBatch: %d entries ending %d", len(bms), bms[len(bms)-1].Batch)
	}
	for _, bm := range bms {
		if bm.Meters != want[bm.Batch] {
			t.Errorf("batch %d: %d m, want %d", bm.Batch, bm.Meters, want[bm.Batch])
		}
		if drawnWant := bm.Batch >= start && bm.Batch <= start+3; bm.Drawn != drawnWant {
			t.Errorf("batch %d drawn %v, want %v", bm.Batch, bm.Drawn, drawnWant)
		}
	}
	tot, err := src.Totals()
	if err != nil || tot.Devices != 2 || tot.Forks != 1 || tot.Draws != 4 || tot.Undrawn != 0 {
		t.Errorf("Totals: %+v, %v", tot, err)
	}
}
