package rig

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/csop/tbox/signer"
)

// dayPace is how much faster than real time the normal day is played: the
// fastest the 2-core TCG guest carries with tboxd and vsim each on a core
// at 2 speed and 2 odometer frames a second (see the test's figures;
// HIL_DAY_PACE overrides it).
const dayPace = 480

// TestNormalDay is scenario 1, a normal day: 8 hours of a seeded day's
// driving (trips and parked periods) played onto vcan0 in the emulated
// T-Box, tboxd attesting and uploading to mosquitto and the collector on
// the host.
//
// Time is compressed dayPace times: vsim --pace plays the drive that much
// faster onto vcan0 and tboxd's can.time_scale counts its frames' kernel
// times that much faster from its start, so that the drive keeps its
// speeds and its 10-minute batches (8 hours in a minute at 480x). The
// guest's clock is set at boot to 8.5 hours before the host's now, so the
// compressed day ends in the past: every batch is closed, and the
// collector (grace 1 s) draws each one. clocksync marks the guest's clock
// synchronized, as NTP would, so attestations carry no CLOCK. vsim sends 2
// speed, 2 odometer and 1 drive-mode frame a second, no noise.
//
// Checked from the outside: the total meters attested equal the
// simulator's truth (vsim's in the guest and the host's replay of the same
// seed), and so do the meters per drive mode; each attestation's modes sum
// to its meters; the chain verifies (`collector audit` on the store,
// `tboxctl verify` on the MQTT capture); every seq is first published in
// order and acked, stored once, with no fork; every batch is drawn.
func TestNormalDay(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	t0 := time.Now()
	pace := float64(dayPace)
	if s := os.Getenv("HIL_DAY_PACE"); s != "" {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || v < 1 {
			t.Fatalf("HIL_DAY_PACE=%q: want a speed-up >= 1", s)
		}
		pace = v
	}
	broker, err := r.StartBroker(ctx)
	if err != nil {
		t.Fatal(err)
	}
	capt, err := r.CaptureMQTT(broker, "mqtt.jsonl", nil)
	if err != nil {
		t.Fatal(err)
	}
	coll, err := r.StartCollector(ctx, broker, CollectorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const day = 8 * time.Hour
	clock := time.Now().Add(-day - 30*time.Minute).Truncate(time.Second)
	drive := Drive{
		Seed: 8, Start: clock.Add(5 * time.Minute).Truncate(time.Minute), Duration: day, Pace: pace,
		OdometerHz: 2, SpeedHz: 2, ModeHz: 1,
	}
	g, err := r.Boot(ctx, GuestOptions{
		Script: ScriptClockSync + ScriptStartTboxd + ScriptFirstFrame + drive.Script() +
			ScriptPrintFirstFrame + ScriptStopTboxd + "wait\n[ $vrc -eq 0 ]\n",
		Tboxd:   &Tboxd{TimeScale: pace, Upload: true},
		Broker:  broker,
		Clock:   clock,
		Timeout: drive.Wall() + 3*time.Minute,
		OnLine: lineLogger(t, "guest: ", func(l string) bool {
			return interesting(l) && LogFields(l)["msg"] != "attested"
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	res, gerr := g.Wait()
	if gerr != nil {
		t.Errorf("guest: %v", gerr)
	}
	f := ParseConsole(g.Lines())
	if f.VsimExit != 0 || f.TboxdExit != 0 || f.Depth != 0 {
		t.Errorf("guest: vsim exit %d, tboxd exit %d, outbox depth %d at its stop; want 0, 0, 0", f.VsimExit, f.TboxdExit, f.Depth)
	}

	// The backend: everything acked and drawn, then the store.
	capt.Wait(ctx, 20*time.Second, func(msgs []Message) bool {
		tr := Analyze(msgs, r.Device)
		drawn := coll.Drawn()
		for _, a := range tr.Atts {
			if !drawn[a.Batch] {
				return false
			}
		}
		return f.Made > 0 && tr.AckedThrough >= uint64(f.Made)
	})
	if err := coll.Stop(10 * time.Second); err != nil {
		t.Errorf("collector: %v", err)
	}
	capt.Close()
	tr := Analyze(capt.Messages(), r.Device)
	checkDelivery(t, ctx, r, tr)
	if len(tr.Order) != f.Made {
		t.Errorf("tboxd made %d attestations, the broker carried %d", f.Made, len(tr.Order))
	}
	for seq, a := range tr.Atts {
		if a.Flags&signer.FlagClock != 0 {
			t.Errorf("seq %d: CLOCK: the guest's clock was not trusted", seq)
		}
	}

	// The truth.
	if f.Truth == nil {
		t.Fatal("no truth from vsim in the guest")
	}
	al, err := AlignTruth(r.Profile, drive, f.Epoch(), f.FirstFrame, f.Truth)
	if err != nil {
		t.Fatal(err)
	}
	meters, modes := tr.Meters()
	if meters != f.Truth.Meters || meters != al.Meters || meters == 0 {
		t.Errorf("attested %d m; vsim's truth %d m, the host's replay %d m", meters, f.Truth.Meters, al.Meters)
	}
	want := map[string]int64{}
	for _, b := range f.Truth.Batches {
		for _, m := range b.Modes {
			want[m.Mode] += m.Meters
		}
	}
	for _, m := range keys(modes, want) {
		if modes[m] != want[m] || al.Modes[m] != want[m] {
			t.Errorf("drive mode %s: attested %d m, vsim's truth %d m, the host's replay %d m", m, modes[m], want[m], al.Modes[m])
		}
	}
	st, err := r.CollectorStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Devices) != 1 || int64(st.Devices[0].Meters) != meters || st.Undrawn != 0 || st.Forks != 0 {
		t.Errorf("collector stats %+v: want one device with %d m, nothing undrawn, no fork", st, meters)
	}
	batches := map[uint64]int64{}
	for _, a := range tr.Atts {
		batches[a.Batch] += int64(a.Meters)
	}
	for b := range batches {
		d, err := r.CollectorDraw(ctx, b)
		if err != nil {
			t.Errorf("batch %d: %v", b, err)
		} else if d.Recorded == nil || !d.Match || len(d.Late) > 0 {
			t.Errorf("batch %d: draw recorded %v, reproducible %v, %d late", b, d.Recorded != nil, d.Match, len(d.Late))
		}
	}

	// Figures: per batch, the truth counts each frame at its simulated
	// time; tboxd at the kernel time of its arrival, which the emulated
	// CPU delays now and then.
	var moved, cumA, cumE int64
	exact := 0
	var rows []string
	for _, b := range sortedKeys(union64(batches, al.Expected)) {
		var e int64
		for _, v := range al.Expected[b] {
			e += v
		}
		if e == batches[b] {
			exact++
		}
		cumA += batches[b]
		cumE += e
		moved += abs64(cumA - cumE)
		rows = append(rows, fmt.Sprintf("%d:%d/%d", b, batches[b], e))
	}
	t.Logf("per batch, attested/aligned truth (shift %v): %s", al.Shift.Round(time.Millisecond), strings.Join(rows, " "))
	t.Logf("normal day: %v of driving (seed %d) at %gx in %v of wall time; guest ready in %v; %d frames; %d attestations over %d batches with distance, %d m = truth %d m; modes %v; %d of %d batches equal the aligned truth, %d m crossed a batch boundary; flags: %s; whole test %v",
		drive.Duration, drive.Seed, pace, res.Duration.Round(time.Second), res.BootTime.Round(time.Millisecond), f.Truth.Frames.Total,
		len(tr.Order), len(batches), meters, f.Truth.Meters, modes, exact, len(union64(batches, al.Expected)), moved,
		flagCounts(tr.Atts), since(t0))
	for _, w := range f.Warnings {
		t.Logf("tboxd warned: %s", w)
	}
}

func keys(a, b map[string]int64) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range []map[string]int64{a, b} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	return out
}

func union64(a map[uint64]int64, b map[uint64]map[string]int64) map[uint64]bool {
	out := map[uint64]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

func sortedKeys(m map[uint64]bool) []uint64 {
	var out []uint64
	for k := range m {
		out = append(out, k)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func abs64(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}
