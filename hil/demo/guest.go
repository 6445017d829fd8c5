package main

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/csop/tbox/hil"
	"github.com/csop/tbox/hil/rig"
	"github.com/csop/tbox/hil/vehicle"
)

// The drive's options besides the seed, length and pace; the host replays
// the same drive for the truth, so both read rig.Drive.
const (
	simNoise   = 0  // unrelated messages on the bus, dropped by tboxd's kernel filter
	simSpeedHz = 10 // speed frames per second: the guest carries 120x pace with room to spare
)

// guest is the emulated T-Box of one run.
type guest struct {
	cfg   Config
	p     *printer
	clock time.Time // the guest's wall clock at boot
	drive rig.Drive
}

func newGuest(cfg Config, p *printer) *guest {
	clock := time.Now().Add(-cfg.Drive - clockMargin).Truncate(time.Second)
	return &guest{cfg: cfg, p: p, clock: clock, drive: rig.Drive{
		Seed: cfg.Seed, Start: clock.Add(5 * time.Minute).Truncate(time.Minute), Duration: cfg.Drive,
		Pace: cfg.Pace, Noise: simNoise, SpeedHz: simSpeedHz,
	}}
}

// script is the guest's part: mark the clock synchronized, start tboxd,
// drive, stop tboxd (it closes the last span and uploads it), report.
func (g *guest) script() string {
	return rig.ScriptClockSync + rig.ScriptStartTboxd + rig.ScriptFirstFrame + g.drive.Script() +
		rig.ScriptPrintFirstFrame + rig.ScriptStopTboxd + "wait\n[ $vrc -eq 0 ]\n"
}

// boot runs the guest to its end and reads its console.
func (g *guest) boot(ctx context.Context, r *rig.Rig, b *rig.Broker) (*rig.Facts, *hil.Result, error) {
	gu, err := r.Boot(ctx, rig.GuestOptions{
		Script: g.script(),
		Tboxd: &rig.Tboxd{
			TimeScale:     g.cfg.Pace,
			ShutdownGrace: 15 * time.Second, // on SIGTERM: time to upload the last span
			Upload:        true,
		},
		Broker:  b,
		Clock:   g.clock,
		Timeout: g.drive.Wall() + 3*time.Minute,
		OnLine:  g.show,
	})
	if err != nil {
		return nil, nil, err
	}
	res, err := gu.Wait()
	return rig.ParseConsole(gu.Lines()), res, err
}

// show prints the interesting lines of the guest's console.
func (g *guest) show(l string) {
	p := g.p
	if g.cfg.Verbose {
		if !strings.HasPrefix(l, "RIG-TRUTH ") {
			p.say("guest| %s", l)
		}
		return
	}
	switch {
	case strings.HasPrefix(l, "HIL-READY"):
		p.say("T-Box: booted, vcan0 up")
	case strings.HasPrefix(l, "clocksync:"):
		p.say("T-Box: guest clock set from the host at boot, %s", strings.TrimPrefix(l, "clocksync: "))
	case strings.HasPrefix(l, "vsim:"):
		p.say("T-Box: %s", l)
	case l == "RIG-DRIVE-START":
		p.say("T-Box: vsim drives onto vcan0 (%v of driving at %gx: about %v)", g.cfg.Drive, g.cfg.Pace,
			g.drive.Wall().Round(time.Second))
	case strings.HasPrefix(l, "RIG-ERROR"), strings.HasPrefix(l, "HIL-ERROR"):
		p.say("T-Box: %s", l)
	case strings.HasPrefix(l, "time="):
		kv := rig.LogFields(l)
		switch {
		case kv["msg"] == "attested":
			p.say("T-Box: tboxd attested seq %s: batch %s (%s UTC), %s m, flags %s", kv["seq"], kv["batch"], batchClock(kv["batch"]), kv["meters"], kv["flags"])
		case kv["msg"] == "tboxd started" || kv["msg"] == "mqtt connected" || kv["msg"] == "tboxd stopped" ||
			kv["msg"] == "open span closed at stop":
			p.say("T-Box: tboxd %s", strings.TrimPrefix(l[strings.Index(l, "level="):], "level=INFO "))
		case kv["level"] == "WARN" || kv["level"] == "ERROR":
			p.say("T-Box: tboxd %s", l[strings.Index(l, "level="):])
		}
	}
}

func batchClock(s string) string {
	b, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return "?"
	}
	return time.Unix(b*vehicle.BatchSeconds, 0).UTC().Format("15:04")
}

// guestFacts records what the guest's console said; what is missing
// becomes a problem of the report.
func (r *Report) guestFacts(f *rig.Facts) {
	r.Guest = f
	if f.Epoch().IsZero() {
		r.problem(`guest: no "tboxd started" line`)
	}
	if f.FirstFrame == nil {
		r.problem("guest: candump saw no frame on vcan0")
	}
	if f.Truth == nil {
		r.problem("guest: no truth from vsim")
	}
	if f.VsimExit != 0 {
		r.problem("guest: vsim exited with status %d", f.VsimExit)
	}
	if f.TboxdExit != 0 {
		r.problem("guest: tboxd exited with status %d", f.TboxdExit)
	}
	if f.Depth != 0 {
		r.problem("guest: tboxd stopped with %d attestations not acked in its outbox", f.Depth)
	}
}
