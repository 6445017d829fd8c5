package mileage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// StateVersion is the version byte of the binary form State.MarshalBinary
// writes. Version 2 added the JUMP candidate; UnmarshalBinary still reads
// version 1 (no candidate pending).
const StateVersion = 2

// Errors of State.UnmarshalBinary; each comes wrapped in a *StateError.
var (
	ErrStateVersion = errors.New("unknown mileage state version")
	ErrStateCorrupt = errors.New("corrupt mileage state")
)

// StateError says which field of a binary State is wrong, where, and why.
type StateError struct {
	Field    string // State field, e.g. "HWM" or "Span.Modes[2].Mode"
	Offset   int    // byte offset of the field
	Expected string
	Found    string
	Err      error // ErrStateVersion or ErrStateCorrupt
}

func (e *StateError) Error() string {
	return fmt.Sprintf("%v: %s at byte %d: expected %s, found %s", e.Err, e.Field, e.Offset, e.Expected, e.Found)
}

func (e *StateError) Unwrap() error { return e.Err }

// State is everything an Engine needs to resume exactly: persist it with the
// attestations it produced (a checkpoint), restore it with New. Times are
// Unix nanoseconds of the frame clock. The fields are exported for
// inspection (diagnostic shell, JSON); an Engine only trusts a State it made
// or one that UnmarshalBinary accepted.
type State struct {
	Started    bool    // an odometer reading was ever taken
	First      float64 // the first odometer reading ever, meters: the telescoping base
	HWM        float64 // high-water mark, meters
	Odo        float64 // last odometer reading, meters
	OdoTime    int64   // Mono time of the last odometer reading
	JumpHWM    float64 // JUMP reference: HWM and Mono time of the reading
	JumpTime   int64   // minimising HWM - MaxSpeed·time
	SpeedKnown bool
	Speed      float64 // last speed, km/h, >= 0
	SpeedTime  int64   // Mono time of the last speed reading
	// MovingSince is the Mono time the speed last went above zero from
	// zero, unknown or stale: GAP counts odometer silence only from then.
	MovingSince int64
	Mode        string // current drive mode; "" before the first drive-mode reading
	Now         int64  // batch clock; 0 before the first event with a set clock
	Mono        int64  // interval clock, never runs back
	MonoOff     int64  // Mono minus frame time since the last clock change
	Untrusted   bool   // MarkClock(true) in effect
	Unset       bool   // the last event was stamped before Config.MinTime
	Blocked     bool   // SetBlocked(true) in effect
	Resumed     bool   // restarted, waiting for the first odometer reading
	Discont     bool   // the clock changed: shift Mono at the next event
	// Cand is set while a JUMP candidate is pending: a reading above the
	// plausible course, not yet the HWM (see the package documentation).
	Cand      bool
	CandOdo   float64 // the candidate reading, meters
	CandHi    float64 // the highest reading on its course so far
	CandTime  int64   // Mono time of the candidate reading
	CandCount uint32  // readings on its course, the candidate included
	// CandSplitMode and CandSplitHi record the first drive-mode change
	// while the candidate is pending: its distance up to CandSplitHi
	// belongs to CandSplitMode, the mode before the change (distance goes
	// to the mode current at the reading that reveals it). "" and 0 when
	// the mode did not change.
	CandSplitMode string
	CandSplitHi   float64
	Span          OpenSpan
}

// OpenSpan is the span being accumulated.
type OpenSpan struct {
	Open        bool   // the engine has seen an event
	Batch       uint64 // first batch covered
	Last        uint64 // last batch covered so far
	BatchKnown  bool   // Batch comes from a set clock
	Meters      uint64
	Modes       []ModeMeters // unsorted, may hold zero entries; sums to Meters
	Flags       uint32       // observed flags so far (ROLLBACK, JUMP, GAP)
	Clock       bool         // the clock was untrustworthy at some moment
	Start       int64
	OdoMeters   float64 // SPEED_MISMATCH: odometer advance over intervals with fresh speed
	SpeedMeters float64 // SPEED_MISMATCH: integrated speed over the same intervals
}

func (s State) clone() State {
	s.Span.Modes = append([]ModeMeters(nil), s.Span.Modes...)
	return s
}

// Bits of the boolean word of the binary form.
const (
	bitStarted = 1 << iota
	bitSpeedKnown
	bitUntrusted
	bitUnset
	bitBlocked
	bitResumed
	bitDiscont
	bitOpen
	bitBatchKnown
	bitClock
	bitCand
	bitsKnown   = 1<<iota - 1
	bitsKnownV1 = bitsKnown &^ bitCand
)

// MarshalBinary encodes s, big-endian:
//
//	0  version (2)
//	1  uint16 booleans: Started, SpeedKnown, Untrusted, Unset, Blocked,
//	   Resumed, Discont, Span.Open, Span.BatchKnown, Span.Clock, Cand
//	   (bit 0 first)
//	3  float64 First, HWM, Odo, Speed, Span.OdoMeters, Span.SpeedMeters, JumpHWM
//	59 int64 JumpTime, OdoTime, SpeedTime, Now, Mono, Span.Start, MovingSince
//	115 int64 MonoOff
//	123 uint64 Span.Batch, Span.Last, Span.Meters
//	147 uint32 Span.Flags
//	151 Mode: uvarint length, bytes
//	    Span.Modes: uvarint count, then each: uvarint length, bytes, uvarint meters
//	then (version 2) float64 CandOdo, CandHi; int64 CandTime; uint32 CandCount;
//	     CandSplitMode: uvarint length, bytes; float64 CandSplitHi
//
// Version 1 is the same without the Cand bit and the bytes after Span.Modes.
func (s State) MarshalBinary() ([]byte, error) {
	var bits uint16
	for i, b := range s.bools() {
		if *b {
			bits |= 1 << i
		}
	}
	buf := make([]byte, 0, 128+len(s.Mode)+len(s.Span.Modes)*24)
	buf = append(buf, StateVersion, byte(bits>>8), byte(bits))
	for _, f := range s.floats() {
		buf = appendUint64(buf, math.Float64bits(*f))
	}
	for _, t := range s.times() {
		buf = appendUint64(buf, uint64(*t))
	}
	for _, v := range [...]uint64{uint64(s.MonoOff), s.Span.Batch, s.Span.Last, s.Span.Meters} {
		buf = appendUint64(buf, v)
	}
	buf = binary.BigEndian.AppendUint32(buf, s.Span.Flags)
	buf = appendString(buf, s.Mode)
	buf = appendUvarint(buf, uint64(len(s.Span.Modes)))
	for _, m := range s.Span.Modes {
		buf = appendString(buf, m.Mode)
		buf = appendUvarint(buf, m.Meters)
	}
	for _, v := range [...]uint64{math.Float64bits(s.CandOdo), math.Float64bits(s.CandHi), uint64(s.CandTime)} {
		buf = appendUint64(buf, v)
	}
	buf = binary.BigEndian.AppendUint32(buf, s.CandCount)
	buf = appendString(buf, s.CandSplitMode)
	buf = appendUint64(buf, math.Float64bits(s.CandSplitHi))
	return buf, nil
}

// appendUint64 is binary.BigEndian.AppendUint64, not inlined at each of its
// calls (tboxd size).
//
//go:noinline
func appendUint64(buf []byte, v uint64) []byte {
	return binary.BigEndian.AppendUint64(buf, v)
}

// appendUvarint is binary.AppendUvarint, not inlined (tboxd size).
//
//go:noinline
func appendUvarint(buf []byte, v uint64) []byte {
	return binary.AppendUvarint(buf, v)
}

// appendString appends s with its uvarint length; not inlined (tboxd size).
//
//go:noinline
func appendString(buf []byte, s string) []byte {
	return append(appendUvarint(buf, uint64(len(s))), s...)
}

func (s *State) bools() []*bool {
	return []*bool{&s.Started, &s.SpeedKnown, &s.Untrusted, &s.Unset, &s.Blocked,
		&s.Resumed, &s.Discont, &s.Span.Open, &s.Span.BatchKnown, &s.Span.Clock, &s.Cand}
}

func (s *State) floats() []*float64 {
	return []*float64{&s.First, &s.HWM, &s.Odo, &s.Speed, &s.Span.OdoMeters, &s.Span.SpeedMeters, &s.JumpHWM}
}

func (s *State) times() []*int64 {
	return []*int64{&s.JumpTime, &s.OdoTime, &s.SpeedTime, &s.Now, &s.Mono, &s.Span.Start, &s.MovingSince}
}

var floatNames = [...]string{"First", "HWM", "Odo", "Speed", "Span.OdoMeters", "Span.SpeedMeters", "JumpHWM"}
var timeNames = [...]string{"JumpTime", "OdoTime", "SpeedTime", "Now", "Mono", "Span.Start", "MovingSince"}

// decoder reads the binary form, remembering the first error.
type decoder struct {
	b   []byte
	off int
	err error
}

// Not inlined: an error path called from many places, kept as one copy.
//
//go:noinline
func (d *decoder) fail(field, expected, found string) {
	if d.err == nil {
		d.err = &StateError{Field: field, Offset: d.off, Expected: expected, Found: found, Err: ErrStateCorrupt}
	}
}

func (d *decoder) fixed(field string, n int) []byte {
	if d.err != nil {
		return make([]byte, n)
	}
	if len(d.b)-d.off < n {
		d.fail(field, fmt.Sprintf("%d bytes", n), fmt.Sprintf("%d bytes left", len(d.b)-d.off))
		return make([]byte, n)
	}
	p := d.b[d.off : d.off+n]
	d.off += n
	return p
}

// uint64 reads a big-endian uint64 (zero after an error).
func (d *decoder) uint64(field string) uint64 {
	return binary.BigEndian.Uint64(d.fixed(field, 8))
}

// Range texts of the decoder's checks.
const (
	wantOdometer = "a number in [-2^53, 2^53]"
	wantTime     = "Unix nanoseconds in [0, 4611686018427387903]" // maxNanos
	wantMonoOff  = "nanoseconds in [-4611686018427387903, 4611686018427387903]"
)

// float reads a float64 that must lie in [lo, hi] (NaN never does).
func (d *decoder) float(field string, lo, hi float64, want string) float64 {
	f := math.Float64frombits(d.uint64(field))
	if d.err == nil && !(f >= lo && f <= hi) {
		d.off -= 8
		d.fail(field, want, formatG(f))
	}
	return f
}

// formatG is fmt's %g of f, without fmt and not inlined (tboxd size).
//
//go:noinline
func formatG(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// nanos reads an int64 that must lie in [lo, maxNanos].
func (d *decoder) nanos(field string, lo int64, want string) int64 {
	t := int64(d.uint64(field))
	if d.err == nil && (t < lo || t > maxNanos) {
		d.off -= 8
		d.fail(field, want, strconv.FormatInt(t, 10))
	}
	return t
}

func (d *decoder) uvarint(field string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail(field, "a uvarint", "truncated or overlong bytes")
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) str(field string, maxLen int) string {
	at := d.off
	n := d.uvarint(field + " length")
	if d.err != nil {
		return ""
	}
	if n > uint64(maxLen) {
		d.off = at
		d.fail(field, fmt.Sprintf("at most %d bytes", maxLen), strconv.FormatUint(n, 10))
		return ""
	}
	p := d.fixed(field, int(n))
	if d.err == nil && !utf8.Valid(p) {
		d.off = at
		d.fail(field, "UTF-8", fmt.Sprintf("%q", p))
	}
	return string(p)
}

// UnmarshalBinary decodes data written by MarshalBinary (version 2, or
// version 1 of an earlier agent), checking that every field is one an
// Engine can produce. On error, s is unchanged and the error is a
// *StateError wrapping ErrStateVersion or ErrStateCorrupt.
func (s *State) UnmarshalBinary(data []byte) error {
	if len(data) == 0 || data[0] != StateVersion && data[0] != 1 {
		found := "no bytes"
		if len(data) > 0 {
			found = strconv.Itoa(int(data[0]))
		}
		return &StateError{Field: "version", Expected: fmt.Sprintf("1 or %d", StateVersion), Found: found, Err: ErrStateVersion}
	}
	v1 := data[0] == 1
	known := uint16(bitsKnown)
	if v1 {
		known = bitsKnownV1
	}
	d := &decoder{b: data, off: 1}
	var n State
	bits := binary.BigEndian.Uint16(d.fixed("booleans", 2))
	if bits&^known != 0 {
		d.off -= 2
		d.fail("booleans", fmt.Sprintf("bits within 0x%04x", known), fmt.Sprintf("0x%04x", bits))
	}
	for i, b := range n.bools() {
		*b = bits&(1<<i) != 0
	}
	for i, f := range n.floats() {
		lo, hi, want := float64(-maxOdometer), float64(maxOdometer), wantOdometer
		switch i {
		case 3:
			lo, hi, want = 0, maxSpeedKMH, "km/h in [0, 1e6]"
		case 4, 5: // the mismatch sums
			lo, hi, want = 0, math.MaxFloat64, "a finite number >= 0"
		}
		*f = d.float(floatNames[i], lo, hi, want)
	}
	for i, t := range n.times() {
		*t = d.nanos(timeNames[i], 0, wantTime)
	}
	n.MonoOff = d.nanos("MonoOff", -maxNanos, wantMonoOff)
	sp := &n.Span
	sp.Batch = d.uint64("Span.Batch")
	sp.Last = d.uint64("Span.Last")
	if d.err == nil && (sp.Last < sp.Batch || sp.Last-sp.Batch >= math.MaxUint32 || sp.Last > uint64(maxNanos/batchNanos)) {
		d.off -= 16
		d.fail("Span.Batch/Last", "Batch <= Last < Batch+2^32-1, a batch up to year 2116", fmt.Sprintf("%d..%d", sp.Batch, sp.Last))
	}
	sp.Meters = d.uint64("Span.Meters")
	sp.Flags = binary.BigEndian.Uint32(d.fixed("Span.Flags", 4))
	if d.err == nil && sp.Flags&^(FlagRollback|FlagJump|FlagGap) != 0 {
		d.off -= 4
		d.fail("Span.Flags", "only ROLLBACK, JUMP, GAP (0x23)", fmt.Sprintf("0x%02x", sp.Flags))
	}
	n.Mode = d.str("Mode", MaxModeNameLen)
	at := d.off
	count := d.uvarint("Span.Modes count")
	if d.err == nil && count > MaxModes {
		d.off = at
		d.fail("Span.Modes count", fmt.Sprintf("at most %d", MaxModes), strconv.FormatUint(count, 10))
	}
	var sum uint64
	for i := 0; d.err == nil && i < int(count); i++ {
		field := "Span.Modes[" + strconv.Itoa(i) + "]"
		at := d.off
		name := d.str(field+".Mode", MaxModeNameLen)
		if d.err == nil && name == "" {
			d.off = at
			d.fail(field+".Mode", "a name", `""`)
		}
		for _, m := range sp.Modes {
			if d.err == nil && m.Mode == name {
				d.off = at
				d.fail(field+".Mode", "a name not seen before", fmt.Sprintf("%q again", name))
			}
		}
		m := d.uvarint(field + ".Meters")
		if d.err == nil && sum+m < sum {
			d.fail(field+".Meters", "a sum within 2^64", "an overflow")
		}
		sum += m
		sp.Modes = append(sp.Modes, ModeMeters{Mode: name, Meters: m})
	}
	if !v1 {
		n.CandOdo = d.float("CandOdo", -maxOdometer, maxOdometer, wantOdometer)
		n.CandHi = d.float("CandHi", -maxOdometer, maxOdometer, wantOdometer)
		n.CandTime = d.nanos("CandTime", 0, wantTime)
		n.CandCount = binary.BigEndian.Uint32(d.fixed("CandCount", 4))
		n.CandSplitMode = d.str("CandSplitMode", MaxModeNameLen)
		n.CandSplitHi = d.float("CandSplitHi", -maxOdometer, maxOdometer, wantOdometer)
	}
	switch {
	case d.err != nil:
	case d.off != len(data):
		d.fail("end", "no more bytes", fmt.Sprintf("%d bytes", len(data)-d.off))
	case sum != sp.Meters:
		d.fail("Span.Modes", fmt.Sprintf("meters summing to Span.Meters = %d", sp.Meters), strconv.FormatUint(sum, 10))
	case n.Started && (n.HWM < n.First || n.HWM < n.Odo):
		d.fail("HWM", fmt.Sprintf("at least First = %g and Odo = %g", n.First, n.Odo), formatG(n.HWM))
	case !n.Started && (n.HWM != 0 || n.First != 0 || n.Odo != 0 || sp.Meters != 0 || n.Resumed || n.Cand):
		d.fail("Started", "true when an odometer reading is recorded", "false")
	case n.Cand && !(n.CandOdo > n.HWM && n.CandHi >= n.CandOdo && n.CandCount >= 1 && n.CandTime <= n.Mono):
		d.fail("Cand", fmt.Sprintf("a candidate above HWM %g (CandOdo <= CandHi, CandCount >= 1, CandTime <= Mono)", n.HWM),
			fmt.Sprintf("CandOdo %g, CandHi %g, CandCount %d, CandTime %d", n.CandOdo, n.CandHi, n.CandCount, n.CandTime))
	case n.Cand && n.CandSplitMode != "" && !(n.CandSplitHi >= n.CandOdo && n.CandSplitHi <= n.CandHi):
		d.fail("CandSplitHi", fmt.Sprintf("within the candidate's course [%g, %g]", n.CandOdo, n.CandHi), formatG(n.CandSplitHi))
	case (n.CandSplitMode == "") != (n.CandSplitHi == 0):
		d.fail("CandSplitMode", "a mode with CandSplitHi, or neither", fmt.Sprintf("%q and %g", n.CandSplitMode, n.CandSplitHi))
	case !n.Cand && (n.CandOdo != 0 || n.CandHi != 0 || n.CandTime != 0 || n.CandCount != 0 || n.CandSplitMode != ""):
		d.fail("Cand", "zero candidate fields when none is pending", "non-zero")
	}
	if d.err != nil {
		return d.err
	}
	*s = n
	return nil
}
