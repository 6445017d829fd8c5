package mileage

import (
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// Flags of an attestation, README §C1 (the same values as package signer).
const (
	FlagRollback      uint32 = 0x01 // odometer went backwards; distance below the HWM not counted
	FlagJump          uint32 = 0x02 // odometer advanced faster than the plausible maximum speed
	FlagSpeedMismatch uint32 = 0x04 // integrated speed and odometer distance disagree
	FlagClock         uint32 = 0x08 // wall clock not trustworthy
	FlagCatchup       uint32 = 0x10 // span covers more than one batch
	FlagGap           uint32 = 0x20 // no odometer frame for > GapTimeout while moving, or agent restarted

	// observed are the flags that make a span worth an attestation on their own.
	observed = FlagRollback | FlagJump | FlagSpeedMismatch | FlagGap
)

// Defaults for the zero fields of Config, and fixed parameters of README §C1.
const (
	DefaultMaxSpeedKMH = 300
	DefaultGapTimeout  = 5 * time.Second
	DefaultResolution  = 100.0 // meters: covers odometers of 1 m to 0.1 km steps

	BatchSeconds     = 600             // length of a Stone-drop batch
	ClockStep        = 2 * time.Minute // a step back larger than this is a clock step
	JumpSlack        = time.Second     // JUMP tolerates frame times this much out of order
	ConfirmReadings  = 3               // a JUMP candidate is confirmed by this many readings on its course...
	ConfirmTime      = 5 * time.Second // ...spanning at least this long (the candidate's reading included)
	MismatchRatio    = 0.10            // SPEED_MISMATCH: relative to the odometer's advance...
	MismatchMeters   = 500.0           // ...and absolute
	UnknownMode      = "UNKNOWN"       // drive mode before the first drive-mode reading
	MaxModes         = 64              // distinct modes in one span; more are credited to UnknownMode
	MaxModeNameLen   = 128             // bytes; longer names are cut
	maxOdometer      = 1 << 53         // meters; readings beyond are ignored as undecodable
	maxSpeedKMH      = 1e6             // km/h; readings beyond are ignored as undecodable
	maxNanos         = 1<<62 - 1       // engine times are clamped to [0, maxNanos] (year 2116)
	batchNanos       = BatchSeconds * int64(time.Second)
	genesisBatch     = 2766336 // README §C6: 2022-08-07 00:00 China time
	defaultMinTimeNs = genesisBatch * batchNanos
)

// Config tunes an Engine. The zero value is valid: every zero field takes its default.
type Config struct {
	// MaxSpeedKMH is the JUMP threshold (profile plausibility.max_speed_kmh).
	// Zero or less: DefaultMaxSpeedKMH.
	MaxSpeedKMH float64
	// GapTimeout is how long the odometer may be silent while moving before
	// GAP. Zero or less: DefaultGapTimeout.
	GapTimeout time.Duration
	// Resolution is one step of the odometer signal in meters (the DBC scale
	// converted to meters: 100 for a 0.1 km signal), the JUMP tolerance.
	// Zero or less: DefaultResolution.
	Resolution float64
	// HasSpeed enables SPEED_MISMATCH: the profile has a speed signal.
	HasSpeed bool
	// MinTime is the earliest plausible wall clock, normally the agent's
	// build time; a reading stamped earlier means the clock is unset. Zero:
	// the start of Mileage Mining (batch 2766336).
	MinTime time.Time
	// TimeScale, above 1, says that frame times are compressed by that
	// factor (a bench replaying a drive faster than real time, the
	// agent's TimeScale). The tolerances that stand for real-time
	// imprecision, JumpSlack (frames handed over late or in a burst) and
	// ClockStep (a step back of the clock), are multiplied by it: a frame
	// 40 ms late is 9.6 s late in a drive compressed 240 times. 0 or 1: a
	// vehicle, real time.
	TimeScale float64
}

// ModeMeters is the distance driven in one drive mode.
type ModeMeters struct {
	Mode   string
	Meters uint64
}

// Span is a closed span: what one attestation reports.
type Span struct {
	Batch   uint64       // first batch covered: floor(unix/600)
	Batches uint32       // consecutive batches covered, >= 1; > 1 only with FlagCatchup
	Meters  uint64       // whole meters above the HWM credited in the span
	Modes   []ModeMeters // Meters split by drive mode: sorted by name, no zero entries
	Flags   uint32
	Start   time.Time // engine time the span opened (informational)
	End     time.Time // batch boundary or Stop time at which it closed (informational)
}

// Engine is the mileage state machine of one device. Every method that
// takes a time may return closed spans; the caller keeps them all. It is not
// safe for concurrent use: one goroutine feeds it.
type Engine struct {
	maxMps  float64 // meters per second
	gapNs   int64
	res     float64
	minNs   int64
	speedOK bool

	slackNs int64 // JumpSlack, times Config.TimeScale
	stepNs  int64 // ClockStep, times Config.TimeScale

	st      State
	modeIdx int // index of st.Mode in st.Span.Modes, -1 unknown
}

// New returns an engine resuming from st, or for a device that never read
// its odometer when st is nil. The engine keeps a copy of st.
func New(cfg Config, st *State) *Engine {
	e := &Engine{maxMps: cfg.MaxSpeedKMH / 3.6, gapNs: int64(cfg.GapTimeout), res: cfg.Resolution,
		minNs: defaultMinTimeNs, speedOK: cfg.HasSpeed, modeIdx: -1}
	if !(cfg.MaxSpeedKMH > 0) || math.IsInf(cfg.MaxSpeedKMH, 0) {
		e.maxMps = DefaultMaxSpeedKMH / 3.6
	}
	if e.gapNs <= 0 {
		e.gapNs = int64(DefaultGapTimeout)
	}
	if !(e.res > 0) || math.IsInf(e.res, 0) {
		e.res = DefaultResolution
	}
	if !cfg.MinTime.IsZero() {
		e.minNs = clampNanos(cfg.MinTime)
	}
	scale := 1.0
	if cfg.TimeScale > 1 && cfg.TimeScale <= 1e6 {
		scale = cfg.TimeScale
	}
	e.slackNs = int64(float64(JumpSlack) * scale)
	e.stepNs = int64(float64(ClockStep) * scale)
	if st != nil {
		e.st = st.clone()
	}
	return e
}

// State returns a snapshot from which New resumes exactly.
func (e *Engine) State() State { return e.st.clone() }

// Odometer feeds an odometer reading in meters taken at t. It returns the
// spans that t closed (nil almost always). A NaN, infinite or absurd reading
// (beyond ±2^53 m) only moves the clock.
func (e *Engine) Odometer(t time.Time, meters float64) []Span {
	out := e.advance(t)
	if meters == meters && meters <= maxOdometer && meters >= -maxOdometer {
		e.odometer(meters, e.readingTime(t))
	}
	return out
}

// readingTime is the time of a reading taken at t on the interval clock:
// its own frame time, not the clock's, which a Tick may have moved past it
// when the reading is handed over late (a busy T-Box), but never before the
// previous reading nor after the clock. So a backlog of readings read at
// once keeps the intervals between them, and does not look too fast.
func (e *Engine) readingTime(t time.Time) int64 {
	s := &e.st
	return min(max(clampNanos(t)+s.MonoOff, s.OdoTime), s.Mono)
}

// Mode feeds a drive-mode reading: the DBC value name, MODE_<n> for a value
// without one; "" means UnknownMode. Distance revealed from now on is
// credited to it. It returns the spans that t closed.
func (e *Engine) Mode(t time.Time, name string) []Span {
	out := e.advance(t)
	if name != e.st.Mode {
		name = cleanMode(name)
		if name != e.st.Mode {
			if s := &e.st; s.Cand && s.CandSplitMode == "" {
				// The pending candidate's course so far was driven in the
				// mode that ends here.
				s.CandSplitMode, s.CandSplitHi = e.mode(), s.CandHi
			}
			e.st.Mode = name
			e.modeIdx = -1
		}
	}
	return out
}

// Speed feeds a vehicle speed reading in km/h (its sign is ignored; NaN or
// beyond 10^6 km/h only moves the clock). It returns the spans that t closed.
func (e *Engine) Speed(t time.Time, kmh float64) []Span {
	out := e.advance(t)
	if kmh = math.Abs(kmh); kmh <= maxSpeedKMH {
		s := &e.st
		if kmh > 0 && !e.moving() {
			s.MovingSince = s.Mono // starts moving: silence counts from now
		}
		s.Speed, s.SpeedTime, s.SpeedKnown = kmh, s.Mono, true
	}
	return out
}

// Tick moves the clock to t without a reading, so that a span closes at its
// batch boundary even when no frame arrives. It returns the spans closed.
func (e *Engine) Tick(t time.Time) []Span { return e.advance(t) }

// Stop closes the open span at t (agent stopping, end of a replay) and
// returns the spans closed. While the outbox is full (SetBlocked) the open
// span stays in the State instead, to be resumed after a restart.
func (e *Engine) Stop(t time.Time) []Span {
	out := e.advance(t)
	if e.st.Blocked {
		return out
	}
	if sp, ok := e.close(e.st.Now); ok {
		out = append(out, sp)
	}
	e.open(e.st.Now)
	return out
}

// MarkClock tells whether the wall clock is untrustworthy from now on
// (kernel STA_UNSYNC, earlier than the build time, stepped by more than two
// minutes against the monotonic clock). Spans with anything in them while it
// is in effect get CLOCK.
func (e *Engine) MarkClock(untrusted bool) {
	if untrusted != e.st.Untrusted {
		e.st.Untrusted = untrusted
		e.st.Discont = true
	}
	if untrusted {
		e.st.Span.Clock = true
	}
}

// Restarted is called once after New resumed from a State saved before the
// agent went down. A span that had something in it gets GAP; the span is
// held open across batch boundaries until the first odometer reading, which
// credits the distance driven while the agent was down and gets GAP when it
// is higher than the last reading before the restart.
func (e *Engine) Restarted() {
	s := &e.st
	if !e.empty() {
		s.Span.Flags |= FlagGap
	}
	if s.Started {
		s.Resumed = true
	}
	s.SpeedKnown = false
}

// SetBlocked tells whether the outbox is full. While it is, spans are held
// open across batch boundaries; once unblocked, the held span closes at the
// next batch boundary as one CATCHUP span covering all its batches.
func (e *Engine) SetBlocked(blocked bool) { e.st.Blocked = blocked }

// advance moves the clocks to t, closing or holding the open span at batch
// boundaries, and returns the spans closed.
//
// There are two clocks. Now, for batches, is the frame time but never runs
// back by less than ClockStep and stays put while the clock is unset. Mono,
// for intervals (GAP, JUMP, SPEED_MISMATCH), follows the frame time too and
// never runs back, but is shifted at each clock change (unset, set, step,
// MarkClock) so that it neither jumps nor stops there.
func (e *Engine) advance(t time.Time) (out []Span) {
	s := &e.st
	sp := &s.Span
	raw := clampNanos(t)
	te := raw
	unset := raw < e.minNs
	switch {
	case unset: // clock unset: the batch clock runs on the estimate below
		if !s.Unset {
			s.Unset, s.Discont = true, true
		}
		sp.Clock = true
	case s.Now > 0 && raw < s.Now-e.stepNs: // clock stepped back
		s.Unset = false
		s.Discont = true
		sp.Clock = true
		out = e.stepBack(raw)
	default:
		if s.Unset {
			s.Unset, s.Discont = false, true
		}
		te = max(raw, s.Now)
	}
	if s.Discont {
		s.MonoOff, s.Discont = s.Mono-raw, false
	}
	mono := s.Mono
	s.Mono = min(max(s.Mono, raw+s.MonoOff), maxNanos)
	if unset {
		// The best estimate of the time: the last good time (the build
		// time if the clock was never set) plus the time elapsed since on
		// the interval clock. It is a lower bound, so batches stay in
		// order when the clock is set.
		base := s.Now
		if base == 0 {
			base = e.minNs
		}
		te = min(base+(s.Mono-mono), maxNanos)
	}
	s.Now = te
	if !sp.Open {
		e.open(te)
		return out
	}
	b := uint64(te / batchNanos)
	if !sp.BatchKnown && te >= e.minNs {
		// Opened before the clock was ever set: its content belongs to now.
		sp.Batch, sp.Last, sp.BatchKnown, sp.Start = b, b, true, te
	}
	if b > sp.Last {
		// GAP for the span ending here if the odometer fell silent before its end.
		boundary := int64(sp.Last+1) * batchNanos
		if over := e.silentFor(); over > 0 && te-over < boundary {
			sp.Flags |= FlagGap
		}
		switch {
		case e.empty():
			e.open(te)
		case s.Blocked || s.Resumed:
			sp.Last = b
			if sp.Last-sp.Batch >= math.MaxUint32 {
				sp.Batch = sp.Last - (math.MaxUint32 - 1)
			}
		default:
			if c, ok := e.close(boundary); ok {
				out = append(out, c)
			}
			e.open(te)
		}
	}
	if e.silentFor() > 0 {
		sp.Flags |= FlagGap
	}
	return out
}

// stepBack handles a clock step back to raw: the open span closes (or,
// while the outbox is full, its range moves to the new clock), and the span
// after it gets CLOCK too.
func (e *Engine) stepBack(raw int64) (out []Span) {
	sp := &e.st.Span
	b := uint64(raw / batchNanos)
	if !sp.Open || b >= sp.Batch && b <= sp.Last {
		return nil
	}
	switch {
	case e.empty():
	case e.st.Blocked:
		sp.Batch, sp.Last = min(sp.Batch, b), b
		return nil
	default:
		if c, ok := e.close(e.st.Now); ok {
			out = append(out, c)
		}
	}
	e.st.Now = raw
	e.open(raw)
	e.st.Span.Clock = true // which side of the step was right is unknown
	return out
}

// silentFor returns by how much the odometer's silence exceeds GapTimeout
// while a fresh speed reading says the car moves, or 0. Not inlined at its
// 2 calls (tboxd size).
//
//go:noinline
func (e *Engine) silentFor() int64 {
	s := &e.st
	if !s.Started || !s.SpeedKnown || s.Speed <= 0 || s.Mono-s.SpeedTime > e.gapNs {
		return 0
	}
	return max(s.Mono-max(s.OdoTime, s.MovingSince)-e.gapNs, 0)
}

// moving reports whether a fresh speed reading says the car moves.
func (e *Engine) moving() bool {
	s := &e.st
	return s.SpeedKnown && s.Speed > 0 && s.Mono-s.SpeedTime <= e.gapNs
}

// odometer applies a valid reading m taken at the engine's time.
func (e *Engine) odometer(m float64, now int64) {
	s := &e.st
	sp := &s.Span
	if !s.Started {
		s.Started, s.First, s.HWM, s.Odo, s.OdoTime = true, m, m, m, now
		s.JumpHWM, s.JumpTime, s.Resumed = m, now, false
		return
	}
	dt := max(now-s.OdoTime, 0)
	fresh := s.SpeedKnown && now-s.SpeedTime <= e.gapNs
	// Every reading, accepted or not, ends an interval of the speed
	// integral and of the odometer's silence.
	if e.speedOK && fresh && dt <= e.gapNs {
		sp.SpeedMeters += s.Speed / 3.6 * float64(dt) / 1e9
	}
	silent := fresh && s.Speed > 0 && now-max(s.OdoTime, s.MovingSince) > e.gapNs
	if silent {
		sp.Flags |= FlagGap
	}
	if e.plausible(m, now) {
		if s.Cand {
			// The readings returned to the earlier course: the candidate
			// was a glitch. Not credited; the span says JUMP.
			e.dropCand()
			sp.Flags |= FlagJump
		}
		e.accept(m, now, dt, fresh)
		return
	}
	// The reading before this one was on the candidate's course, if one is
	// pending: a plausible one would have dropped it, another replaced it.
	step := e.maxMps*float64(now-s.OdoTime+e.slackNs)/1e9 + e.res
	s.OdoTime = now
	if s.Cand && m >= s.CandHi-e.res && m-s.CandHi <= step {
		// The reading continues from the candidate.
		s.CandHi = max(s.CandHi, m)
		s.CandCount++
		if s.CandCount >= ConfirmReadings && now-s.CandTime >= int64(ConfirmTime) {
			e.confirm(m, now, fresh)
		}
		return
	}
	// A new candidate: implausible from the earlier course, and not
	// continuing an earlier candidate (which, if any, was a glitch).
	s.Cand, s.CandOdo, s.CandHi, s.CandTime, s.CandCount = true, m, m, now, 1
	s.CandSplitMode, s.CandSplitHi = "", 0
	sp.Flags |= FlagJump
}

// plausible reports whether a reading m at now is within the plausible
// course of the readings accepted so far: not above the HWM, or above it
// by no more than MaxSpeedKMH allows since the JUMP reference, with slack.
func (e *Engine) plausible(m float64, now int64) bool {
	s := &e.st
	if m <= s.HWM {
		return true
	}
	excess := m - s.JumpHWM - e.maxMps*float64(now-s.JumpTime)/1e9
	return excess <= e.res+e.maxMps*float64(e.slackNs)/1e9
}

// accept applies a reading m on the accepted course; dt is the time since
// the previous reading of any kind.
func (e *Engine) accept(m float64, now, dt int64, fresh bool) {
	s := &e.st
	sp := &s.Span
	prev := s.Odo
	// After a silence, an advance is evidence of unseen driving only
	// beyond what one odometer step (the reading before the silence was
	// rounded down) and the driving seen since the car started moving
	// again can explain.
	explained := e.res
	if s.MovingSince > s.OdoTime {
		explained += e.maxMps * float64(now-s.MovingSince) / 1e9
	}
	if dt > e.gapNs && m-prev > explained {
		sp.Flags |= FlagGap
	}
	e.resumedAt(m)
	if m != prev && min(m, prev) < s.HWM {
		sp.Flags |= FlagRollback
	}
	if e.speedOK && fresh && dt <= e.gapNs && m > prev {
		sp.OdoMeters += m - prev
	}
	e.raise(m)
	// JumpHWM/JumpTime is the accepted reading minimising HWM -
	// maxSpeed·time, so one comparison (plausible) covers every earlier
	// reading.
	if s.HWM-s.JumpHWM-e.maxMps*float64(now-s.JumpTime)/1e9 < 0 {
		s.JumpHWM, s.JumpTime = s.HWM, now
	}
	s.Odo, s.OdoTime = m, now
}

// confirm credits a candidate that the readings after it continued: the
// HWM rises to the highest reading of its course, with JUMP. m is the
// confirming reading.
func (e *Engine) confirm(m float64, now int64, fresh bool) {
	s := &e.st
	sp := &s.Span
	prev := s.Odo
	e.resumedAt(s.CandHi)
	if m != prev && min(m, prev) < s.HWM {
		sp.Flags |= FlagRollback
	}
	if e.speedOK && fresh && s.CandHi > prev {
		sp.OdoMeters += s.CandHi - prev
	}
	if s.CandSplitMode != "" {
		// Distance revealed before the mode changed goes to the mode
		// of then.
		cur := s.Mode
		s.Mode, e.modeIdx = s.CandSplitMode, -1
		e.raise(s.CandSplitHi)
		s.Mode, e.modeIdx = cur, -1
	}
	e.raise(s.CandHi)
	sp.Flags |= FlagJump
	e.dropCand()
	s.JumpHWM, s.JumpTime = s.HWM, now
	s.Odo, s.OdoTime = m, now
}

// dropCand forgets the pending candidate.
func (e *Engine) dropCand() {
	s := &e.st
	s.Cand, s.CandOdo, s.CandHi, s.CandTime, s.CandCount = false, 0, 0, 0, 0
	s.CandSplitMode, s.CandSplitHi = "", 0
}

// resumedAt handles the first accepted reading after a restart: GAP when
// it is higher than the last one before.
func (e *Engine) resumedAt(m float64) {
	s := &e.st
	if s.Resumed {
		if m > s.Odo {
			s.Span.Flags |= FlagGap
		}
		s.Resumed = false
	}
}

// raise credits the open span with the whole meters from the HWM to m, if
// m is higher, and raises the HWM.
func (e *Engine) raise(m float64) {
	s := &e.st
	if m > s.HWM {
		if c := int64(math.Floor(m)) - int64(math.Floor(s.HWM)); c > 0 {
			s.Span.Meters += uint64(c)
			e.credit(uint64(c))
		}
		s.HWM = m
	}
}

// credit adds meters to the current mode in the open span.
func (e *Engine) credit(m uint64) {
	sp := &e.st.Span
	if e.modeIdx < 0 || e.modeIdx >= len(sp.Modes) || sp.Modes[e.modeIdx].Mode != e.mode() {
		e.modeIdx = e.findMode(e.mode())
	}
	sp.Modes[e.modeIdx].Meters += m
}

func (e *Engine) mode() string {
	if e.st.Mode == "" {
		return UnknownMode
	}
	return e.st.Mode
}

// findMode returns the index of name in the open span's modes, adding it
// (or, when the span has MaxModes already, falling back to UnknownMode).
func (e *Engine) findMode(name string) int {
	sp := &e.st.Span
	for i := range sp.Modes {
		if sp.Modes[i].Mode == name {
			return i
		}
	}
	if len(sp.Modes) >= MaxModes-1 && name != UnknownMode {
		return e.findMode(UnknownMode)
	}
	sp.Modes = append(sp.Modes, ModeMeters{Mode: name})
	return len(sp.Modes) - 1
}

// empty reports whether the open span holds nothing worth an attestation.
func (e *Engine) empty() bool {
	sp := &e.st.Span
	return sp.Meters == 0 && sp.Flags&observed == 0 && !e.mismatch()
}

// mismatch reports SPEED_MISMATCH for the open span.
func (e *Engine) mismatch() bool {
	sp := &e.st.Span
	d := math.Abs(sp.OdoMeters - sp.SpeedMeters)
	return e.speedOK && d > MismatchMeters && d > MismatchRatio*sp.OdoMeters
}

// close turns the open span into a Span ending at end; ok is false when it
// makes no attestation.
func (e *Engine) close(end int64) (Span, bool) {
	sp := &e.st.Span
	flags := sp.Flags & observed
	if e.mismatch() {
		flags |= FlagSpeedMismatch
	}
	if sp.Meters == 0 && flags == 0 {
		return Span{}, false
	}
	if sp.Clock {
		flags |= FlagClock
	}
	batches := uint32(sp.Last - sp.Batch + 1)
	if batches > 1 {
		flags |= FlagCatchup
	}
	var modes []ModeMeters
	for _, m := range sp.Modes {
		if m.Meters > 0 {
			modes = append(modes, m)
		}
	}
	SortModes(modes)
	return Span{Batch: sp.Batch, Batches: batches, Meters: sp.Meters, Modes: modes, Flags: flags,
		Start: time.Unix(0, sp.Start).UTC(), End: time.Unix(0, max(end, sp.Start)).UTC()}, true
}

// SortModes sorts modes by name, as a span lists them. A span has at most
// MaxModes+1 of them: an insertion sort, rather than a slices.SortFunc
// instance of its own (9 KiB of tboxd).
func SortModes(modes []ModeMeters) {
	for i := 1; i < len(modes); i++ {
		for j := i; j > 0 && modes[j].Mode < modes[j-1].Mode; j-- {
			modes[j], modes[j-1] = modes[j-1], modes[j]
		}
	}
}

// open starts an empty span at te, reusing the modes buffer. Not inlined
// at its 5 calls (tboxd size).
//
//go:noinline
func (e *Engine) open(te int64) {
	s := &e.st
	b := uint64(te / batchNanos)
	s.Span = OpenSpan{Open: true, Batch: b, Last: b, BatchKnown: te >= e.minNs,
		Modes: s.Span.Modes[:0], Clock: s.Untrusted || s.Unset, Start: te}
	e.modeIdx = -1
}

// clampNanos returns t as Unix nanoseconds within [0, maxNanos]. Not
// inlined at its 3 calls (tboxd size).
//
//go:noinline
func clampNanos(t time.Time) int64 {
	sec := t.Unix()
	switch {
	case sec < 0:
		return 0
	case sec >= maxNanos/int64(time.Second):
		return maxNanos
	}
	return sec*1e9 + int64(t.Nanosecond())
}

// cleanMode returns name as a mode name: UnknownMode for "", valid UTF-8,
// at most MaxModeNameLen bytes.
func cleanMode(name string) string {
	if name == "" {
		return UnknownMode
	}
	if !utf8.ValidString(name) {
		name = strings.ToValidUTF8(name, "\uFFFD")
	}
	if len(name) > MaxModeNameLen {
		n := MaxModeNameLen
		for n > 0 && !utf8.RuneStart(name[n]) {
			n--
		}
		name = name[:n]
	}
	return name
}

// Candidate returns the highest reading of the pending JUMP candidate's
// course and how many readings it has, ok false when none is pending.
// Cheap: for per-reading use, where State would copy too much.
func (e *Engine) Candidate() (hi float64, count uint32, ok bool) {
	return e.st.CandHi, e.st.CandCount, e.st.Cand
}

// HWM returns the high-water mark, meters.
func (e *Engine) HWM() float64 { return e.st.HWM }
