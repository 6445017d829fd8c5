package signer

import "testing"

func reportRate(b *testing.B, unit string) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, unit)
	}
}

// BenchmarkSign: digest and signature of one attestation (target: 20,000/s
// on one core).
func BenchmarkSign(b *testing.B) {
	key := testKey(b, cowKey)
	a := sampleAttestation(key, 7)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		a.Seq = uint64(i) + 1
		if err := Sign(key, testChainID, a); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, "sigs/s")
}

// BenchmarkVerify: validation, digest and public-key recovery.
func BenchmarkVerify(b *testing.B) {
	key := testKey(b, cowKey)
	a := signed(b, key, sampleAttestation(key, 7))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := Verify(testChainID, a); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, "verifies/s")
}

// BenchmarkDigest: the EIP-712 hashing alone.
func BenchmarkDigest(b *testing.B) {
	key := testKey(b, cowKey)
	a := sampleAttestation(key, 7)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		Digest(testChainID, a)
	}
	reportRate(b, "digests/s")
}

// BenchmarkParseWire: parsing one wire-form attestation.
func BenchmarkParseWire(b *testing.B) {
	key := testKey(b, cowKey)
	w := signed(b, key, sampleAttestation(key, 7)).AppendWire(nil)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := ParseWire(w); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, "parses/s")
}
