package mileage

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// This file holds a drive simulator and an independent "truth" for the
// tests: what each batch must hold, computed from the readings fed alone.

// t0 is a Saturday morning well after Config.MinTime's default.
var t0 = time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)

func batchOf(t time.Time) uint64 { return uint64(t.Unix() / BatchSeconds) }

// recorder feeds an engine, collects its spans, and keeps the truth.
type recorder struct {
	t     testing.TB
	cfg   Config
	e     *Engine
	spans []Span

	started bool
	first   float64
	hwm     float64
	truth   map[uint64]uint64            // batch -> meters credited by readings in it
	truthM  map[uint64]map[string]uint64 // batch -> mode -> meters
	mode    string
	logging bool
	log     []event   // every call fed when logging, for replays
	now     time.Time // latest frame time fed: readings count at the engine's clock, which never runs back

	glitchesLow, glitchesHigh int // glitch frames fed by simulate, below and above the course
}

// event is one call fed to an engine.
type event struct {
	kind byte // 'o'dometer, 'm'ode, 's'peed, 't'ick, 'S'top
	t    time.Time
	v    float64
	name string
}

// feed applies ev to e.
func (ev event) feed(e *Engine) []Span {
	switch ev.kind {
	case 'o':
		return e.Odometer(ev.t, ev.v)
	case 'm':
		return e.Mode(ev.t, ev.name)
	case 's':
		return e.Speed(ev.t, ev.v)
	case 't':
		return e.Tick(ev.t)
	}
	return e.Stop(ev.t)
}

// at notes a frame time and returns the clock the reading counts at.
func (r *recorder) at(t time.Time) time.Time {
	if t.After(r.now) {
		r.now = t
	}
	return r.now
}

func newRecorder(t testing.TB, cfg Config) *recorder {
	return &recorder{t: t, cfg: cfg, e: New(cfg, nil), truth: map[uint64]uint64{},
		truthM: map[uint64]map[string]uint64{}, mode: UnknownMode}
}

func (r *recorder) add(s []Span) {
	r.t.Helper()
	for _, sp := range s {
		checkSpan(r.t, sp)
	}
	r.spans = append(r.spans, s...)
}

func (r *recorder) odo(t time.Time, m float64) {
	r.t.Helper()
	r.add(r.e.Odometer(t, m))
	if r.logging {
		r.log = append(r.log, event{kind: 'o', t: t, v: m})
	}
	t = r.at(t)
	if !r.started {
		r.started, r.first, r.hwm = true, m, m
		return
	}
	if m > r.hwm {
		d := uint64(math.Floor(m) - math.Floor(r.hwm))
		b := batchOf(t)
		r.truth[b] += d
		if r.truthM[b] == nil {
			r.truthM[b] = map[string]uint64{}
		}
		r.truthM[b][r.mode] += d
		r.hwm = m
	}
}

// glitch feeds a reading that is not the car's: the truth ignores it.
func (r *recorder) glitch(t time.Time, m float64) {
	r.t.Helper()
	r.add(r.e.Odometer(t, m))
	if r.logging {
		r.log = append(r.log, event{kind: 'o', t: t, v: m})
	}
	r.at(t)
}

func (r *recorder) setMode(t time.Time, name string) {
	r.t.Helper()
	r.add(r.e.Mode(t, name))
	if r.logging {
		r.log = append(r.log, event{kind: 'm', t: t, name: name})
	}
	r.at(t)
	r.mode = name
}

func (r *recorder) speed(t time.Time, kmh float64) { r.other(event{kind: 's', t: t, v: kmh}) }
func (r *recorder) tick(t time.Time)               { r.other(event{kind: 't', t: t}) }
func (r *recorder) stop(t time.Time)               { r.other(event{kind: 'S', t: t}) }

func (r *recorder) other(ev event) {
	r.t.Helper()
	r.add(ev.feed(r.e))
	if r.logging {
		r.log = append(r.log, ev)
	}
	r.at(ev.t)
}

// restart persists the engine's state through its binary form and resumes a
// new engine from it, as the agent does after a crash or power cut.
func (r *recorder) restart(restarted bool) {
	r.t.Helper()
	b, err := r.e.State().MarshalBinary()
	if err != nil {
		r.t.Fatalf("MarshalBinary: %v", err)
	}
	var st State
	if err := st.UnmarshalBinary(b); err != nil {
		r.t.Fatalf("UnmarshalBinary of a state the engine made: %v", err)
	}
	r.e = New(r.cfg, &st)
	if restarted {
		r.e.Restarted()
	}
}

// total is the sum of the meters of the spans returned so far.
func (r *recorder) total() uint64 {
	var n uint64
	for _, s := range r.spans {
		n += s.Meters
	}
	return n
}

// checkTelescoping asserts README §C1's identity: the spans returned plus the
// open span hold exactly floor(HWM) - floor(first reading), the test's own.
func (r *recorder) checkTelescoping() {
	r.t.Helper()
	if !r.started {
		return
	}
	want := uint64(math.Floor(r.hwm) - math.Floor(r.first))
	st := r.e.State()
	if got := r.total() + st.Span.Meters; got != want {
		r.t.Fatalf("emitted %d + open %d = %d meters, want floor(HWM %v) - floor(first %v) = %d",
			r.total(), st.Span.Meters, got, r.hwm, r.first, want)
	}
	if st.HWM != r.hwm || st.First != r.first {
		r.t.Fatalf("state HWM %v first %v, want %v %v", st.HWM, st.First, r.hwm, r.first)
	}
}

// checkBatches asserts that the spans put every meter into the batch range
// where the truth has it: spans with overlapping ranges (a Stop inside a
// batch) are grouped, and each group holds exactly the truth of its batches.
func (r *recorder) checkBatches() {
	r.t.Helper()
	type group struct {
		lo, hi uint64
		meters uint64
		modes  map[string]uint64
	}
	var groups []*group
	for _, s := range r.spans {
		hi := s.Batch + uint64(s.Batches) - 1
		if g := groups; len(g) > 0 && s.Batch <= g[len(g)-1].hi {
			last := g[len(g)-1]
			if s.Batch < last.lo {
				r.t.Fatalf("span at batch %d goes back before the previous span's %d", s.Batch, last.lo)
			}
			last.hi = max(last.hi, hi)
			last.meters += s.Meters
			for _, m := range s.Modes {
				last.modes[m.Mode] += m.Meters
			}
			continue
		}
		g := &group{lo: s.Batch, hi: hi, meters: s.Meters, modes: map[string]uint64{}}
		for _, m := range s.Modes {
			g.modes[m.Mode] += m.Meters
		}
		groups = append(groups, g)
	}
	covered := map[uint64]bool{}
	for _, g := range groups {
		var want uint64
		wantM := map[string]uint64{}
		for b := g.lo; b <= g.hi; b++ {
			covered[b] = true
			want += r.truth[b]
			for m, n := range r.truthM[b] {
				wantM[m] += n
			}
		}
		if g.meters != want {
			r.t.Fatalf("batches %d..%d: spans hold %d meters, truth %d", g.lo, g.hi, g.meters, want)
		}
		for m, n := range wantM {
			if n == 0 {
				delete(wantM, m)
			}
		}
		if !mapsEqual(g.modes, wantM) {
			r.t.Fatalf("batches %d..%d: modes %v, truth %v", g.lo, g.hi, g.modes, wantM)
		}
	}
	for b, n := range r.truth {
		if n > 0 && !covered[b] {
			r.t.Fatalf("batch %d: truth %d meters, no span covers it", b, n)
		}
	}
}

func mapsEqual(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// checkSpan asserts what every span must satisfy.
func checkSpan(t testing.TB, s Span) {
	t.Helper()
	var sum uint64
	for i, m := range s.Modes {
		sum += m.Meters
		if m.Meters == 0 || m.Mode == "" {
			t.Fatalf("span %+v: zero or unnamed mode entry %d", s, i)
		}
		if i > 0 && s.Modes[i-1].Mode >= m.Mode {
			t.Fatalf("span %+v: modes not sorted by name", s)
		}
	}
	switch {
	case sum != s.Meters:
		t.Fatalf("span %+v: modes sum %d, meters %d", s, sum, s.Meters)
	case s.Batches == 0:
		t.Fatalf("span %+v: batches 0", s)
	case (s.Batches > 1) != (s.Flags&FlagCatchup != 0):
		t.Fatalf("span %+v: CATCHUP must be set exactly when batches > 1", s)
	case s.Flags&^(observed|FlagClock|FlagCatchup) != 0:
		t.Fatalf("span %+v: unknown flag bits", s)
	case s.Meters == 0 && s.Flags&observed == 0:
		t.Fatalf("span %+v: an attestation with no meters and no observation", s)
	}
}

// odoKind is how the simulated car's odometer reports its distance.
type odoKind int

const (
	odoFloat     odoKind = iota // the exact distance, fractional meters
	odoMeter                    // whole meters
	odoTenthKM                  // 0.1 km steps, raw*100
	odoTenthKMfp                // 0.1 km steps, raw*0.1*1000 with float noise
)

func (k odoKind) reading(dist float64) float64 {
	switch k {
	case odoMeter:
		return math.Floor(dist)
	case odoTenthKM:
		return math.Floor(dist/100) * 100
	case odoTenthKMfp:
		return math.Floor(dist/100) * 0.1 * 1000
	}
	return dist
}

func (k odoKind) resolution() float64 {
	if k >= odoTenthKM {
		return 100
	}
	return 1
}

// simOptions choose the disturbances of a simulated day.
type simOptions struct {
	odo      odoKind
	hours    float64
	restarts bool // crashes and graceful restarts, state through MarshalBinary
	blocked  bool // outbox-full periods
	jitter   bool // frames up to 300 ms out of order
	log      bool // keep the calls in recorder.log
	glitches int  // up to this many glitch frames per phase (glitchValue)
	highOnly bool // glitches only above the course
}

// simulate drives a car for opts.hours: driving, then parked with the
// ignition on and, every other time, the T-Box asleep for up to 8 hours
// after it; driving with speed, odometer and drive-mode
// frames at 5 Hz and a tick every second. It returns the recorder after a
// final Stop.
func simulate(t testing.TB, seed uint64, opts simOptions) *recorder {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	cfg := Config{HasSpeed: true, Resolution: opts.odo.resolution()}
	r := newRecorder(t, cfg)
	r.logging = opts.log
	now := t0.Add(time.Duration(rng.Int64N(int64(24 * time.Hour))))
	end := now.Add(time.Duration(opts.hours * float64(time.Hour)))
	dist := rng.Float64() * 3e8 // meters on the odometer
	modes := []string{"ECO", "NORMAL", "SPORT", "MODE_7"}
	const step = 200 * time.Millisecond
	down := time.Time{} // agent down until then
	blockedUntil := time.Time{}
	// frame stamps a frame time, a little out of order with jitter.
	frame := func(at time.Time) time.Time {
		if opts.jitter && rng.IntN(4) == 0 {
			return at.Add(-time.Duration(rng.Int64N(int64(300 * time.Millisecond))))
		}
		return at
	}
	for i := 0; now.Before(end); i++ {
		phase := 2 - 2*(i%2) // drive, park with the ignition on, and again
		dur := time.Duration(rng.Int64N(int64(90*time.Minute))) + time.Minute
		kmh := 0.0
		target := 20 + rng.Float64()*130
		lastTick := now
		if phase == 2 && i%4 == 0 && i > 0 && down.IsZero() {
			// Parked a while: the T-Box sleeps before the next drive: graceful stop, no frames for
			// a while, restart.
			r.stop(now)
			r.restart(true)
			now = now.Add(time.Duration(rng.Int64N(int64(8 * time.Hour))))
		}
		glitchAt := map[int64]bool{}
		for range rng.IntN(opts.glitches + 1) {
			glitchAt[rng.Int64N(int64(dur/step))] = true
		}
		n := int64(0)
		for stop := now.Add(dur); now.Before(stop); now, n = now.Add(step), n+1 {
			if opts.restarts && down.IsZero() && rng.IntN(20000) == 0 {
				// crash: the agent is down for up to 15 minutes.
				r.restart(false)
				down = now.Add(time.Duration(rng.Int64N(int64(15 * time.Minute))))
			}
			if !down.IsZero() {
				if phase == 2 {
					dist += kmh / 3.6 * step.Seconds()
				}
				if now.Before(down) {
					continue
				}
				down = time.Time{}
				r.e.Restarted()
			}
			if opts.blocked && rng.IntN(30000) == 0 {
				r.e.SetBlocked(true)
				blockedUntil = now.Add(time.Duration(rng.Int64N(int64(2 * time.Hour))))
			}
			if !blockedUntil.IsZero() && now.After(blockedUntil) {
				r.e.SetBlocked(false)
				blockedUntil = time.Time{}
			}
			// Frames show the car as it is now; then it moves for a step.
			r.speed(frame(now), kmh)
			if glitchAt[n] {
				v, high := glitchValue(rng, r.hwm, opts.highOnly)
				if high {
					r.glitchesHigh++
				} else {
					r.glitchesLow++
				}
				r.glitch(frame(now), v)
			}
			r.odo(frame(now), opts.odo.reading(dist))
			if phase == 2 {
				kmh += (target - kmh) * 0.01
				kmh = max(0, kmh+rng.NormFloat64()*0.5)
				if rng.IntN(3000) == 0 {
					r.setMode(frame(now), modes[rng.IntN(len(modes))])
				}
			} else {
				kmh = 0
			}
			dist += kmh / 3.6 * step.Seconds()
			if now.Sub(lastTick) >= time.Second {
				r.tick(now)
				lastTick = now
			}
		}
		if rng.IntN(50) == 0 {
			r.checkTelescoping()
		}
	}
	if !down.IsZero() {
		r.e.Restarted()
	}
	r.e.SetBlocked(false)
	r.stop(now)
	r.checkTelescoping()
	if st := r.e.State(); st.Span.Meters != 0 {
		t.Fatalf("after Stop the open span still holds %d meters", st.Span.Meters)
	}
	return r
}

// flagsOf returns the union of the flags of spans.
func flagsOf(spans []Span) uint32 {
	var f uint32
	for _, s := range spans {
		f |= s.Flags
	}
	return f
}
