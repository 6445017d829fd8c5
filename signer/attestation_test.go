package signer

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

const testChainID = 20220807

// sampleAttestation returns a valid unsigned attestation by key.
func sampleAttestation(key Signer, seq uint64) *Attestation {
	return &Attestation{
		V: Version, Device: key.Address(), Seq: seq, Batch: 2811234 + seq, Batches: 1, Meters: 10412,
		Modes: []ModeMeters{{"ECO", 2412}, {"SPORT", 8000}},
		Flags: FlagJump,
	}
}

func signed(t testing.TB, key Signer, a *Attestation) *Attestation {
	t.Helper()
	if err := Sign(key, testChainID, a); err != nil {
		t.Fatal(err)
	}
	return a
}

func cloneAttestation(a *Attestation) *Attestation {
	c := *a
	c.Modes = slices.Clone(a.Modes)
	return &c
}

func TestSignVerify(t *testing.T) {
	key := testKey(t, cowKey)
	a := signed(t, key, sampleAttestation(key, 7))
	if err := Verify(testChainID, a); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got, err := Recover(testChainID, a); err != nil || got != key.Address() {
		t.Errorf("Recover = %s, %v", got, err)
	}
	if v := a.Sig[64]; v != 27 && v != 28 {
		t.Errorf("v = %d", v)
	}
	// Signing is deterministic (RFC 6979).
	b := signed(t, key, sampleAttestation(key, 7))
	if a.Sig != b.Sig {
		t.Error("two signatures of the same attestation differ")
	}
}

// Any single changed field makes Verify fail.
func TestVerifyDetectsTampering(t *testing.T) {
	key := testKey(t, cowKey)
	orig := sampleAttestation(key, 7)
	orig.Prev = hex32(strings.Repeat("ab", 32))
	signed(t, key, orig)
	other := testKey(t, "0000000000000000000000000000000000000000000000000000000000000001")

	for _, c := range []struct {
		name   string
		tamper func(a *Attestation)
		want   error
	}{
		{"v", func(a *Attestation) { a.V = 2 }, ErrUnknownVersion},
		{"device", func(a *Attestation) { a.Device = other.Address() }, ErrSignerMismatch},
		{"device one bit", func(a *Attestation) { a.Device[19] ^= 1 }, ErrSignerMismatch},
		{"seq", func(a *Attestation) { a.Seq++ }, ErrSignerMismatch},
		{"batch", func(a *Attestation) { a.Batch-- }, ErrSignerMismatch},
		{"batches", func(a *Attestation) { a.Batches = 2 }, ErrSignerMismatch},
		{"meters with modes", func(a *Attestation) { a.Meters++; a.Modes[1].Meters++ }, ErrSignerMismatch},
		{"meters alone", func(a *Attestation) { a.Meters++ }, ErrModesSum},
		{"mode name", func(a *Attestation) { a.Modes[0].Mode = "ECO2" }, ErrSignerMismatch},
		{"mode meters moved", func(a *Attestation) { a.Modes[0].Meters++; a.Modes[1].Meters-- }, ErrSignerMismatch},
		{"mode dropped", func(a *Attestation) { a.Modes = a.Modes[1:]; a.Meters = 8000 }, ErrSignerMismatch},
		{"modes swapped", func(a *Attestation) { a.Modes[0], a.Modes[1] = a.Modes[1], a.Modes[0] }, ErrBadModes},
		{"prev", func(a *Attestation) { a.Prev[0] ^= 0x80 }, ErrSignerMismatch},
		{"flags", func(a *Attestation) { a.Flags |= FlagRollback }, ErrSignerMismatch},
		{"flags cleared", func(a *Attestation) { a.Flags = 0 }, ErrSignerMismatch},
		{"unknown flag", func(a *Attestation) { a.Flags |= 0x40 }, ErrUnknownFlags},
		{"sig r", func(a *Attestation) { a.Sig[5] ^= 1 }, nil},
		{"sig s", func(a *Attestation) { a.Sig[40] ^= 1 }, nil},
		{"sig v", func(a *Attestation) { a.Sig[64] ^= 27 ^ 28 }, nil},
		{"sig v 0/1", func(a *Attestation) { a.Sig[64] -= 27 }, ErrBadSignature},
		{"sig high-s twin", func(a *Attestation) { a.Sig = highSTwin(a.Sig) }, ErrHighS},
		{"sig zero", func(a *Attestation) { a.Sig = Signature{} }, ErrBadSignature},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := cloneAttestation(orig)
			c.tamper(a)
			err := Verify(testChainID, a)
			if err == nil {
				t.Fatal("Verify accepted a tampered attestation")
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("Verify: %v, want %v", err, c.want)
			}
			// A changed r, s or v may fail to recover or recover another key.
			if c.want == nil && !errors.Is(err, ErrSignerMismatch) && !errors.Is(err, ErrBadSignature) {
				t.Errorf("Verify: %v, want ErrSignerMismatch or ErrBadSignature", err)
			}
		})
	}
	if err := Verify(testChainID, orig); err != nil {
		t.Errorf("the original no longer verifies: %v", err)
	}
}

func TestVerifyRefusesHighSTwin(t *testing.T) {
	key := testKey(t, cowKey)
	a := signed(t, key, sampleAttestation(key, 1))
	twin := cloneAttestation(a)
	twin.Sig = highSTwin(a.Sig)
	// The twin is a valid ECDSA signature by the same key: ecrecover accepts it.
	d := Digest(testChainID, a)
	compact := append([]byte{twin.Sig[64]}, twin.Sig[:64]...)
	pub, _, err := ecdsa.RecoverCompact(compact, d[:])
	if err != nil || AddressOf(pub) != key.Address() {
		t.Fatalf("the twin does not recover to the key (%v): the test is wrong", err)
	}
	if err := Verify(testChainID, twin); !errors.Is(err, ErrHighS) {
		t.Errorf("Verify(high-s twin) = %v, want ErrHighS", err)
	}
	if _, err := Recover(testChainID, twin); !errors.Is(err, ErrHighS) {
		t.Errorf("Recover(high-s twin) = %v, want ErrHighS", err)
	}
}

func TestVerifyRefusesWrongChainID(t *testing.T) {
	key := testKey(t, cowKey)
	a := signed(t, key, sampleAttestation(key, 1))
	for _, id := range []uint64{0, 1, testChainID - 1, testChainID + 1, testChainID | 1<<32} {
		if err := Verify(id, a); !errors.Is(err, ErrSignerMismatch) {
			t.Errorf("Verify(chain %d) = %v, want ErrSignerMismatch", id, err)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		name   string
		modify func(a *Attestation)
		want   error
	}{
		{"valid", func(a *Attestation) {}, nil},
		{"no modes, no meters, a flag", func(a *Attestation) { a.Modes, a.Meters, a.Flags = nil, 0, FlagGap }, nil},
		{"all known flags", func(a *Attestation) { a.Flags = KnownFlags }, nil},
		{"v 0", func(a *Attestation) { a.V = 0 }, ErrUnknownVersion},
		{"seq 0", func(a *Attestation) { a.Seq = 0 }, ErrMalformed},
		{"batches 0", func(a *Attestation) { a.Batches = 0 }, ErrMalformed},
		{"unknown flag", func(a *Attestation) { a.Flags = 0x80000000 }, ErrUnknownFlags},
		{"modes short", func(a *Attestation) { a.Modes[1].Meters-- }, ErrModesSum},
		{"modes over", func(a *Attestation) { a.Modes[1].Meters++ }, ErrModesSum},
		{"modes overflow", func(a *Attestation) { a.Modes[0].Meters, a.Modes[1].Meters, a.Meters = 1<<63, 1<<63, 0 }, ErrModesSum},
		{"modes missing", func(a *Attestation) { a.Modes = nil }, ErrModesSum},
		{"modes unsorted", func(a *Attestation) { a.Modes[0], a.Modes[1] = a.Modes[1], a.Modes[0] }, ErrBadModes},
		{"mode repeated", func(a *Attestation) { a.Modes[1].Mode = "ECO" }, ErrBadModes},
		{"zero entry", func(a *Attestation) { a.Modes = append(a.Modes, ModeMeters{"TURBO", 0}) }, ErrBadModes},
		{"empty name", func(a *Attestation) { a.Modes[0].Mode = "" }, ErrBadModes},
		{"invalid UTF-8", func(a *Attestation) { a.Modes[0].Mode = "E\xffCO" }, ErrBadModes},
		{"long name", func(a *Attestation) { a.Modes[0].Mode = strings.Repeat("A", MaxModeNameLen+1) }, ErrBadModes},
		{"too many modes", func(a *Attestation) {
			a.Modes, a.Meters = nil, 0
			for i := range MaxModes + 1 {
				a.Modes = append(a.Modes, ModeMeters{string(rune('A'+i/26)) + string(rune('A'+i%26)), 1})
				a.Meters++
			}
		}, ErrBadModes},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := sampleAttestation(testKey(t, cowKey), 3)
			c.modify(a)
			err := a.Validate()
			if c.want == nil && err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("Validate: %v, want %v", err, c.want)
			}
			// Sign refuses what Validate refuses.
			if err := Sign(testKey(t, cowKey), testChainID, a); (err == nil) != (c.want == nil) {
				t.Errorf("Sign: %v", err)
			}
		})
	}
}

func TestSignRefusesOtherDevice(t *testing.T) {
	key := testKey(t, cowKey)
	a := sampleAttestation(key, 1)
	a.Device[0] ^= 1
	if err := Sign(key, testChainID, a); !errors.Is(err, ErrSignerMismatch) {
		t.Errorf("Sign: %v, want ErrSignerMismatch", err)
	}
	if a.Sig != (Signature{}) {
		t.Error("Sig set on failure")
	}
}

func TestFlagNames(t *testing.T) {
	for _, c := range []struct {
		flags uint32
		want  []string
	}{
		{0, nil},
		{FlagRollback, []string{"ROLLBACK"}},
		{KnownFlags, []string{"ROLLBACK", "JUMP", "SPEED_MISMATCH", "CLOCK", "CATCHUP", "GAP"}},
		{FlagGap | FlagClock, []string{"CLOCK", "GAP"}},
		{0x40 | FlagJump, []string{"JUMP", "0x40"}},
		{1 << 31, []string{"0x80000000"}},
	} {
		if got := FlagNames(c.flags); !slices.Equal(got, c.want) {
			t.Errorf("FlagNames(0x%x) = %q, want %q", c.flags, got, c.want)
		}
	}
	if KnownFlags != 0x3f {
		t.Errorf("KnownFlags = 0x%x, the README contract defines bits 0x01 to 0x20", KnownFlags)
	}
}
