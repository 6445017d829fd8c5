package sigcache

import (
	"math/rand/v2"
	"testing"

	"github.com/csop/tbox/signer"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

const testChainID = 20220807

// testKey is a device key that signs any digest, as the tests need.
type testKey struct {
	priv *secp256k1.PrivateKey
	addr signer.Address
}

func newTestKey(t testing.TB, rng *rand.Rand) *testKey {
	p := randKey(t, rng)
	return &testKey{priv: p, addr: signer.AddressOf(p.PubKey())}
}

func (k *testKey) Address() signer.Address { return k.addr }

func (k *testKey) SignDigest(d [32]byte) (signer.Signature, error) {
	var sig signer.Signature
	c := ecdsa.SignCompact(k.priv, d[:], false)
	copy(sig[:64], c[1:])
	sig[64] = c[0]
	return sig, nil
}

// attestation returns a valid attestation of k with seq.
func attestation(t testing.TB, k *testKey, seq uint64) *signer.Attestation {
	t.Helper()
	a := &signer.Attestation{
		V: signer.Version, Device: k.addr, Seq: seq, Batch: 2811234 + seq, Batches: 1, Meters: 10412,
		Modes: []signer.ModeMeters{{Mode: "ECO", Meters: 2412}, {Mode: "SPORT", Meters: 8000}},
	}
	if err := signer.Sign(k, testChainID, a); err != nil {
		t.Fatal(err)
	}
	return a
}
