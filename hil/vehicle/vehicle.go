// Package vehicle simulates a car's CAN traffic for a vehicle profile, seeded and deterministic, with the mileage ground truth it implies.
package vehicle

import (
	"container/heap"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"time"

	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/can"
	"github.com/csop/tbox/can/isotp"
)

// BiometricMarker fills the payload of every simulated biometric frame, so a
// test can prove such bytes never reach the agent's output.
const BiometricMarker = "BIOMETRC"

// Scenario describes a simulated drive. The zero value of an option turns it
// off; the rates default to the sample car's (odometer 10 Hz, speed 50 Hz,
// drive mode 5 Hz). Everything random derives from Seed: the same Scenario
// and profile give the same frames, byte for byte.
type Scenario struct {
	Seed     int64
	Start    time.Time
	Duration time.Duration

	// Bus names the default bus in the frames (signals without bus = "...",
	// noise and biometric frames). Default "can0".
	Bus string
	// StartOdometer in meters; 0 picks one between 5,000 and 150,000 km.
	StartOdometer float64
	// OdometerHz, SpeedHz, ModeHz are the frame rates while the car is
	// awake.
	OdometerHz, SpeedHz, ModeHz float64

	// Parking splits the drive into trips of 10 to 90 minutes separated by
	// parked periods of 5 minutes to 3 hours, during which the bus is silent.
	Parking bool
	// ModeChanges changes the drive mode every 2 to 15 minutes of driving,
	// now and then to a value without a name (MODE_<n>).
	ModeChanges bool
	// StopAndGo adds traffic: stops of 5 to 60 s every 1 to 4 minutes.
	StopAndGo bool
	// Noise is the number of unrelated messages on the bus, 10 to 100 Hz
	// each, with random payloads.
	Noise int
	// Biometric sends the profile's biometric messages (BiometricKeys) at
	// 10 Hz with BiometricMarker as payload.
	Biometric bool
	// Rollbacks is the number of times the reported odometer falls back by 1
	// to 5 km (and counts on from there).
	Rollbacks int
	// Jumps is the number of times the reported odometer leaps 50 to 500 km.
	Jumps int
	// SecondDevice adds another sender of the odometer message, 1 Hz,
	// reporting the odometer off by 1 to 20 km (either way).
	SecondDevice bool
	// Gaps is the number of windows of 6 to 60 s without odometer frames.
	Gaps int
	// SilentAt and SilentFor make one more window without odometer
	// frames (or, for an odometer that is asked for, without answers):
	// from Start+SilentAt, SilentFor long.
	SilentAt, SilentFor time.Duration

	// ECU, for a profile whose odometer is asked for (source "obd" or
	// "uds"), receives the odometer instead of the frames: it answers a
	// tester on a live bus (see ECU). Without it, the frames of a tester's
	// polling are played: its request, the ECU's answer (and the tester's
	// flow control before the rest of a multi-frame answer), at the
	// odometer's rate.
	ECU *ECU
}

// Sink receives frames. A SocketCAN writer, a candump log writer or a test
// collector satisfies it.
type Sink interface {
	WriteFrame(*can.Frame) error
}

// SinkFunc adapts a function to a Sink.
type SinkFunc func(*can.Frame) error

// WriteFrame calls f.
func (f SinkFunc) WriteFrame(fr *can.Frame) error { return f(fr) }

// ErrScenario reports a scenario the profile cannot play.
var ErrScenario = errors.New("invalid scenario")

const physicsStep = 100 * time.Millisecond

// keyOffDelay is how long the bus stays awake after the car stops at the
// end of a trip.
const keyOffDelay = 5 * time.Second

// source kinds
const (
	srcOdometer = iota
	srcSpeed
	srcMode
	srcSecond
	srcNoise
	srcBiometric
)

type source struct {
	kind   int
	period time.Duration
	next   time.Time
	key    can.Key
	idx    int // tie-break for equal times: deterministic order
}

type sourceHeap []*source

func (h sourceHeap) Len() int { return len(h) }
func (h sourceHeap) Less(i, j int) bool {
	if !h[i].next.Equal(h[j].next) {
		return h[i].next.Before(h[j].next)
	}
	return h[i].idx < h[j].idx
}
func (h sourceHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *sourceHeap) Push(x any)   { *h = append(*h, x.(*source)) }
func (h *sourceHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

type event struct {
	at    time.Time
	delta float64 // meters added to the reported odometer
}

type window struct{ from, to time.Time }

// sim is the running state of a scenario.
type sim struct {
	s Scenario
	p *profile.Profile
	// Independent random streams, so that turning an option on or off does
	// not change the rest of the drive.
	rng     *rand.Rand // trips, parking, speed targets
	traffic *rand.Rand // stop-and-go
	modeRng *rand.Rand // drive modes
	inject  *rand.Rand // rollbacks, jumps, gaps, second device
	bus     *rand.Rand // source phases, jitter, noise
	out     func(*can.Frame) error
	tr      *truthBuilder

	t         time.Time
	end       time.Time
	awake     bool
	phaseEnd  time.Time // end of the current trip or parking
	ending    bool      // trip over: braking to a stop before parking
	stoppedAt time.Time // when the car stood still at the end of a trip

	dist      float64 // true distance since start, meters
	prevDist  float64 // dist at the start of the current physics step
	offset    float64 // reported - true odometer (rollbacks, jumps)
	speed     float64 // m/s
	target    float64 // m/s
	cruise    float64 // m/s
	nextSpeed time.Time
	stopUntil time.Time
	nextStop  time.Time
	mode      uint64
	modes     []uint64
	nextMode  time.Time
	second    float64 // second device's offset, meters

	events []event
	gaps   []window
	srcs   sourceHeap
	all    []*source
	frame  can.Frame
	noise  []byte
	poll   *profile.Poll // the odometer is asked for
}

// Frames plays the scenario with profile p, calling fn with each frame in
// time order, and returns the ground truth. The frame passed to fn is reused:
// fn must copy what it keeps. An error from fn stops the scenario.
func (s Scenario) Frames(p *profile.Profile, fn func(*can.Frame) error) (Truth, error) {
	if s.Duration <= 0 {
		return Truth{}, fmt.Errorf("%w: duration %v, want > 0", ErrScenario, s.Duration)
	}
	if s.Start.IsZero() {
		return Truth{}, fmt.Errorf("%w: no start time", ErrScenario)
	}
	if s.Bus == "" {
		s.Bus = "can0"
	}
	def := func(v *float64, d float64) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&s.OdometerHz, 10)
	def(&s.SpeedHz, 50)
	def(&s.ModeHz, 5)
	stream := func(i int64) *rand.Rand { return rand.New(rand.NewSource(s.Seed*7919 + i)) }
	m := &sim{s: s, p: p, rng: stream(0), traffic: stream(1), modeRng: stream(2), inject: stream(3), bus: stream(4), out: fn}
	m.tr = newTruthBuilder(p, s)
	if err := m.setup(); err != nil {
		return Truth{}, err
	}
	if err := m.run(); err != nil {
		return m.tr.truth(m.dist), err
	}
	return m.tr.truth(m.dist), nil
}

func between(r *rand.Rand, lo, hi float64) float64 { return lo + r.Float64()*(hi-lo) }

func dur(r *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(r.Int63n(int64(hi-lo)+1))
}

func (m *sim) setup() error {
	s := m.s
	m.t = s.Start
	m.end = s.Start.Add(s.Duration)
	start := s.StartOdometer
	if start <= 0 {
		start = between(m.rng, 5e6, 150e6)
	}
	if r := m.p.Resolution(profile.Odometer); r > 0 {
		start = math.Floor(start/r) * r
	}
	m.offset = start
	// Drive modes: the value table, and one unnamed value if one fits.
	for _, n := range m.p.ModeNames() {
		if v, ok := m.p.ModeValue(n); ok {
			m.modes = append(m.modes, v)
		}
	}
	for v := 0; v < 64; v++ {
		if raw, ok := m.p.ModeValue(fmt.Sprintf("MODE_%d", v)); ok {
			if len(m.modes) == 0 || s.ModeChanges {
				m.modes = append(m.modes, raw)
			}
			break
		}
	}
	if len(m.modes) == 0 {
		return fmt.Errorf("%w: the drive mode signal has no value", ErrScenario)
	}
	m.mode = m.modes[m.modeRng.Intn(len(m.modes))]
	// Injections.
	inj := m.inject
	at := func() time.Time { return s.Start.Add(time.Duration(inj.Int63n(int64(s.Duration)))) }
	for i := 0; i < s.Rollbacks; i++ {
		m.events = append(m.events, event{at: at(), delta: -between(inj, 1000, 5000)})
	}
	for i := 0; i < s.Jumps; i++ {
		m.events = append(m.events, event{at: at(), delta: between(inj, 50e3, 500e3)})
	}
	sortEvents(m.events)
	for i := 0; i < s.Gaps; i++ {
		from := at()
		m.gaps = append(m.gaps, window{from, from.Add(dur(inj, 6*time.Second, 60*time.Second))})
	}
	if s.SilentFor > 0 {
		from := s.Start.Add(s.SilentAt)
		m.gaps = append(m.gaps, window{from, from.Add(s.SilentFor)})
	}
	m.poll, _ = m.p.Poll()
	if s.ECU != nil && m.poll == nil {
		return fmt.Errorf("%w: an ECU answers an odometer that is asked for; this profile's is broadcast", ErrScenario)
	}
	if s.SecondDevice {
		m.second = between(inj, 1000, 20000)
		if inj.Intn(2) == 0 {
			m.second = -m.second
		}
	}
	// Sources.
	hz := func(f float64) time.Duration { return time.Duration(float64(time.Second) / f) }
	odo, _ := m.p.Signal(profile.Odometer)
	m.addSource(srcOdometer, hz(s.OdometerHz), odo.Key)
	if m.p.Has(profile.Speed) {
		sp, _ := m.p.Signal(profile.Speed)
		m.addSource(srcSpeed, hz(s.SpeedHz), sp.Key)
	}
	md, _ := m.p.Signal(profile.DriveMode)
	m.addSource(srcMode, hz(s.ModeHz), md.Key)
	if s.SecondDevice {
		m.addSource(srcSecond, time.Second, odo.Key)
	}
	if s.Noise > 0 {
		used := map[can.Key]bool{}
		for _, b := range m.p.Buses() {
			for _, k := range m.p.Filter(b).Keys() {
				used[k] = true
			}
		}
		for _, k := range m.p.BiometricKeys() {
			used[k] = true
		}
		for n := 0; n < s.Noise; {
			k := can.Key{ID: uint32(m.bus.Intn(can.MaxID + 1))}
			if used[k] {
				continue
			}
			used[k] = true
			m.addSource(srcNoise, hz(between(m.bus, 10, 100)), k)
			n++
		}
	}
	if s.Biometric {
		for _, k := range m.p.BiometricKeys() {
			m.addSource(srcBiometric, hz(10), k)
		}
	}
	m.wake(m.t)
	return nil
}

func sortEvents(ev []event) {
	for i := 1; i < len(ev); i++ {
		for j := i; j > 0 && ev[j].at.Before(ev[j-1].at); j-- {
			ev[j], ev[j-1] = ev[j-1], ev[j]
		}
	}
}

func (m *sim) addSource(kind int, period time.Duration, key can.Key) {
	m.all = append(m.all, &source{kind: kind, period: period, key: key, idx: len(m.all)})
}

// wake starts a trip at t: every source restarts with a random phase.
func (m *sim) wake(t time.Time) {
	m.awake, m.ending = true, false
	m.srcs = m.srcs[:0]
	for _, src := range m.all {
		src.next = t.Add(time.Duration(m.bus.Int63n(int64(src.period))))
		m.srcs = append(m.srcs, src)
	}
	heap.Init(&m.srcs)
	m.cruise = between(m.rng, 30, 130) / 3.6
	m.target = m.cruise
	m.nextSpeed = t.Add(dur(m.rng, 20*time.Second, 120*time.Second))
	m.nextStop = t.Add(dur(m.traffic, time.Minute, 4*time.Minute))
	m.nextMode = t.Add(dur(m.modeRng, 2*time.Minute, 15*time.Minute))
	if m.s.Parking {
		m.phaseEnd = t.Add(dur(m.rng, 10*time.Minute, 90*time.Minute))
	} else {
		m.phaseEnd = m.end
	}
}

func (m *sim) run() error {
	for m.t.Before(m.end) {
		if !m.awake {
			park := dur(m.rng, 5*time.Minute, 3*time.Hour)
			m.t = m.t.Add(park).Truncate(physicsStep)
			if !m.t.Before(m.end) {
				return nil
			}
			m.wake(m.t)
		}
		m.physics()
		next := m.t.Add(physicsStep)
		for len(m.srcs) > 0 && m.srcs[0].next.Before(next) && m.srcs[0].next.Before(m.end) {
			src := m.srcs[0]
			if err := m.emit(src); err != nil {
				return err
			}
			src.next = src.next.Add(time.Duration(float64(src.period) * between(m.bus, 0.97, 1.03)))
			heap.Fix(&m.srcs, 0)
		}
		m.t = next
		if m.ending && m.speed == 0 {
			// Like a real car, the bus stays awake a few seconds after
			// the car stops (until the key is off), so the last frames
			// report the final odometer before the bus goes silent.
			if m.stoppedAt.IsZero() {
				m.stoppedAt = m.t
			} else if m.t.Sub(m.stoppedAt) >= keyOffDelay {
				m.awake, m.stoppedAt = false, time.Time{}
			}
		}
	}
	return nil
}

// physics advances the car by one step from m.t.
func (m *sim) physics() {
	t := m.t
	if !m.ending && m.s.Parking && !t.Before(m.phaseEnd) {
		m.ending, m.target = true, 0
	}
	if !m.ending {
		if !t.Before(m.nextSpeed) {
			m.target = m.cruise * between(m.rng, 0.6, 1.1)
			m.nextSpeed = t.Add(dur(m.rng, 20*time.Second, 120*time.Second))
		}
		if m.s.StopAndGo {
			if !t.Before(m.nextStop) {
				m.stopUntil = t.Add(dur(m.traffic, 5*time.Second, 60*time.Second))
				m.nextStop = m.stopUntil.Add(dur(m.traffic, time.Minute, 4*time.Minute))
			}
		}
		if m.s.ModeChanges && !t.Before(m.nextMode) {
			m.mode = m.modes[m.modeRng.Intn(len(m.modes))]
			m.nextMode = t.Add(dur(m.modeRng, 2*time.Minute, 15*time.Minute))
		}
	}
	target := m.target
	if t.Before(m.stopUntil) {
		target = 0
	}
	dt := physicsStep.Seconds()
	switch {
	case m.speed < target:
		m.speed = math.Min(target, m.speed+2.0*dt)
	case m.speed > target:
		m.speed = math.Max(target, m.speed-3.0*dt)
	}
	m.prevDist = m.dist
	m.dist += m.speed * dt
	for len(m.events) > 0 && !m.events[0].at.After(t) {
		m.offset += m.events[0].delta
		m.events = m.events[1:]
	}
}

func (m *sim) inGap(t time.Time) bool {
	for _, g := range m.gaps {
		if !t.Before(g.from) && t.Before(g.to) {
			return true
		}
	}
	return false
}

// reported returns the odometer the cluster shows at t: the true distance
// since the step, plus the offsets, floored to the signal's resolution.
func (m *sim) reported(t time.Time) float64 {
	// The distance at t, between the step's start (prevDist) and its end
	// (dist): monotone, so braking never makes the odometer step back.
	frac := min(max(t.Sub(m.t).Seconds()/physicsStep.Seconds(), 0), 1)
	v := m.offset + m.prevDist + (m.dist-m.prevDist)*frac
	if r := m.p.Resolution(profile.Odometer); r > 0 {
		v = math.Floor(v/r) * r
	}
	return v
}

func (m *sim) emit(src *source) error {
	t := src.next
	var err error
	switch src.kind {
	case srcOdometer:
		if m.poll != nil {
			return m.emitPoll(t)
		}
		if m.inGap(t) {
			return nil
		}
		m.frame, err = m.p.Encode(profile.Odometer, m.reported(t))
	case srcSecond:
		v := m.reported(t) + m.second
		if r := m.p.Resolution(profile.Odometer); r > 0 {
			v = math.Floor(v/r) * r
		}
		m.frame, err = m.p.Encode(profile.Odometer, math.Max(v, 0))
	case srcSpeed:
		m.frame, err = m.p.Encode(profile.Speed, m.speed*3.6)
	case srcMode:
		m.frame, err = m.p.Encode(profile.DriveMode, float64(m.mode))
	case srcNoise:
		m.frame = can.Frame{ID: src.key.ID, Len: 8}
		if src.key.Extended {
			m.frame.Flags = can.Extended
		}
		m.bus.Read(m.frame.Data[:8])
	case srcBiometric:
		m.frame = can.Frame{ID: src.key.ID, Len: 8}
		if src.key.Extended {
			m.frame.Flags = can.Extended
		}
		copy(m.frame.Data[:], BiometricMarker)
	}
	if err != nil {
		return fmt.Errorf("%w: at %s: %w", ErrScenario, t.UTC().Format(time.RFC3339Nano), err)
	}
	m.frame.Time = t
	if m.frame.Bus == "" {
		m.frame.Bus = m.s.Bus
	}
	m.tr.observe(&m.frame, src.kind, m.offset+m.dist)
	return m.out(&m.frame)
}

// emitPoll plays one request of a polled odometer at t: to the ECU on a live
// bus, or as the frames a recording of the polling shows.
func (m *sim) emitPoll(t time.Time) error {
	silent := m.inGap(t)
	if m.s.ECU != nil {
		m.s.ECU.Set(m.reported(t), silent)
		return nil
	}
	req, err := isotp.SingleFrame(m.poll.Request, m.poll.Payload())
	if err != nil {
		return err
	}
	out := []can.Frame{req}
	if !silent {
		raw, err := m.poll.Raw(m.reported(t))
		if err != nil {
			return fmt.Errorf("%w: at %s: %w", ErrScenario, t.UTC().Format(time.RFC3339Nano), err)
		}
		resp, err := isotp.Segment(m.poll.Response, m.poll.Query.Response(raw))
		if err != nil {
			return err
		}
		out = append(out, resp[0])
		if len(resp) > 1 {
			out = append(out, isotp.FlowControl(m.poll.Request))
			out = append(out, resp[1:]...)
		}
	}
	bus := m.poll.Bus
	if bus == "" {
		bus = m.s.Bus
	}
	for i := range out {
		m.frame = out[i]
		m.frame.Time, m.frame.Bus = t, bus
		m.tr.observe(&m.frame, srcOdometer, m.offset+m.dist)
		if err := m.out(&m.frame); err != nil {
			return err
		}
	}
	return nil
}
