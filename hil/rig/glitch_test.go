package rig

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/csop/tbox/signer"
)

// TestGlitchReceipted is issue 14's case (a) end to end: one odometer
// frame of all ones (541#FFFFFFFFFFFFFFFF, what anything plugged into the
// OBD port can send) is injected on vcan0 in the middle of an hour's
// drive, with tboxd uploading to the shipped mosquitto and the collector
// on the host. Before the candidate rule, that frame became the
// high-water mark: a span of 42,803 km with JUMP that the collector
// refused, then 0 m ROLLBACK spans and "gap" for good.
//
// Checked from the outside: the meters attested equal vsim's truth (the
// glitch credits nothing); exactly one attestation carries JUMP, none
// ROLLBACK; the collector receipted every seq in order, refused none and
// holds no fork; its stats hold the same meters.
func TestGlitchReceipted(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	t0 := time.Now()
	const pace = 60.0
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
	const hour = time.Hour
	clock := time.Now().Add(-hour - 20*time.Minute).Truncate(time.Second)
	drive := Drive{
		Seed: 14, Start: clock.Add(5 * time.Minute).Truncate(time.Minute), Duration: hour, Pace: pace,
		OdometerHz: 2, SpeedHz: 2, ModeHz: 1, NoParking: true,
	}
	// Half the drive's wall time after vsim starts: 30 minutes in.
	glitchAt := drive.Wall() / 2
	g, err := r.Boot(ctx, GuestOptions{
		Script: ScriptClockSync + ScriptStartTboxd + ScriptFirstFrame +
			"(sleep " + strings.TrimSuffix(glitchAt.String(), "s") + "; cansend vcan0 541#FFFFFFFFFFFFFFFF && echo RIG-GLITCH-SENT) &\n" +
			drive.Script() + ScriptPrintFirstFrame + ScriptStopTboxd + "wait\n[ $vrc -eq 0 ]\n",
		Tboxd:   &Tboxd{TimeScale: pace, Upload: true},
		Broker:  broker,
		Clock:   clock,
		Timeout: drive.Wall() + 3*time.Minute,
		OnLine: lineLogger(t, "guest: ", func(l string) bool {
			return interesting(l) || strings.HasPrefix(l, "RIG-GLITCH")
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	res, gerr := g.Wait()
	if gerr != nil {
		t.Errorf("guest: %v", gerr)
	}
	sent := false
	for _, l := range g.Lines() {
		sent = sent || l == "RIG-GLITCH-SENT"
	}
	if !sent {
		t.Fatal("cansend did not send the glitch frame")
	}
	f := ParseConsole(g.Lines())
	if f.VsimExit != 0 || f.TboxdExit != 0 || f.Depth != 0 {
		t.Errorf("guest: vsim exit %d, tboxd exit %d, outbox depth %d at its stop; want 0, 0, 0", f.VsimExit, f.TboxdExit, f.Depth)
	}
	capt.Wait(ctx, 20*time.Second, func(msgs []Message) bool {
		tr := Analyze(msgs, r.Device)
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
	if f.Truth == nil {
		t.Fatal("no truth from vsim in the guest")
	}
	meters, _ := tr.Meters()
	if meters != f.Truth.Meters || meters == 0 {
		t.Errorf("attested %d m; vsim's truth %d m (the glitch must credit nothing)", meters, f.Truth.Meters)
	}
	jumps := 0
	for seq, a := range tr.Atts {
		if a.Flags&signer.FlagJump != 0 {
			jumps++
		}
		if a.Flags&signer.FlagRollback != 0 {
			t.Errorf("seq %d: ROLLBACK after the glitch", seq)
		}
	}
	if jumps != 1 {
		t.Errorf("%d attestations with JUMP; want exactly the glitch's span", jumps)
	}
	st, err := r.CollectorStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Devices) != 1 || int64(st.Devices[0].Meters) != meters || st.Forks != 0 {
		t.Errorf("collector stats %+v: want one device with %d m, no fork", st, meters)
	}
	t.Logf("glitch: %v of driving at %gx in %v; %d attestations, %d m = truth %d m, acked through %d; flags: %s; whole test %v",
		drive.Duration, pace, res.Duration.Round(time.Second), len(tr.Order), meters, f.Truth.Meters, tr.AckedThrough,
		flagCounts(tr.Atts), since(t0))
}
