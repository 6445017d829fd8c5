package agent

import (
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"time"

	"github.com/csop/tbox/agent/mileage"
	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/can"
	"github.com/csop/tbox/signer"
	"github.com/csop/tbox/store"
)

// Outbox is what the Attester needs of the durable store.
type Outbox interface {
	Append(rec store.Record, state []byte) error
	Checkpoint(state []byte) error
	Last() (seq uint64, digest [32]byte)
	State() ([]byte, error)
	Stats() store.Stats
	// Flush makes the last checkpoint durable now.
	Flush() error
}

// stateVersion versions the state blob the Attester keeps in the outbox.
const stateVersion = 1

// savedState is the Attester's state blob.
type savedState struct {
	V       int            `json:"v"`
	Mileage []byte         `json:"mileage"`           // mileage.State, binary
	Pending []mileage.Span `json:"pending,omitempty"` // closed, not yet in the outbox
	// LastBatch is the last batch covered by the newest attestation: a
	// later span never starts before it (see flush).
	LastBatch uint64 `json:"last_batch,omitempty"`
}

// headroom is how many attestations must still fit in the outbox for the
// engine to keep closing per-batch spans; below it the engine holds one
// span that later closes as a CATCHUP span, so an Append never meets a
// full outbox with a span in hand.
const headroom = 4

// recordEstimate is a generous size of one stored attestation, in bytes.
const recordEstimate = 1024

// checkpointEvery is how often, in frame time, the engine's state is handed
// to the outbox (which itself decides how often it reaches the disk).
const checkpointEvery = 10 * time.Second

// AttesterConfig configures an Attester.
type AttesterConfig struct {
	ChainID uint64
	Profile *profile.Profile
	// MinTime is the agent's build time: a clock earlier than it is unset.
	MinTime time.Time
	// TimeScale is the agent's (Options.TimeScale): frame times are
	// compressed by it on a bench, and the engine's real-time tolerances
	// with them (mileage.Config.TimeScale).
	TimeScale float64
	// OnDurable, when set, is called with each attestation once it is
	// durable in the outbox, in seq order.
	OnDurable func(rec store.Record, a *signer.Attestation)
	Logger    *slog.Logger
}

// Attester turns profile frames into signed, durable attestations. It is
// not safe for concurrent use: one goroutine feeds it.
type Attester struct {
	cfg       AttesterConfig
	key       signer.Signer
	ob        Outbox
	dec       *profile.Decoder
	eng       *mileage.Engine
	readings  []profile.Reading
	pending   []mileage.Span
	blocked   bool
	lastCkpt  time.Time
	log       *slog.Logger
	lastBatch uint64 // last batch covered by the newest attestation
	restarted bool
	started   bool // the engine has its first odometer reading, durably
	resumeAt  time.Time
	made      uint64
}

// NewAttester resumes from the outbox's state (a fresh device when it has
// none) and makes durable any span that was closed but not stored before a
// restart.
func NewAttester(cfg AttesterConfig, key signer.Signer, ob Outbox) (*Attester, error) {
	if cfg.Profile == nil {
		return nil, errors.New("attester: no profile")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Attester{
		cfg:      cfg,
		key:      key,
		ob:       ob,
		dec:      cfg.Profile.NewDecoder(),
		readings: make([]profile.Reading, 0, 8),
		log:      log,
	}
	mcfg := mileage.Config{
		MaxSpeedKMH: cfg.Profile.MaxSpeedKmh(),
		HasSpeed:    cfg.Profile.Has(profile.Speed),
		Resolution:  cfg.Profile.Resolution(profile.Odometer),
		MinTime:     cfg.MinTime,
		TimeScale:   cfg.TimeScale,
	}
	blob, err := ob.State()
	if err != nil {
		return nil, errorf("attester state: %w", err)
	}
	if blob == nil {
		a.eng = mileage.New(mcfg, nil)
	} else {
		var st savedState
		if err := json.Unmarshal(blob, &st); err != nil {
			return nil, errorf("attester state: %w", err)
		}
		if st.V != stateVersion {
			return nil, errorf("attester state: version %d, expected %d", st.V, stateVersion)
		}
		var ms mileage.State
		if err := ms.UnmarshalBinary(st.Mileage); err != nil {
			return nil, errorf("attester state: %w", err)
		}
		a.eng = mileage.New(mcfg, &ms)
		a.eng.Restarted()
		a.restarted = true
		a.started = ms.Started
		a.resumeAt = fromNanos(ms.Now)
		if ms.Unset {
			// The batch clock runs on an estimate while the clock is
			// unset; the frames' own time is the interval clock's.
			a.resumeAt = fromNanos(ms.Mono - ms.MonoOff)
		}
		a.pending = st.Pending
		a.lastBatch = st.LastBatch
		a.logState("mileage state resumed")
	}
	a.updateBlocked()
	if err := a.flush(); err != nil {
		return nil, err
	}
	return a, nil
}

// ResumeTime is the frame time the restored state had reached: a replay
// skips frames older than it, which it has already accounted for. Zero for
// a fresh device.
func (a *Attester) ResumeTime() time.Time { return a.resumeAt }

// Restarted reports whether the Attester resumed from a saved state.
func (a *Attester) Restarted() bool { return a.restarted }

// Made returns how many attestations this Attester made durable.
func (a *Attester) Made() uint64 { return a.made }

// DecoderStats returns the frame decoder's counters.
func (a *Attester) DecoderStats() profile.Stats { return a.dec.Stats() }

// Progress is the mileage engine's open span: what the next attestation
// would report if the span closed now.
type Progress struct {
	Open    bool                 // the engine has seen an event since the last span closed
	Batch   uint64               // first batch the span covers
	Batches uint32               // batches it covers so far; > 1 only for a catch-up span
	Meters  uint64               // distance credited so far, whole meters
	Modes   []mileage.ModeMeters // Meters by drive mode: sorted by name, no zero entries
	Flags   uint32               // flags the span would carry now (signer.Flag...)
	Held    int                  // closed spans not yet in the outbox (it is full)
	// Candidate is how far above the high-water mark a pending JUMP
	// candidate reads (meters), 0 when none is pending: later readings
	// decide whether it is credited or a glitch.
	Candidate float64
}

// OpenSpan returns the open span. It copies the engine's state: cheap once
// a second, too dear for every frame.
func (a *Attester) OpenSpan() Progress {
	st := a.eng.State()
	sp := &st.Span
	p := Progress{Open: sp.Open, Batch: sp.Batch, Meters: sp.Meters, Held: len(a.pending)}
	if st.Cand {
		p.Candidate = st.CandHi - st.HWM
	}
	if !sp.Open {
		return p
	}
	p.Batches = uint32(sp.Last - sp.Batch + 1)
	p.Flags = sp.Flags & (mileage.FlagRollback | mileage.FlagJump | mileage.FlagGap)
	if d := math.Abs(sp.OdoMeters - sp.SpeedMeters); a.cfg.Profile.Has(profile.Speed) &&
		d > mileage.MismatchMeters && d > mileage.MismatchRatio*sp.OdoMeters {
		p.Flags |= mileage.FlagSpeedMismatch
	}
	if sp.Clock {
		p.Flags |= mileage.FlagClock
	}
	if p.Batches > 1 {
		p.Flags |= mileage.FlagCatchup
	}
	for _, m := range sp.Modes {
		if m.Meters > 0 {
			p.Modes = append(p.Modes, m)
		}
	}
	mileage.SortModes(p.Modes)
	return p
}

// Frame decodes one frame and feeds its readings to the mileage engine. It
// returns an error only when an attestation could not be made durable.
func (a *Attester) Frame(f *can.Frame) error {
	a.readings = a.dec.Decode(f, a.readings[:0])
	for i := range a.readings {
		if err := a.Reading(&a.readings[i]); err != nil {
			return err
		}
	}
	return nil
}

// Reading feeds one decoded reading.
func (a *Attester) Reading(r *profile.Reading) error {
	var spans []mileage.Span
	switch r.Kind {
	case profile.Odometer:
		candHi, _, wasCand := a.eng.Candidate()
		hwm := a.eng.HWM()
		spans = a.eng.Odometer(r.Time, r.Value)
		a.logJump(r, wasCand, candHi, hwm)
		if !a.started && a.eng.State().Started {
			// The first reading the device ever took anchors the
			// telescoping sum: it must survive a crash right after it.
			a.started = true
			if err := a.after(r.Time, spans); err != nil {
				return err
			}
			if err := a.checkpoint(r.Time); err != nil {
				return err
			}
			if err := a.ob.Flush(); err != nil {
				return errorf("checkpoint: %w", err)
			}
			return nil
		}
	case profile.DriveMode:
		spans = a.eng.Mode(r.Time, r.Mode)
	case profile.Speed:
		spans = a.eng.Speed(r.Time, r.Value)
	default:
		return nil
	}
	return a.after(r.Time, spans)
}

// logJump logs the JUMP candidate events of an odometer reading r: a new
// candidate, or a pending one resolved, its distance credited (confirmed,
// or overtaken by a reading on the plausible course) or dismissed as a
// glitch. wasCand, candHi and hwm are the engine's before the reading.
func (a *Attester) logJump(r *profile.Reading, wasCand bool, candHi, hwm float64) {
	_, n, cand := a.eng.Candidate()
	now := a.eng.HWM()
	switch {
	case cand && n == 1:
		a.log.Debug("jump candidate", "reading_m", r.Value, "hwm_m", hwm, "above_m", r.Value-hwm, "time", r.Time)
	case wasCand && !cand && now >= candHi:
		a.log.Debug("jump candidate credited", "reading_m", r.Value, "credited_m", math.Floor(now)-math.Floor(hwm), "time", r.Time)
	case wasCand && !cand:
		a.log.Debug("jump candidate dismissed: a glitch", "candidate_m", candHi, "reading_m", r.Value, "hwm_m", now, "time", r.Time)
	}
}

// logState logs the engine's state (what a restart resumes from).
func (a *Attester) logState(msg string) {
	st := a.eng.State()
	a.log.Info(msg, "started", st.Started, "first_m", st.First, "hwm_m", st.HWM, "odo_m", st.Odo,
		"odo_time", utcNanos(st.OdoTime-st.MonoOff), "mono_off", time.Duration(st.MonoOff),
		"now", utcNanos(st.Now), "jump_hwm_m", st.JumpHWM, "jump_time", utcNanos(st.JumpTime-st.MonoOff),
		"cand", st.Cand, "cand_hi_m", st.CandHi, "cand_count", st.CandCount,
		"span_meters", st.Span.Meters, "span_flags", st.Span.Flags, "pending", len(a.pending))
}

// Tick moves the engine's clock to now without a frame, so that a span
// closes at its batch boundary on a quiet bus.
func (a *Attester) Tick(now time.Time) error {
	a.updateBlocked()
	return a.after(now, a.eng.Tick(now))
}

// MarkClock tells the engine whether the wall clock is untrustworthy.
func (a *Attester) MarkClock(untrusted bool) { a.eng.MarkClock(untrusted) }

// Stop closes the open span (agent stopping, end of a replay) and makes
// everything durable.
func (a *Attester) Stop(now time.Time) error {
	a.updateBlocked()
	a.pending = append(a.pending, a.eng.Stop(now)...)
	if err := a.flush(); err != nil {
		return err
	}
	a.logState("mileage state at stop")
	return a.checkpoint(now)
}

func (a *Attester) after(t time.Time, spans []mileage.Span) error {
	if len(spans) > 0 {
		a.pending = append(a.pending, spans...)
		if err := a.flush(); err != nil {
			return err
		}
	}
	if t.Sub(a.lastCkpt) >= checkpointEvery || t.Before(a.lastCkpt) {
		return a.checkpoint(t)
	}
	return nil
}

func (a *Attester) checkpoint(t time.Time) error {
	a.lastCkpt = t
	blob, err := a.stateBlob(a.pending)
	if err != nil {
		return err
	}
	if err := a.ob.Checkpoint(blob); err != nil {
		return errorf("checkpoint: %w", err)
	}
	return nil
}

func (a *Attester) stateBlob(pending []mileage.Span) ([]byte, error) {
	ms := a.eng.State()
	mb, err := ms.MarshalBinary()
	if err != nil {
		return nil, errorf("mileage state: %w", err)
	}
	return json.Marshal(savedState{V: stateVersion, Mileage: mb, Pending: pending, LastBatch: a.lastBatch})
}

// flush signs and appends the pending spans in order. Each append carries
// the state with the spans after it still pending, so a cut between two
// appends loses none of them.
func (a *Attester) flush() error {
	for len(a.pending) > 0 {
		sp := a.pending[0]
		if sp.Batch < a.lastBatch {
			// The wall clock went back (a step, or old frames): the span
			// would start before the previous one ended, which the chain's
			// batch order forbids. It moves to that batch, keeping its end
			// when later, and gets CLOCK: the distance is kept, its timing
			// is marked unreliable.
			end := max(sp.Batch+uint64(sp.Batches), a.lastBatch+1)
			sp.Batch, sp.Batches = a.lastBatch, uint32(end-a.lastBatch)
			sp.Flags |= mileage.FlagClock
		}
		seq, prev := a.ob.Last()
		att := &signer.Attestation{
			V:       signer.Version,
			Device:  a.key.Address(),
			Seq:     seq + 1,
			Batch:   sp.Batch,
			Batches: sp.Batches,
			Meters:  sp.Meters,
			Prev:    prev,
			Flags:   sp.Flags,
		}
		if seq == 0 {
			att.Prev = [32]byte{}
		}
		for _, m := range sp.Modes {
			att.Modes = append(att.Modes, signer.ModeMeters{Mode: m.Mode, Meters: m.Meters})
		}
		if err := signer.Sign(a.key, a.cfg.ChainID, att); err != nil {
			return errorf("sign seq %d: %w", att.Seq, err)
		}
		prevLast := a.lastBatch
		a.lastBatch = att.Batch + uint64(att.Batches) - 1
		blob, err := a.stateBlob(a.pending[1:])
		if err != nil {
			a.lastBatch = prevLast
			return err
		}
		rec := store.Record{Seq: att.Seq, Digest: signer.Digest(a.cfg.ChainID, att), Wire: att.AppendWire(nil)}
		if err := a.ob.Append(rec, blob); err != nil {
			a.lastBatch = prevLast
			if errors.Is(err, store.ErrFull) {
				// Keep it pending (in memory and in the next checkpoint)
				// and hold further spans until the backend acks.
				a.log.Warn("outbox full: attestation held", "seq", att.Seq, "err", err)
				a.blocked = true
				a.eng.SetBlocked(true)
				return nil
			}
			return errorf("outbox: %w", err)
		}
		a.pending = a.pending[1:]
		a.made++
		a.log.Info("attested", "seq", att.Seq, "batch", att.Batch, "batches", att.Batches,
			"meters", att.Meters, "flags", signer.FlagNames(att.Flags))
		if a.cfg.OnDurable != nil {
			a.cfg.OnDurable(rec, att)
		}
	}
	if len(a.pending) == 0 {
		a.pending = nil
	}
	a.updateBlocked()
	return nil
}

// updateBlocked holds per-batch spans while the outbox has less than
// headroom attestations of room left.
func (a *Attester) updateBlocked() {
	st := a.ob.Stats()
	full := st.Full || (st.MaxBytes > 0 && st.Bytes+headroom*recordEstimate > st.MaxBytes) ||
		(st.MaxRecords > 0 && st.Depth+headroom > st.MaxRecords)
	if full != a.blocked {
		a.log.Warn("outbox headroom", "full", full, "depth", st.Depth, "bytes", st.Bytes)
		a.blocked = full
	}
	a.eng.SetBlocked(full || len(a.pending) > 0)
}
