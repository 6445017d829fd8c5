package sigcache

import (
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/csop/tbox/signer"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

// A second, adversarial look at mulKey and recoverPub (review of the key
// tier's product and of recovery without decred's NAF).

// The reduced basis of the GLV lattice {(x, y) : x + y·λ ≡ 0 (mod N)}
// (decred's curve.go, [GECC] §3.5); TestReviewLattice checks it.
var (
	rvA1 = rvHex("3086d221a7d46bcde86c90e49284eb15")
	rvB1 = new(big.Int).Neg(rvHex("e4437ed6010e88286f547fa90abfe4c3"))
	rvA2 = rvHex("114ca50f7a8e2f3f657c1108d9d44cfd8")
	rvB2 = rvHex("3086d221a7d46bcde86c90e49284eb15")
)

func rvHex(s string) *big.Int {
	x, ok := new(big.Int).SetString(s, 16)
	if !ok {
		panic(s)
	}
	return x
}

// rvLambda is λ as an integer in [0, N).
func rvLambda() *big.Int {
	l := endoNegLambda
	l.Negate()
	return scalarBig(&l)
}

// rvScalar returns x mod N as a scalar.
func rvScalar(x *big.Int) secp256k1.ModNScalar {
	var k secp256k1.ModNScalar
	k.SetByteSlice(bigBytes32(new(big.Int).Mod(x, curveN)))
	return k
}

// rvPair returns the scalar x + y·λ (mod N).
func rvPair(x, y *big.Int) secp256k1.ModNScalar {
	t := new(big.Int).Mul(y, rvLambda())
	return rvScalar(t.Add(t, x))
}

// TestReviewLattice: the basis vectors are in the lattice, so the pairs
// built from them below are the ones the split must keep short.
func TestReviewLattice(t *testing.T) {
	lam := rvLambda()
	for _, v := range [][2]*big.Int{{rvA1, rvB1}, {rvA2, rvB2}} {
		x := new(big.Int).Mul(v[1], lam)
		x.Add(x, v[0]).Mod(x, curveN)
		if x.Sign() != 0 {
			t.Fatalf("(%x, %x) is not in the lattice", v[0], v[1])
		}
	}
}

// rvAdversarialScalars returns scalars whose GLV halves are extreme: 0,
// ±1, ±small, ±2^j and near 2^128 (pairs (x, y) mapped to x + y·λ), the
// pairs on the border of the split's rounding ((±v1 ± v2)/2 and v/2 for
// the basis vectors, plus small offsets, where a half is largest), pairs
// one digit away from a lattice vector (which would make an addition of
// the chain P + P or P + (−P) if the split returned them), and m·2^j +
// small.
func rvAdversarialScalars(rng *rand.Rand) []secp256k1.ModNScalar {
	var out []secp256k1.ModNScalar
	small := []int64{0, 1, -1, 2, -2, 3, -3, 7, -7, 8, -8, 9, -9, 15, -15, 16, -16, 17}
	pow := func(j uint) *big.Int { return new(big.Int).Lsh(big.NewInt(1), j) }
	var halves []*big.Int
	for _, s := range small {
		halves = append(halves, big.NewInt(s))
	}
	for _, j := range []uint{31, 32, 33, 63, 64, 96, 126, 127, 128, 129} {
		for _, d := range []int64{-9, -1, 0, 1, 7, 9} {
			h := pow(j)
			h.Add(h, big.NewInt(d))
			halves = append(halves, h, new(big.Int).Neg(h))
		}
	}
	for _, x := range halves {
		for range 3 {
			y := halves[rng.IntN(len(halves))]
			out = append(out, rvPair(x, y))
		}
		out = append(out, rvPair(x, big.NewInt(0)), rvPair(big.NewInt(0), x), rvPair(x, x))
	}
	// The border of the rounding: (s1·v1 + s2·v2)/2 + (dx, dy).
	for s1 := int64(-1); s1 <= 1; s1++ {
		for s2 := int64(-1); s2 <= 1; s2++ {
			bx := new(big.Int).Mul(big.NewInt(s1), rvA1)
			bx.Add(bx, new(big.Int).Mul(big.NewInt(s2), rvA2))
			by := new(big.Int).Mul(big.NewInt(s1), rvB1)
			by.Add(by, new(big.Int).Mul(big.NewInt(s2), rvB2))
			bx.Rsh(bx, 1)
			by.Rsh(by, 1)
			for dx := int64(-3); dx <= 3; dx++ {
				for dy := int64(-3); dy <= 3; dy++ {
					x := new(big.Int).Add(bx, big.NewInt(dx))
					y := new(big.Int).Add(by, big.NewInt(dy))
					out = append(out, rvPair(x, y))
				}
			}
			// A lattice vector plus a digit: the scalar is that digit
			// (or digit·λ), which the split must return as the short
			// pair, not as the long one.
			lx := new(big.Int).Lsh(bx, 1)
			ly := new(big.Int).Lsh(by, 1)
			for _, d := range []int64{-7, -3, -1, 1, 3, 7} {
				out = append(out, rvPair(new(big.Int).Add(lx, big.NewInt(d)), ly),
					rvPair(lx, new(big.Int).Add(ly, big.NewInt(d))))
			}
		}
	}
	// m·2^j + small, and λ·(m·2^j + small).
	for _, m := range []int64{1, 3, 5, 7, -1, -7} {
		for j := uint(0); j < 256; j += 17 {
			for _, d := range []int64{-7, -1, 0, 1, 7} {
				x := new(big.Int).Lsh(big.NewInt(m), j)
				x.Add(x, big.NewInt(d))
				out = append(out, rvScalar(x), rvPair(big.NewInt(0), x))
			}
		}
	}
	// Border points with random fractions near ±1/2 in both coordinates.
	for range 200 {
		fx := rng.Int64N(1<<20) - 1<<19
		fy := rng.Int64N(1<<20) - 1<<19
		bx := new(big.Int).Mul(rvA1, big.NewInt(1<<20+fx))
		bx.Add(bx, new(big.Int).Mul(rvA2, big.NewInt(1<<20+fy))).Rsh(bx, 21)
		by := new(big.Int).Mul(rvB1, big.NewInt(1<<20+fx))
		by.Add(by, new(big.Int).Mul(rvB2, big.NewInt(1<<20+fy))).Rsh(by, 21)
		out = append(out, rvPair(bx, by))
	}
	return out
}

// rvChain replays mulKey's chain of doublings and additions on k with the
// accumulator as a scalar (the multiple of q it holds, mod N), and
// returns the number of additions that were exceptional (the
// accumulator, not the point at infinity, equal to the point added or to
// its negation: the branches of AddNonConst that double or return the
// point at infinity), the number of doublings, and the final multiple.
func rvChain(k *secp256k1.ModNScalar) (exceptional, doublings int, acc *big.Int) {
	var neg [2]bool
	var digits [2][maxDigits]int8
	n := keyDigits(k, &digits, &neg)
	lam := rvLambda()
	acc = new(big.Int)
	for i := n - 1; i >= 0; i-- {
		acc.Lsh(acc, 1).Mod(acc, curveN)
		doublings++
		for h := range 2 {
			d := digits[h][i]
			if d == 0 {
				continue
			}
			add := big.NewInt(int64(d))
			if neg[h] {
				add.Neg(add)
			}
			if h == 1 {
				add.Mul(add, lam)
			}
			add.Mod(add, curveN)
			negAdd := new(big.Int).Sub(curveN, add)
			if acc.Sign() != 0 && (acc.Cmp(add) == 0 || acc.Cmp(negAdd) == 0) {
				exceptional++
			}
			acc.Add(acc, add).Mod(acc, curveN)
		}
	}
	return exceptional, doublings, acc
}

// TestReviewChainNeverExceptional: on random and adversarial scalars,
// mulKey's chain takes about 129 doublings at most (the split's halves
// stay below 2^129 even on the border of its rounding) and never adds a
// point to itself or to its negation, whatever the key (the chain's
// multiples are of q, so a key that is a small multiple of G changes
// nothing), and the replayed chain's multiple is k.
func TestReviewChainNeverExceptional(t *testing.T) {
	rng := rand.New(rand.NewPCG(1601, 1602))
	ks := rvAdversarialScalars(rng)
	for range 3000 {
		ks = append(ks, randScalar(rng))
	}
	maxDbl := 0
	for _, k := range ks {
		exc, dbl, acc := rvChain(&k)
		if acc.Cmp(scalarBig(&k)) != 0 {
			t.Fatalf("the chain of k = %x yields %x·q", k.Bytes(), acc)
		}
		if exc != 0 {
			t.Fatalf("the chain of k = %x has %d exceptional additions", k.Bytes(), exc)
		}
		maxDbl = max(maxDbl, dbl)
	}
	if maxDbl > 130 {
		t.Fatalf("a chain takes %d doublings: the split left a long half", maxDbl)
	}
	t.Logf("%d scalars, at most %d doublings, no exceptional addition", len(ks), maxDbl)
}

// rvPsi maps the secp256k1 point p (Jacobian) to the curve
// y² = x³ + 7·zc⁶, as mulKey does: (X·zc², Y·zc³, Z).
func rvPsi(p *secp256k1.JacobianPoint, zc *secp256k1.FieldVal) secp256k1.JacobianPoint {
	r := rvScale(p, zc)
	r.Z.Set(&p.Z).Normalize()
	return r
}

// rvScale returns p in the Jacobian representation of Z scaled by t.
func rvScale(p *secp256k1.JacobianPoint, t *secp256k1.FieldVal) secp256k1.JacobianPoint {
	var t2, t3 secp256k1.FieldVal
	t2.SquareVal(t)
	t3.Mul2(&t2, t)
	var r secp256k1.JacobianPoint
	r.X.Mul2(&p.X, &t2).Normalize()
	r.Y.Mul2(&p.Y, &t3).Normalize()
	r.Z.Mul2(&p.Z, t).Normalize()
	return r
}

func rvField(rng *rand.Rand) secp256k1.FieldVal {
	for {
		var b [32]byte
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		var f secp256k1.FieldVal
		if f.SetBytes(&b) == 0 && !f.IsZero() {
			return f
		}
	}
}

// TestReviewExceptionalOnIsomorphicCurve: were an addition of mulKey's
// chain ever exceptional, decred's formulas would still be right on the
// isomorphic curve: P + P is 2P and P + (−P) the point at infinity, in
// each of AddNonConst's branches (both Z one, equal Z, Z2 one, generic),
// mapped back as mulKey maps its result (Z times zc).
func TestReviewExceptionalOnIsomorphicCurve(t *testing.T) {
	rng := rand.New(rand.NewPCG(1603, 1604))
	one := new(secp256k1.FieldVal).SetInt(1)
	for i := range 200 {
		var c secp256k1.ModNScalar
		if i < 16 {
			c.SetInt(uint32(i/2 + 1))
			if i%2 == 1 {
				c.Negate()
			}
		} else {
			c = randScalar(rng)
			if c.IsZero() {
				c.SetInt(5)
			}
		}
		var P, P2 secp256k1.JacobianPoint
		secp256k1.ScalarBaseMultNonConst(&c, &P)
		P.ToAffine()
		secp256k1.DoubleNonConst(&P, &P2)
		zc := rvField(rng)
		if i%7 == 0 {
			zc.SetInt(1)
		}
		base := rvPsi(&P, &zc)
		t1, t2 := rvField(rng), rvField(rng)
		reps := [][2]secp256k1.JacobianPoint{
			{base, base}, // Z1 = Z2 = 1
			{rvScale(&base, &t1), rvScale(&base, &t1)}, // Z1 = Z2
			{rvScale(&base, &t1), base},                // Z2 = 1
			{base, rvScale(&base, &t2)},                // generic (Z1 = 1 first)
			{rvScale(&base, &t1), rvScale(&base, &t2)}, // generic
			{rvScale(&base, one), rvScale(&base, &t2)}, // generic
		}
		for j, rp := range reps {
			a, b := rp[0], rp[1]
			var sum secp256k1.JacobianPoint
			secp256k1.AddNonConst(&a, &b, &sum)
			sum.Z.Mul(&zc).Normalize()
			if !affineEqual(&sum, &P2) {
				t.Fatalf("case %d, rep %d: P + P on the isomorphic curve is not 2P", i, j)
			}
			b.Y.Negate(1).Normalize()
			secp256k1.AddNonConst(&a, &b, &sum)
			if !(sum.X.IsZero() && sum.Y.IsZero()) && !sum.Z.IsZero() {
				t.Fatalf("case %d, rep %d: P + (−P) on the isomorphic curve is not infinity", i, j)
			}
		}
	}
}

// rvKeys returns keys that are small multiples of G and their negations,
// φ(G) = λ·G and its small multiples, and random keys.
func rvKeys(t *testing.T, rng *rand.Rand, random int) []secp256k1.JacobianPoint {
	var out []secp256k1.JacobianPoint
	lam := rvLambda()
	for i := int64(1); i <= 8; i++ {
		for _, m := range []*big.Int{big.NewInt(i), big.NewInt(-i), new(big.Int).Mul(lam, big.NewInt(i)), new(big.Int).Mul(lam, big.NewInt(-i))} {
			s := rvScalar(m)
			var q secp256k1.JacobianPoint
			secp256k1.ScalarBaseMultNonConst(&s, &q)
			q.ToAffine()
			out = append(out, q)
		}
	}
	for range random {
		var q secp256k1.JacobianPoint
		randKey(t, rng).PubKey().AsJacobian(&q)
		out = append(out, q)
	}
	return out
}

// TestReviewMulKeyAdversarial: mulKey is decred's ScalarMultNonConst on
// the adversarial scalars (for a sample of them per key: all on a few
// keys) on small multiples of G and of φ(G), their negations and random
// keys.
func TestReviewMulKeyAdversarial(t *testing.T) {
	rng := rand.New(rand.NewPCG(1605, 1606))
	ks := rvAdversarialScalars(rng)
	keys := rvKeys(t, rng, 8)
	n := 0
	for i, q := range keys {
		sample := ks
		if i >= 2 {
			sample = nil
			for range 100 {
				sample = append(sample, ks[rng.IntN(len(ks))])
			}
		}
		for _, k := range sample {
			var got, want secp256k1.JacobianPoint
			mulKey(&k, &q, &got)
			secp256k1.ScalarMultNonConst(&k, &q, &want)
			if !affineEqual(&got, &want) {
				qq := q
				qq.ToAffine()
				t.Fatalf("mulKey(%x, (%v, %v)) differs from decred's product", k.Bytes(), qq.X.String(), qq.Y.String())
			}
			n++
		}
	}
	t.Logf("%d products on %d keys", n, len(keys))
}

// rvSig returns the signature r || s || v with v of y's parity.
func rvSig(r, s *secp256k1.ModNScalar, odd bool) signer.Signature {
	var sig signer.Signature
	setScalarBytes(sig[:32], r)
	setScalarBytes(sig[32:64], s)
	sig[64] = 27
	if odd {
		sig[64] = 28
	}
	return sig
}

// rvCrafted returns signatures and digests made to hit recovery's edges:
// R = k·G for small k (and λ·k) with e chosen so that recovery's last
// addition is u1·G + u2·R with u1·G = u2·R (a doubling), = −u2·R (the
// point at infinity), or the key is G, −G, 2G, λ·G; r near N and small r
// (x of no curve point or of one), s = 1 and s = N/2; digests ≥ N (e + N
// as bytes).
func rvCrafted(rng *rand.Rand) (ds [][32]byte, sigs []signer.Signature) {
	push := func(e *big.Int, sig signer.Signature) {
		var d [32]byte
		e = new(big.Int).Mod(e, curveN)
		copy(d[:], bigBytes32(e))
		ds = append(ds, d)
		sigs = append(sigs, sig)
		// The same e as digest e + N, where that fits in 32 bytes.
		if f := new(big.Int).Add(e, curveN); f.BitLen() <= 256 {
			copy(d[:], bigBytes32(f))
			ds = append(ds, d)
			sigs = append(sigs, sig)
		}
	}
	halfN := new(big.Int).Rsh(curveN, 1)
	lam := rvLambda()
	var mults []*big.Int
	for i := int64(1); i <= 8; i++ {
		mults = append(mults, big.NewInt(i), big.NewInt(-i), new(big.Int).Mul(lam, big.NewInt(i)))
	}
	for range 8 {
		mults = append(mults, rvRandBelow(rng, curveN))
	}
	for _, km := range mults {
		k := rvScalar(km)
		if k.IsZero() {
			continue
		}
		var R secp256k1.JacobianPoint
		secp256k1.ScalarBaseMultNonConst(&k, &R)
		R.ToAffine()
		rb := R.X.Bytes()
		rInt := new(big.Int).SetBytes(rb[:])
		if rInt.Cmp(curveN) >= 0 {
			continue // no Ethereum encoding
		}
		kInt := scalarBig(&k)
		for _, sInt := range []*big.Int{big.NewInt(1), big.NewInt(2), halfN, rvRandBelow(rng, halfN)} {
			if sInt.Sign() == 0 {
				sInt = big.NewInt(3)
			}
			r, s := rvScalar(rInt), rvScalar(sInt)
			sig := rvSig(&r, &s, R.Y.IsOdd())
			sk := new(big.Int).Mul(sInt, kInt)
			// Q = (s·k − e)/r · G.
			push(new(big.Int).Neg(sk), sig)                            // u1·G = u2·R: doubling
			push(sk, sig)                                              // infinity
			push(new(big.Int).Sub(sk, rInt), sig)                      // Q = G
			push(new(big.Int).Add(sk, rInt), sig)                      // Q = −G
			push(new(big.Int).Sub(sk, new(big.Int).Lsh(rInt, 1)), sig) // Q = 2G
			lr := new(big.Int).Mul(lam, rInt)
			push(new(big.Int).Sub(sk, lr), sig) // Q = λ·G
			// The other parity: R's negation.
			sig2 := sig
			sig2[64] ^= 27 ^ 28
			push(new(big.Int).Neg(sk), sig2)
			push(sk, sig2)
		}
	}
	// r near N and small r, either parity, random and edge s and e.
	var edgeR []*big.Int
	for i := int64(1); i <= 24; i++ {
		edgeR = append(edgeR, big.NewInt(i), new(big.Int).Sub(curveN, big.NewInt(i)))
	}
	for _, rInt := range edgeR {
		for _, sInt := range []*big.Int{big.NewInt(1), halfN, new(big.Int).Add(rvRandBelow(rng, halfN), big.NewInt(1))} {
			r, s := rvScalar(rInt), rvScalar(sInt)
			for _, odd := range []bool{false, true} {
				sig := rvSig(&r, &s, odd)
				push(big.NewInt(0), sig)
				push(rvRandBelow(rng, curveN), sig)
				push(new(big.Int).Sub(curveN, big.NewInt(1)), sig)
			}
		}
	}
	return ds, sigs
}

// rvRandBelow returns a random integer in [0, n) (n of at most 256 bits;
// the slight bias does not matter here).
func rvRandBelow(rng *rand.Rand, n *big.Int) *big.Int {
	var b [40]byte
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	x := new(big.Int).SetBytes(b[:])
	return x.Mod(x, n)
}

// TestReviewRecoverPub: recoverPub yields decred's RecoverCompact's key,
// or none where it fails, on the crafted signatures and on random ones
// (random r, s, digest and v: about half have no curve point at r); and
// the Verifier gives signer.VerifyKey's verdict and error (for every
// crafted signature that recovers, an eighth of the others), with the
// device the key recovered (so that acceptance is at stake) or, for an
// eighth of them and where none is recovered, another, through each
// path: an unknown device (recovery), a device in the key tier (mulKey),
// a young one (a table).
func TestReviewRecoverPub(t *testing.T) {
	rng := rand.New(rand.NewPCG(1607, 1608))
	ds, sigs := rvCrafted(rng)
	crafted := len(sigs)
	for range 1200 {
		var d [32]byte
		var sig signer.Signature
		for i := range d {
			d[i] = byte(rng.Uint32())
		}
		for i := range 64 {
			sig[i] = byte(rng.Uint32())
		}
		sig[32] &= 0x7f // low s, mostly
		sig[64] = byte(27 + rng.IntN(2))
		ds = append(ds, d)
		sigs = append(sigs, sig)
	}
	recovered, infinity, noPoint := 0, 0, 0
	other := newTestKey(t, rng).addr
	for i, sig := range sigs {
		d := ds[i]
		sameRecovery(t, d, sig)
		var c [65]byte
		c[0] = sig[64]
		copy(c[1:], sig[:64])
		pub, _, err := ecdsa.RecoverCompact(c[:], d[:])
		switch {
		case err == nil:
			recovered++
		case wellFormed(&sig) && recoverPub(&d, &sig) == nil:
			var fr secp256k1.FieldVal
			var y secp256k1.FieldVal
			fr.SetByteSlice(sig[:32])
			if secp256k1.DecompressY(&fr, false, &y) {
				infinity++
			} else {
				noPoint++
			}
		}
		if (i >= crafted || pub == nil) && i%8 != 0 {
			continue // the Verifier on every crafted recovery, an eighth of the rest
		}
		var devs []signer.Address
		if pub != nil {
			devs = append(devs, signer.AddressOf(pub))
		}
		if pub == nil || i%8 == 0 {
			devs = append(devs, other)
		}
		for _, dev := range devs {
			a := &signer.Attestation{V: signer.Version, Device: dev, Seq: 1, Batches: 1, Sig: sig}
			v := New(testChainID, 4, 16)
			for pass := range 3 { // unknown, then known, then young (a table)
				_, want := signer.VerifyKey(testChainID, a, d)
				got := v.Verify(a, d)
				if (got == nil) != (want == nil) || (got != nil && got.Error() != want.Error()) {
					t.Fatalf("pass %d, sig %x, digest %x, device %v: Verify = %v, reference %v", pass, sig, d, dev, got, want)
				}
			}
		}
	}
	if recovered < 200 || infinity < 16 {
		t.Fatalf("the cases do not cover recovery: %d recovered, %d infinity", recovered, infinity)
	}
	t.Logf("%d signatures (%d crafted): %d recovered, %d at infinity, %d with no point at r", len(sigs), crafted, recovered, infinity, noPoint)
}

// TestReviewBadFieldsCostNoRecovery: an attestation of a device not in
// the cache whose fields are invalid but whose signature is well formed
// (and its device's) is refused with the reference's error after no more
// work than two field checks (the Verifier's and the reference's), not
// after a recovery: counted in allocations, which a recovery adds
// (math/big's inversion, the key, its serialization). A device's MQTT
// identity could otherwise make the collector recover a key for each
// such message, where signer.Verify only checks the fields.
func TestReviewBadFieldsCostNoRecovery(t *testing.T) {
	rng := rand.New(rand.NewPCG(1609, 1610))
	k := newTestKey(t, rng)
	a := attestation(t, k, 1)
	a.Meters++ // the modes no longer sum to the meters
	d := signer.Digest(testChainID, a)
	want := signer.Verify(testChainID, a)
	if want == nil || !wellFormed(&a.Sig) || recoverPub(&d, &a.Sig) == nil {
		t.Fatal("the case is not a bad field under a good signature")
	}
	v := New(testChainID, 10, 100)
	var got error
	allocs := testing.AllocsPerRun(50, func() { got = v.Verify(a, d) })
	if got == nil || got.Error() != want.Error() {
		t.Fatalf("Verify = %v, want %v", got, want)
	}
	validate := testing.AllocsPerRun(50, func() { _ = a.Validate() })
	// A recovery adds about 19; a few are allowed for the race
	// detector's own (14 under -race, 12 without).
	if allocs > 2*validate+6 {
		t.Fatalf("a refused field costs %.0f allocations, two field checks %.0f: a recovery ran", allocs, 2*validate)
	}
	if v.Keys() != 0 {
		t.Fatal("a refused attestation's key entered the cache")
	}
}

// FuzzReviewVerifier: for arbitrary digest and signature bytes and
// attestation fields (some broken as flags say), a fresh Verifier gives
// signer.VerifyKey's verdict and error three times in a row (a device
// unknown, then in the key tier, then with a table), with the device the
// signature recovers to when it recovers (flag bit 0) or a fixed one.
func FuzzReviewVerifier(f *testing.F) {
	rng := rand.New(rand.NewPCG(1611, 1612))
	key := newTestKey(f, rng)
	for i := range 6 {
		a := attestation(f, key, uint64(i+1))
		d := signer.Digest(testChainID, a)
		for _, flags := range []byte{1, 0, 3, 5, 9, 17} {
			f.Add(d[:], a.Sig[:], flags)
		}
		_, s1, d2, s2 := infinityCases(f, rng, key, a.Sig)
		f.Add(d2[:], s2[:], byte(1))
		f.Add(d[:], s1[:], byte(1))
	}
	fixed := key.addr
	f.Fuzz(func(t *testing.T, d, s []byte, flags byte) {
		if len(d) != 32 || len(s) != 65 {
			return
		}
		var dd [32]byte
		var sig signer.Signature
		copy(dd[:], d)
		copy(sig[:], s)
		a := &signer.Attestation{V: signer.Version, Device: fixed, Seq: 1, Batches: 1, Meters: 5,
			Modes: []signer.ModeMeters{{Mode: "ECO", Meters: 5}}, Sig: sig}
		if flags&1 != 0 {
			var c [65]byte
			c[0] = sig[64]
			copy(c[1:], sig[:64])
			if pub, _, err := ecdsa.RecoverCompact(c[:], dd[:]); err == nil {
				a.Device = signer.AddressOf(pub)
			}
		}
		if flags&2 != 0 {
			a.Seq = 0
		}
		if flags&4 != 0 {
			a.Meters++
		}
		if flags&8 != 0 {
			a.V = 2
		}
		if flags&16 != 0 {
			a.Flags = 1 << 31
		}
		v := New(testChainID, 4, 16)
		for pass := range 3 {
			_, want := signer.VerifyKey(testChainID, a, dd)
			got := v.Verify(a, dd)
			if (got == nil) != (want == nil) || (got != nil && got.Error() != want.Error()) {
				t.Fatalf("pass %d: Verify = %v, reference %v", pass, got, want)
			}
		}
	})
}
