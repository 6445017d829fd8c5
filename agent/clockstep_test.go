package agent_test

import (
	"testing"
	"time"

	"github.com/csop/tbox/agent"
	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/signer"
	"github.com/csop/tbox/store"
)

// TestClockStepBackKeepsBatchOrder: the wall clock stepping back by an hour
// mid-drive must not make a span start before the previous one ended (the
// collector would refuse it, and every later seq behind it, for good). The
// span keeps its distance, moves to the last attested batch and gets CLOCK.
func TestClockStepBackKeepsBatchOrder(t *testing.T) {
	p := loadEV(t)
	var atts []*signer.Attestation
	att, err := agent.NewAttester(agent.AttesterConfig{
		ChainID: chainID, Profile: p,
		OnDurable: func(_ store.Record, a *signer.Attestation) { atts = append(atts, a) },
	}, newKey(t), &agent.MemoryOutbox{})
	if err != nil {
		t.Fatal(err)
	}
	odo := 1_000_000.0
	at := start
	driveFor := func(d time.Duration) {
		for end := at.Add(d); at.Before(end); at = at.Add(time.Second) {
			odo += 15 // 54 km/h
			if err := att.Reading(&profile.Reading{Kind: profile.Odometer, Time: at, Value: odo}); err != nil {
				t.Fatal(err)
			}
		}
	}
	driveFor(35 * time.Minute)
	at = at.Add(-time.Hour) // the clock steps back
	driveFor(35 * time.Minute)
	if err := att.Stop(at); err != nil {
		t.Fatal(err)
	}
	var meters uint64
	var last uint64
	sawClock := false
	for i, a := range atts {
		if i > 0 && a.Batch < last {
			t.Errorf("seq %d starts in batch %d, before the previous span ended (%d)", a.Seq, a.Batch, last)
		}
		last = a.Batch + uint64(a.Batches) - 1
		meters += a.Meters
		sawClock = sawClock || a.Flags&signer.FlagClock != 0
	}
	// The first reading is the base: 70 minutes of readings, one less step.
	if want := uint64((70*60 - 1) * 15); meters != want {
		t.Errorf("attested %d m, want %d: a clock step must not lose distance", meters, want)
	}
	if !sawClock {
		t.Error("no attestation carries CLOCK after a one-hour step back")
	}
}
