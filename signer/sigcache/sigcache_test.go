package sigcache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/csop/tbox/signer"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

// fastVerdict is the verdict of Q's table alone on (digest, sig).
func fastVerdict(tab *table, d [32]byte, sig signer.Signature) bool {
	return tab.verify(&d, &sig)
}

// keyVerdict is the verdict of the key tier's check, Q's bare key
// multiplied by decred, on (digest, sig).
func keyVerdict(q *secp256k1.JacobianPoint, d [32]byte, sig signer.Signature) bool {
	return verifySig(&d, &sig, nil, q)
}

// sameRecovery fails t unless recoverPub yields the key decred's
// RecoverCompact yields from sig over d (signer.Verify's recovery), or
// both none, for a well-formed sig (recoverPub's precondition).
func sameRecovery(t testing.TB, d [32]byte, sig signer.Signature) {
	t.Helper()
	if !wellFormed(&sig) {
		return
	}
	var c [65]byte
	c[0] = sig[64]
	copy(c[1:], sig[:64])
	want, _, err := ecdsa.RecoverCompact(c[:], d[:])
	got := recoverPub(&d, &sig)
	switch {
	case err != nil && got != nil:
		t.Fatalf("recoverPub yields %x where recovery fails (%v); sig %x digest %x", got.SerializeCompressed(), err, sig, d)
	case err == nil && got == nil:
		t.Fatalf("recoverPub yields none where recovery yields %x; sig %x digest %x", want.SerializeCompressed(), sig, d)
	case err == nil && !got.IsEqual(want):
		t.Fatalf("recoverPub yields %x, recovery %x; sig %x digest %x", got.SerializeCompressed(), want.SerializeCompressed(), sig, d)
	}
}

// refVerdict is the verdict of the reference check: sig over d recovers
// to the address dev (the fields of a valid attestation, so that only the
// signature decides).
func refVerdict(t testing.TB, dev signer.Address, d [32]byte, sig signer.Signature) (bool, error) {
	t.Helper()
	a := &signer.Attestation{V: signer.Version, Device: dev, Seq: 1, Batches: 1, Sig: sig}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	_, err := signer.VerifyKey(testChainID, a, d)
	return err == nil, err
}

func setScalarBytes(dst []byte, k *secp256k1.ModNScalar) {
	b := k.Bytes()
	copy(dst, b[:])
}

func bigBytes32(x *big.Int) []byte {
	var b [32]byte
	x.FillBytes(b[:])
	return b[:]
}

// adversarial returns signatures around sig (by key over d) that must be
// judged exactly as the reference judges them.
func adversarial(t testing.TB, rng *rand.Rand, key, other *testKey, d [32]byte, sig signer.Signature) map[string]signer.Signature {
	t.Helper()
	n := curveN
	p := secp256k1.S256().P
	out := map[string]signer.Signature{"valid": sig}
	mod := func(name string, f func(s *signer.Signature)) {
		s := sig
		f(&s)
		out[name] = s
	}
	mod("v flipped", func(s *signer.Signature) { s[64] ^= 27 ^ 28 })
	for _, v := range []byte{0, 1, 26, 29, 30, 31, 255} {
		mod(fmt.Sprintf("v %d", v), func(s *signer.Signature) { s[64] = v })
	}
	mod("v with overflow bit", func(s *signer.Signature) { s[64] += 2 })
	mod("r 0", func(s *signer.Signature) { clear(s[:32]) })
	mod("s 0", func(s *signer.Signature) { clear(s[32:64]) })
	mod("r N", func(s *signer.Signature) { copy(s[:32], bigBytes32(n)) })
	mod("r N+1", func(s *signer.Signature) { copy(s[:32], bigBytes32(new(big.Int).Add(n, big.NewInt(1)))) })
	mod("r P-1", func(s *signer.Signature) { copy(s[:32], bigBytes32(new(big.Int).Sub(p, big.NewInt(1)))) })
	mod("r all ones", func(s *signer.Signature) {
		for i := range s[:32] {
			s[i] = 0xff
		}
	})
	mod("r + N", func(s *signer.Signature) {
		r := new(big.Int).SetBytes(s[:32])
		if r.Add(r, n); r.Cmp(p) < 0 {
			copy(s[:32], bigBytes32(r))
		}
	})
	mod("s N", func(s *signer.Signature) { copy(s[32:64], bigBytes32(n)) })
	mod("s high", func(s *signer.Signature) {
		x := new(big.Int).Sub(n, new(big.Int).SetBytes(s[32:64]))
		copy(s[32:64], bigBytes32(x))
	})
	mod("s high, v flipped (the malleated twin)", func(s *signer.Signature) {
		x := new(big.Int).Sub(n, new(big.Int).SetBytes(s[32:64]))
		copy(s[32:64], bigBytes32(x))
		s[64] ^= 27 ^ 28
	})
	mod("s half order", func(s *signer.Signature) { copy(s[32:64], bigBytes32(new(big.Int).Rsh(n, 1))) })
	mod("s half order + 1", func(s *signer.Signature) {
		copy(s[32:64], bigBytes32(new(big.Int).Add(new(big.Int).Rsh(n, 1), big.NewInt(1))))
	})
	mod("r random", func(s *signer.Signature) { // often not an x on the curve
		for i := range s[:32] {
			s[i] = byte(rng.Uint32())
		}
	})
	mod("r small, not on the curve", func(s *signer.Signature) {
		// x = 5: 5³+7 = 132 is not a square mod P; x = 1 and 2 are.
		clear(s[:32])
		s[31] = 5
	})
	mod("s random low", func(s *signer.Signature) {
		for i := range s[32:64] {
			s[32+i] = byte(rng.Uint32())
		}
		s[32] &= 0x7f
	})
	mod("bit flipped", func(s *signer.Signature) { s[rng.IntN(64)] ^= 1 << rng.IntN(8) })
	mod("by another key", func(s *signer.Signature) { *s, _ = other.SignDigest(d) })
	mod("swapped r and s", func(s *signer.Signature) {
		var r [32]byte
		copy(r[:], s[:32])
		copy(s[:32], s[32:64])
		copy(s[32:64], r[:])
	})
	return out
}

// infinityCases returns two digests and signatures that reach the point at
// infinity: (d1, s1) makes R' = u1·G + u2·Q infinity (e = -r·q mod N with
// sig's r; recovery then yields another key, never Q), and (d2, s2)
// makes recovery's s·R − e·G infinity (R = k·G, e = s·k mod N).
func infinityCases(t testing.TB, rng *rand.Rand, key *testKey, sig signer.Signature) (d1 [32]byte, s1 signer.Signature, d2 [32]byte, s2 signer.Signature) {
	var r, e secp256k1.ModNScalar
	r.SetByteSlice(sig[:32])
	e.Mul2(&r, &key.priv.Key).Negate()
	setScalarBytes(d1[:], &e)
	s1 = sig
	k := randKey(t, rng)
	var R secp256k1.JacobianPoint
	k.PubKey().AsJacobian(&R)
	var rk, s secp256k1.ModNScalar
	rk.SetByteSlice(bigBytes32(new(big.Int).SetBytes(R.X.Bytes()[:])))
	s.SetByteSlice(sig[32:64])
	setScalarBytes(s2[:32], &rk)
	copy(s2[32:64], sig[32:64])
	s2[64] = 27
	if R.Y.IsOdd() {
		s2[64] = 28
	}
	e.Mul2(&s, &k.Key)
	setScalarBytes(d2[:], &e)
	return
}

// TestDifferential: on random and adversarial signatures, Q's table and
// Q's bare key (the key tier's check) each accept exactly what the
// reference accepts for Q's address.
func TestDifferential(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	rounds := 300
	if testing.Short() {
		rounds = 30
	}
	accepted := 0
	for round := range rounds {
		key, other := newTestKey(t, rng), newTestKey(t, rng)
		var q secp256k1.JacobianPoint
		key.priv.PubKey().AsJacobian(&q)
		tab := newTable(&q)
		var d [32]byte
		for i := range d {
			d[i] = byte(rng.Uint32())
		}
		if round%7 == 0 {
			// Digests at and above N: recovery reduces them mod N.
			copy(d[:], bigBytes32(new(big.Int).Add(curveN, big.NewInt(int64(rng.IntN(1000))))))
		}
		sig, _ := key.SignDigest(d)
		cases := adversarial(t, rng, key, other, d, sig)
		digests := map[string][32]byte{}
		d1, s1, d2, s2 := infinityCases(t, rng, key, sig)
		cases["R' at infinity"], digests["R' at infinity"] = s1, d1
		cases["recovery at infinity"], digests["recovery at infinity"] = s2, d2
		var tampered [32]byte
		copy(tampered[:], d[:])
		tampered[rng.IntN(32)] ^= 1 << rng.IntN(8)
		cases["tampered digest"], digests["tampered digest"] = sig, tampered
		for name, s := range cases {
			dd, ok := digests[name]
			if !ok {
				dd = d
			}
			want, err := refVerdict(t, key.addr, dd, s)
			if got := fastVerdict(tab, dd, s); got != want {
				t.Fatalf("round %d, %s: fast path %v, reference %v (%v); sig %x digest %x", round, name, got, want, err, s, dd)
			}
			if got := keyVerdict(&q, dd, s); got != want {
				t.Fatalf("round %d, %s: key path %v, reference %v (%v); sig %x digest %x", round, name, got, want, err, s, dd)
			}
			sameRecovery(t, dd, s)
			if want {
				accepted++
			}
			if name == "recovery at infinity" && !errors.Is(err, signer.ErrBadSignature) {
				t.Fatalf("round %d: recovery at infinity: reference %v, want %v", round, err, signer.ErrBadSignature)
			}
			if name == "valid" && !want {
				t.Fatalf("round %d: the valid signature is refused: %v", round, err)
			}
			if name == "R' at infinity" {
				var R secp256k1.JacobianPoint
				candidate(&dd, &s, tab, nil, &R)
				if !R.Z.IsZero() && !(R.X.IsZero() && R.Y.IsZero()) {
					t.Fatalf("round %d: the R' at infinity case does not reach infinity", round)
				}
			}
		}
	}
	if accepted < rounds {
		t.Fatalf("%d accepted in %d rounds: the valid case must be among them", accepted, rounds)
	}
}

// verifierConfigs are the tier sizes the verifier tests run with, each
// taking another path for the devices' later attestations: "tables"
// (every device young enough for a table), "keys" (no table tier: the
// bare key), "field" (a table tier of one: mostly the bare key), "none"
// (no key tier: every check the reference's).
var verifierConfigs = []struct {
	name         string
	tables, keys int
}{{"tables", 64, 64}, {"keys", 0, 64}, {"field", 1, 64}, {"none", 64, 0}}

// TestVerifierSameErrors: the verifier returns the reference's result,
// error text and kind included, cold and warm, for valid attestations,
// changed fields, and signatures of other devices, on every path (table,
// bare key, reference).
func TestVerifierSameErrors(t *testing.T) {
	for _, cfg := range verifierConfigs {
		t.Run(cfg.name, func(t *testing.T) { testSameErrors(t, cfg.tables, cfg.keys) })
	}
}

func testSameErrors(t *testing.T, tables, keys int) {
	rng := rand.New(rand.NewPCG(23, 24))
	devs := []*testKey{newTestKey(t, rng), newTestKey(t, rng), newTestKey(t, rng)}
	v := New(testChainID, tables, keys)
	for round := range 3 { // cold, then warm (table built), then warm
		for i, k := range devs {
			other := devs[(i+1)%len(devs)]
			good := attestation(t, k, uint64(round+1))
			cases := map[string]*signer.Attestation{"valid": good}
			c := *good
			c.Meters++
			c.Modes = []signer.ModeMeters{{Mode: "ECO", Meters: 2413}, {Mode: "SPORT", Meters: 8000}}
			cases["meters changed"] = &c
			c2 := *good
			c2.Device = other.addr // A's signature, B's name
			cases["device changed"] = &c2
			c3 := *good
			c3.Sig[64] ^= 27 ^ 28
			cases["v flipped"] = &c3
			c4 := *good
			c4.Seq = 0
			cases["invalid field"] = &c4
			c5 := *good
			x := new(big.Int).Sub(curveN, new(big.Int).SetBytes(c5.Sig[32:64]))
			copy(c5.Sig[32:64], bigBytes32(x))
			c5.Sig[64] ^= 27 ^ 28
			cases["high s twin"] = &c5
			for name, a := range cases {
				want := signer.Verify(testChainID, a)
				got := v.Verify(a, signer.Digest(testChainID, a))
				if (got == nil) != (want == nil) || (got != nil && got.Error() != want.Error()) {
					t.Fatalf("round %d, device %d, %s: verifier %v, reference %v", round, i, name, got, want)
				}
				for _, kind := range []error{signer.ErrSignerMismatch, signer.ErrBadSignature, signer.ErrHighS, signer.ErrMalformed} {
					if errors.Is(got, kind) != errors.Is(want, kind) {
						t.Fatalf("round %d, %s: errors.Is(%v) differs: verifier %v, reference %v", round, name, kind, got, want)
					}
				}
			}
		}
	}
	hits, _ := v.Stats()
	th, kh := v.TierStats()
	want := uint64(2 * len(devs)) // rounds 2 and 3, the valid ones
	if keys <= 0 {
		want = 0
	}
	if hits != want || th+kh != hits {
		t.Fatalf("%d attestations verified by cached keys (%d tables, %d keys), want %d", hits, th, kh, want)
	}
	switch {
	case tables >= 64 && keys > 0 && kh != 0:
		t.Fatalf("%d bare-key hits with every device young: want tables only", kh)
	case tables <= 0 && th != 0:
		t.Fatalf("%d table hits without a table tier", th)
	}
}

// TestKeyOfAnotherDevice: a cached key of device A never verifies an
// attestation that names B, even one A signed, through a table or the
// bare key; B's own key still works.
func TestKeyOfAnotherDevice(t *testing.T) {
	for _, cfg := range verifierConfigs[:3] {
		t.Run(cfg.name, func(t *testing.T) { testKeyOfAnotherDevice(t, cfg.tables, cfg.keys) })
	}
}

func testKeyOfAnotherDevice(t *testing.T, tables, keys int) {
	rng := rand.New(rand.NewPCG(25, 26))
	a, b := newTestKey(t, rng), newTestKey(t, rng)
	v := New(testChainID, tables, keys)
	for seq := uint64(1); seq <= 3; seq++ {
		for _, k := range []*testKey{a, b} {
			at := attestation(t, k, seq)
			if err := v.Verify(at, signer.Digest(testChainID, at)); err != nil {
				t.Fatal(err)
			}
		}
	}
	forged := attestation(t, a, 4)
	forged.Device = b.addr
	// A signs B's attestation digest directly, as a thief of A's key would.
	d := signer.Digest(testChainID, forged)
	forged.Sig, _ = a.SignDigest(d)
	h0, _ := v.Stats()
	if err := v.Verify(forged, d); !errors.Is(err, signer.ErrSignerMismatch) {
		t.Fatalf("attestation naming B signed by A: %v, want %v", err, signer.ErrSignerMismatch)
	}
	if h1, _ := v.Stats(); h1 != h0 {
		t.Fatalf("the fast path accepted %d attestations naming B signed by A", h1-h0)
	}
	ok := attestation(t, b, 4)
	if err := v.Verify(ok, signer.Digest(testChainID, ok)); err != nil {
		t.Fatal(err)
	}
	if h2, _ := v.Stats(); h2 != h0+1 {
		t.Fatalf("B's own attestation did not take the fast path after the forgery")
	}
}

// TestEviction: the table tier holds at most its size, the least recently
// used leaving first, and its evicted devices are checked by their bare
// key; a table is built only for a device seen again within as many
// checks as the table tier holds; the key tier holds at most its size, the
// first added leaving first, and an evicted device is recovered again.
func TestEviction(t *testing.T) {
	rng := rand.New(rand.NewPCG(27, 28))
	keys := make([]*testKey, 5)
	for i := range keys {
		keys[i] = newTestKey(t, rng)
	}
	verify := func(v *Verifier, k *testKey, seq uint64) {
		t.Helper()
		a := attestation(t, k, seq)
		if err := v.Verify(a, signer.Digest(testChainID, a)); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(v *Verifier, th, kh, m uint64) {
		t.Helper()
		gth, gkh := v.TierStats()
		if _, gm := v.Stats(); gth != th || gkh != kh || gm != m {
			t.Fatalf("table hits %d, key hits %d, misses %d; want %d, %d, %d", gth, gkh, gm, th, kh, m)
		}
	}
	v := New(testChainID, 3, 16)
	for _, k := range keys {
		verify(v, k, 1) // recovered: the key tier
		verify(v, k, 2) // young: a table
	}
	expect(v, 5, 0, 5)
	if n, nk := v.Len(), v.Keys(); n != 3 || nk != 5 {
		t.Fatalf("%d tables and %d keys, want 3 and 5", n, nk)
	}
	verify(v, keys[2], 3) // a table; keys[3] now the least recent
	expect(v, 6, 0, 5)
	verify(v, keys[0], 3) // table evicted, key old: the bare key
	expect(v, 6, 1, 5)
	verify(v, keys[0], 4) // young again: a table, evicting keys[3]'s
	expect(v, 7, 1, 5)
	verify(v, keys[3], 3) // the bare key
	verify(v, keys[4], 3) // still a table
	expect(v, 8, 2, 5)
	if n := v.Len(); n != 3 {
		t.Fatalf("%d tables, want 3", n)
	}

	fifo := New(testChainID, 0, 3)
	for _, k := range keys {
		verify(fifo, k, 1)
	}
	if n := fifo.Keys(); n != 3 {
		t.Fatalf("%d keys, want 3", n)
	}
	verify(fifo, keys[2], 2) // kept
	expect(fifo, 0, 1, 5)
	verify(fifo, keys[0], 2) // evicted: recovered, replacing the first added, keys[2]
	verify(fifo, keys[2], 3) // evicted though just used: first in, first out
	expect(fifo, 0, 1, 7)
	verify(fifo, keys[4], 2) // kept
	verify(fifo, keys[0], 3) // kept
	expect(fifo, 0, 3, 7)

	for _, off := range []*Verifier{New(testChainID, 0, 0), New(testChainID, 16, 0)} {
		for seq := uint64(1); seq <= 3; seq++ {
			verify(off, keys[0], seq)
		}
		if h, _ := off.Stats(); h != 0 || off.Len() != 0 || off.Keys() != 0 {
			t.Fatalf("a verifier without a key tier holds %d tables, %d keys, %d hits", off.Len(), off.Keys(), h)
		}
	}
}

// TestTierBounds: under random traffic from more devices than either tier
// holds (valid attestations and refused ones, from 2 goroutines), neither
// tier ever exceeds its bound, nor the key tier's slots their capacity, and
// every result is the reference's.
func TestTierBounds(t *testing.T) {
	rng := rand.New(rand.NewPCG(33, 34))
	devs := make([]*testKey, 24)
	for i := range devs {
		devs[i] = newTestKey(t, rng)
	}
	var as []*signer.Attestation
	for seq := uint64(1); seq <= 6; seq++ {
		for _, k := range devs {
			a := attestation(t, k, seq)
			if rng.IntN(5) == 0 {
				a.Sig[64] ^= 27 ^ 28
			}
			as = append(as, a)
		}
	}
	rng.Shuffle(len(as), func(i, j int) { as[i], as[j] = as[j], as[i] })
	const tables, keys = 3, 7
	v := New(testChainID, tables, keys)
	check := func() {
		v.mu.Lock()
		defer v.mu.Unlock()
		if len(v.hot) > tables || len(v.slot) > keys || len(v.slots) > keys || cap(v.slots) > keys || len(v.slot) != len(v.slots) {
			t.Errorf("tables %d (bound %d), keys %d in %d slots of capacity %d (bound %d)",
				len(v.hot), tables, len(v.slot), len(v.slots), cap(v.slots), keys)
		}
	}
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < len(as); i += 2 {
				a := as[i]
				want := signer.Verify(testChainID, a)
				got := v.Verify(a, signer.Digest(testChainID, a))
				if (got == nil) != (want == nil) || (got != nil && got.Error() != want.Error()) {
					t.Errorf("verifier %v, reference %v", got, want)
				}
				check()
			}
		}()
	}
	wg.Wait()
	if th, kh := v.TierStats(); kh == 0 {
		t.Errorf("no bare-key hits (%d table hits): the test misses the key tier", th)
	}
}

// TestConcurrent: several goroutines verifying the same devices (run with
// -race) agree with the reference.
func TestConcurrent(t *testing.T) {
	rng := rand.New(rand.NewPCG(29, 30))
	keys := make([]*testKey, 6)
	for i := range keys {
		keys[i] = newTestKey(t, rng)
	}
	var as []*signer.Attestation
	for seq := uint64(1); seq <= 4; seq++ {
		for _, k := range keys {
			as = append(as, attestation(t, k, seq))
		}
	}
	bad := *as[len(as)-1]
	bad.Device = keys[0].addr
	as = append(as, &bad)
	v := New(testChainID, 2, 4)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range as {
				a := as[(i+g*5)%len(as)]
				want := signer.Verify(testChainID, a)
				if got := v.Verify(a, signer.Digest(testChainID, a)); (got == nil) != (want == nil) {
					t.Errorf("verifier %v, reference %v", got, want)
				}
			}
		}()
	}
	wg.Wait()
}

// FuzzVerify: for arbitrary digest and signature bytes, the table and the
// bare-key check of a fixed key each accept exactly what recovery to that
// key's address accepts.
// Seeds: valid signatures and their adversarial variants.
func FuzzVerify(f *testing.F) {
	rng := rand.New(rand.NewPCG(31, 32))
	key, other := newTestKey(f, rng), newTestKey(f, rng)
	var q secp256k1.JacobianPoint
	key.priv.PubKey().AsJacobian(&q)
	tab := newTable(&q)
	for i := range 4 {
		var d [32]byte
		binary.BigEndian.PutUint64(d[:], uint64(i)*0x9e3779b97f4a7c15)
		sig, _ := key.SignDigest(d)
		for _, s := range adversarial(f, rng, key, other, d, sig) {
			f.Add(d[:], s[:])
		}
		d1, s1, d2, s2 := infinityCases(f, rng, key, sig)
		f.Add(d1[:], s1[:])
		f.Add(d2[:], s2[:])
	}
	f.Fuzz(func(t *testing.T, d, s []byte) {
		if len(d) != 32 || len(s) != 65 {
			return
		}
		var dd [32]byte
		var sig signer.Signature
		copy(dd[:], d)
		copy(sig[:], s)
		want, err := refVerdict(t, key.addr, dd, sig)
		if got := fastVerdict(tab, dd, sig); got != want {
			t.Fatalf("fast path %v, reference %v (%v)", got, want, err)
		}
		if got := keyVerdict(&q, dd, sig); got != want {
			t.Fatalf("key path %v, reference %v (%v)", got, want, err)
		}
		sameRecovery(t, dd, sig)
	})
}

// TestFailuresCostNoTables: attestations naming a known device whose
// signatures fail cost no product when malformed and at most one table
// build when well formed but another key's (the table is the device's
// key's and is kept), where each used to build a table of its own; each
// gets signer.Verify's error.
func TestFailuresCostNoTables(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	a, b := newTestKey(t, rng), newTestKey(t, rng)
	v := New(testChainID, 8, 100)
	first := attestation(t, a, 1)
	if err := v.Verify(first, signer.Digest(testChainID, first)); err != nil {
		t.Fatal(err)
	}
	check := func(at *signer.Attestation, d [32]byte) {
		t.Helper()
		want := signer.Verify(testChainID, at)
		if want == nil {
			t.Fatal("the reference accepts the bad attestation")
		}
		if got := v.Verify(at, d); got == nil || got.Error() != want.Error() {
			t.Fatalf("Verify = %v, want %v", got, want)
		}
	}
	for seq := uint64(2); seq < 22; seq++ {
		at := attestation(t, a, seq)
		at.Sig[64] = 0 // v: refused by the range checks
		check(at, signer.Digest(testChainID, at))
	}
	if n := v.Built(); n != 0 {
		t.Fatalf("20 malformed signatures built %d tables, want 0", n)
	}
	for seq := uint64(22); seq < 42; seq++ {
		at := attestation(t, a, seq)
		d := signer.Digest(testChainID, at)
		at.Sig, _ = b.SignDigest(d) // well formed, another key's
		check(at, d)
	}
	if n := v.Built(); n > 1 {
		t.Fatalf("20 signatures of another key built %d tables, want at most 1", n)
	}
	ok := attestation(t, a, 42)
	if err := v.Verify(ok, signer.Digest(testChainID, ok)); err != nil {
		t.Fatal(err)
	}
	if th, _ := v.TierStats(); th != 1 {
		t.Fatalf("the device's own attestation took %d table hits, want 1", th)
	}
}
