package signer

import (
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"unicode/utf8"
)

// Version is the wire version "v" of attestations this package reads and writes.
const Version = 1

// Limits a verifier enforces beyond README §C1, to bound the work on input
// from outside. The agent never comes near them.
const (
	MaxModes       = 64  // entries in Modes
	MaxModeNameLen = 128 // bytes of one mode name
)

// Flags: what the agent saw within the span (README §C1). The agent is a
// witness, not a judge: the backend decides.
const (
	FlagRollback      uint32 = 0x01 // odometer went backwards; distance below the high-water mark not counted
	FlagJump          uint32 = 0x02 // odometer advanced faster than the plausible maximum speed
	FlagSpeedMismatch uint32 = 0x04 // integrated speed and odometer distance disagree
	FlagClock         uint32 = 0x08 // wall clock not trustworthy
	FlagCatchup       uint32 = 0x10 // span covers more than one batch
	FlagGap           uint32 = 0x20 // no odometer frame for > 5 s while moving, or agent restarted

	KnownFlags = FlagRollback | FlagJump | FlagSpeedMismatch | FlagClock | FlagCatchup | FlagGap
)

var flagNames = [...]string{"ROLLBACK", "JUMP", "SPEED_MISMATCH", "CLOCK", "CATCHUP", "GAP"}

// FlagNames returns the names of the bits set in flags, lowest bit first
// (the README contract names; an unknown bit as its hex value, e.g. "0x40").
func FlagNames(flags uint32) []string {
	var names []string
	for flags != 0 {
		i := bits.TrailingZeros32(flags)
		flags &^= 1 << i
		if i < len(flagNames) {
			names = append(names, flagNames[i])
		} else {
			names = append(names, fmt.Sprintf("0x%02x", uint32(1)<<i))
		}
	}
	return names
}

// ModeMeters is the distance driven in one drive mode.
type ModeMeters struct {
	Mode   string // DBC value name, MODE_<n>, or UNKNOWN
	Meters uint64
}

// Attestation is a signed mileage attestation, README §C1. Sig covers all
// other fields but V through [Digest].
type Attestation struct {
	V       int     // wire version, [Version]
	Device  Address // address of the device key
	Seq     uint64  // 1, 2, 3, ... per device
	Batch   uint64  // first 10-minute batch covered: floor(unix/600)
	Batches uint32  // number of consecutive batches covered, >= 1
	Meters  uint64  // odometer distance over the span, whole meters
	Modes   []ModeMeters
	Prev    [32]byte // digest signed for seq-1; zero for seq 1
	Flags   uint32
	Sig     Signature
}

// Validate checks the fields a signature cannot vouch for: a known version,
// seq and batches not zero, known flags, and modes sorted by name, without
// repeats or zero entries, summing to Meters. It returns the first problem;
// the error wraps [ErrUnknownVersion], [ErrMalformed], [ErrUnknownFlags],
// [ErrBadModes] or [ErrModesSum].
func (a *Attestation) Validate() error {
	if errs := a.fieldProblems(); len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// fieldProblems returns every problem Validate checks for.
func (a *Attestation) fieldProblems() []error {
	var pr problems
	if a.V != Version {
		pr.add(ErrUnknownVersion, "v is %d, expected %d", a.V, Version)
	}
	if a.Seq == 0 {
		pr.add(ErrMalformed, "seq is 0; seqs start at 1")
	}
	if a.Batches == 0 {
		pr.add(ErrMalformed, "batches is 0, expected at least 1")
	}
	if u := a.Flags &^ KnownFlags; u != 0 {
		pr.add(ErrUnknownFlags, "flags 0x%02x have unknown bits %s (known: 0x%02x)", a.Flags, strings.Join(FlagNames(u), ","), KnownFlags)
	}
	if len(a.Modes) > MaxModes {
		pr.add(ErrBadModes, "%d modes, at most %d allowed", len(a.Modes), MaxModes)
		return pr.errs
	}
	var sum uint64
	overflow := false
	for i, m := range a.Modes {
		switch {
		case m.Mode == "":
			pr.add(ErrBadModes, "modes[%d]: empty mode name", i)
		case len(m.Mode) > MaxModeNameLen:
			pr.add(ErrBadModes, "modes[%d]: mode name of %d bytes, at most %d allowed", i, len(m.Mode), MaxModeNameLen)
		case !utf8.ValidString(m.Mode):
			pr.add(ErrBadModes, "modes[%d]: mode name %q is not valid UTF-8", i, m.Mode)
		}
		if m.Meters == 0 {
			pr.add(ErrBadModes, "modes[%d] %q: 0 meters; zero entries must be left out", i, m.Mode)
		}
		if i > 0 && m.Mode <= a.Modes[i-1].Mode {
			pr.add(ErrBadModes, "modes[%d] %q after %q: expected sorted by name, each name once", i, m.Mode, a.Modes[i-1].Mode)
		}
		var carry uint64
		sum, carry = bits.Add64(sum, m.Meters, 0)
		overflow = overflow || carry != 0
	}
	if overflow {
		pr.add(ErrModesSum, "modes sum to more than 2^64-1 m, meters is %d", a.Meters)
	} else if sum != a.Meters {
		pr.add(ErrModesSum, "modes sum to %d m, meters is %d", sum, a.Meters)
	}
	return pr.errs
}

// problems collects an attestation's problems. Its add is one call, not a
// closure inlined at each of fieldProblems' checks.
type problems struct{ errs []error }

//go:noinline
func (p *problems) add(kind error, format string, args ...any) {
	p.errs = append(p.errs, newFieldError(kind, format, args...))
}

// Sign validates a, checks that a.Device is the signer's address, and sets
// a.Sig to the signature over Digest(chainID, a).
func Sign(s Signer, chainID uint64, a *Attestation) error {
	if addr := s.Address(); a.Device != addr {
		return errorf("attestation device %s, signing key %s: %w", a.Device, addr, ErrSignerMismatch)
	}
	if err := a.Validate(); err != nil {
		return errorf("attestation seq %d: %w", a.Seq, err)
	}
	sig, err := s.SignDigest(Digest(chainID, a))
	if err != nil {
		return errorf("attestation seq %d: %w", a.Seq, err)
	}
	if v := sig[64]; v != 27 && v != 28 {
		return errorf("attestation seq %d: signer returned v %d, expected 27 or 28: %w", a.Seq, v, ErrBadSignature)
	}
	a.Sig = sig
	return nil
}

// Recover returns the address whose key made a.Sig over Digest(chainID, a).
// It refuses a malformed signature ([ErrBadSignature]) and a high s
// ([ErrHighS]). It does not check the other fields; see [Verify].
func Recover(chainID uint64, a *Attestation) (Address, error) {
	return recoverDigest(Digest(chainID, a), a.Sig)
}

// Verify checks a completely: [Attestation.Validate], then that a.Sig is a
// low-s signature by a.Device over Digest(chainID, a). A wrong chain ID or
// any changed field makes the signature recover to another address
// ([ErrSignerMismatch]).
func Verify(chainID uint64, a *Attestation) error {
	if err := a.Validate(); err != nil {
		return err
	}
	return verifySig(chainID, a)
}

func verifySig(chainID uint64, a *Attestation) error {
	addr, err := Recover(chainID, a)
	if err != nil {
		return err
	}
	if addr != a.Device {
		return &fieldError{ErrSignerMismatch, fmt.Sprintf("%v: signature recovers to %s, device is %s (a changed field, or signed for another chain ID than %d)",
			ErrSignerMismatch, addr, a.Device, chainID)}
	}
	return nil
}

// newFieldError is a problem of kind, described by format and args.
//
// Not inlined: an error path called from many places, kept as one copy.
//
//go:noinline
func newFieldError(kind error, format string, args ...any) *fieldError {
	return &fieldError{kind, kind.Error() + ": " + fmt.Sprintf(format, args...)}
}

// kindOf returns the sentinel an error of this package wraps.
//
// Not inlined: an error path called from many places, kept as one copy.
//
//go:noinline
func kindOf(err error) error {
	if fe, ok := errors.AsType[*fieldError](err); ok {
		return fe.kind
	}
	return err
}
