package mileage

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// benchDrive feeds e a 240×-compressed bench drive as the emulated T-Box
// sees it (hil/rig: canplayer replays a drive 240 times faster than real
// time, tboxd runs with can.time_scale = 240): odometer frames due every
// 0.5 s of drive time at 100 km/h on a 10 m signal, and ticks every
// second of real time (240 s of drive time). Real-time hiccups of the
// emulated CPU become long ones in drive time:
//   - the player stalls for up to 200 ms (48 s of drive time) and then
//     sends the overdue frames at once: a burst of readings with one time;
//   - the T-Box's reader stalls for up to 600 ms (144 s, more than
//     ClockStep) while the ticks run: frames with their own times arrive
//     after a tick past them.
//
// The drive ends with a player stall, so its last readings come in a burst
// just before Stop. It returns the first and the last reading and the
// spans.
func benchDrive(t *testing.T, e *Engine, seed uint64) (first, last float64, spans []Span) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 240))
	const scale = 240
	real := func(ms int) time.Duration { return time.Duration(ms) * time.Millisecond * scale }
	t0 := time.Date(2026, 2, 2, 7, 0, 0, 0, time.UTC)
	const n = 4000
	type frame struct {
		stamp, delivered time.Time
		odo              float64
	}
	fr := make([]frame, n)
	odo := 14_457_050.0
	var release time.Time
	for i := range fr {
		odo += 100 / 3.6 * 0.5
		due := t0.Add(time.Duration(i) * 500 * time.Millisecond)
		switch {
		case i == n-21: // the last readings come in a burst
			release = t0.Add(time.Duration(n-1) * 500 * time.Millisecond)
		case rng.IntN(40) == 0 && due.After(release):
			release = due.Add(real(50 + rng.IntN(150)))
		}
		fr[i] = frame{stamp: due, odo: math.Floor(odo/10) * 10}
		if release.After(due) {
			fr[i].stamp = release
		}
		fr[i].delivered = fr[i].stamp
	}
	for i := 0; i < n-21; i++ {
		if rng.IntN(200) == 0 {
			// The reader stalls: the frames until 600 ms of real time
			// after this one arrive together then, after a tick past them.
			until := fr[i].stamp.Add(real(600))
			for j := i; j < n && fr[j].stamp.Before(until); j++ {
				fr[j].delivered = until
				i = j
			}
		}
	}
	first, last = fr[0].odo, fr[n-1].odo
	tick := t0.Add(real(1000))
	var stalled time.Time
	for _, f := range fr {
		for !tick.After(f.delivered) {
			spans = append(spans, e.Tick(tick.Add(-real(40)))...) // ReadLag: 2 × a 20 ms coalesce
			tick = tick.Add(real(1000))
		}
		if f.delivered.After(f.stamp) && !f.delivered.Equal(stalled) {
			// A tick ran while the reader was stalled.
			stalled = f.delivered
			spans = append(spans, e.Tick(stalled.Add(-real(40)))...)
		}
		spans = append(spans, e.Speed(f.stamp, 100)...)
		spans = append(spans, e.Odometer(f.stamp, f.odo)...)
	}
	spans = append(spans, e.Stop(fr[n-1].stamp)...)
	return first, last, spans
}

// TestBenchTimeScale: on a bench that compresses time (TimeScale), the
// engine's real-time tolerances compress with it, so the emulator's CPU
// hiccups neither look like odometer jumps nor like clock steps. Without
// it (TimeScale 0 on the same frames) this is how TestPowerCuts in the
// emulated T-Box lost distance: a burst of genuine readings after a
// player stall is a JUMP candidate, and one still pending when tboxd
// stops is not credited by that run; a frame read after a tick 600 ms of
// real time past it is a clock step, with CLOCK.
func TestBenchTimeScale(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		e := New(Config{HasSpeed: true, MaxSpeedKMH: 250, Resolution: 10, TimeScale: 240}, nil)
		first, last, spans := benchDrive(t, e, seed)
		var total uint64
		var flags uint32
		for _, s := range spans {
			total += s.Meters
			flags |= s.Flags
		}
		if want := uint64(math.Floor(last) - math.Floor(first)); total != want {
			t.Errorf("seed %d: the spans credit %d m, want floor(last %.0f) - floor(first %.0f) = %d (a candidate pending: %v)",
				seed, total, last, first, want, e.State().Cand)
		}
		if flags&(FlagJump|FlagClock|FlagRollback) != 0 {
			t.Errorf("seed %d: flags 0x%02x: a hiccup of the bench read as JUMP, CLOCK or ROLLBACK", seed, flags)
		}
	}

	// The same frames at real-time tolerances: the cause, reproduced.
	e := New(Config{HasSpeed: true, MaxSpeedKMH: 250, Resolution: 10}, nil)
	first, last, spans := benchDrive(t, e, 1)
	var total uint64
	var flags uint32
	for _, s := range spans {
		total += s.Meters
		flags |= s.Flags
	}
	want := uint64(math.Floor(last) - math.Floor(first))
	if total >= want || !e.State().Cand || flags&FlagJump == 0 || flags&FlagClock == 0 {
		t.Errorf("at real-time tolerances: %d m of %d, candidate pending %v, flags 0x%02x; want fewer meters, a candidate pending at Stop, JUMP and CLOCK",
			total, want, e.State().Cand, flags)
	}
	t.Logf("at real-time tolerances: %d m of %d credited, %d m pending as a JUMP candidate at Stop", total, want, want-total)
}
