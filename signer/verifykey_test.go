package signer

import (
	"errors"
	"testing"
)

// TestVerifyKeyIsVerify: VerifyKey refuses what Verify refuses, with the
// same error, and on success returns the key whose address is the device.
func TestVerifyKeyIsVerify(t *testing.T) {
	key, other := testKey(t, cowKey), testKey(t, "4646464646464646464646464646464646464646464646464646464646464646")
	good := signed(t, key, sampleAttestation(key, 7))
	cases := map[string]func(a *Attestation){
		"valid":          func(a *Attestation) {},
		"meters changed": func(a *Attestation) { a.Meters++; a.Modes[1].Meters++ },
		"other device":   func(a *Attestation) { a.Device = other.Address() },
		"v flipped":      func(a *Attestation) { a.Sig[64] ^= 27 ^ 28 },
		"v 29":           func(a *Attestation) { a.Sig[64] = 29 },
		"r zero":         func(a *Attestation) { clear(a.Sig[:32]) },
		"s high":         func(a *Attestation) { a.Sig[32] = 0xff },
		"seq zero":       func(a *Attestation) { a.Seq = 0 },
	}
	for name, change := range cases {
		a := cloneAttestation(good)
		change(a)
		want := Verify(testChainID, a)
		pub, got := VerifyKey(testChainID, a, Digest(testChainID, a))
		if (got == nil) != (want == nil) || (got != nil && (got.Error() != want.Error() || !errors.Is(got, kindOf(want)))) {
			t.Fatalf("%s: VerifyKey %v, Verify %v", name, got, want)
		}
		if got == nil && AddressOf(pub) != a.Device {
			t.Fatalf("%s: key of %s returned for device %s", name, AddressOf(pub), a.Device)
		}
		if got != nil && pub != nil {
			t.Fatalf("%s: a key returned with the error %v", name, got)
		}
	}
}
