package sigcache

import (
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// randScalar returns a random scalar, with a few edge values among them.
func randScalar(rng *rand.Rand) secp256k1.ModNScalar {
	var k secp256k1.ModNScalar
	switch rng.IntN(8) {
	case 0:
		k.SetInt(uint32(rng.IntN(40)))
	case 1:
		k.SetInt(uint32(rng.IntN(40)))
		k.Negate()
	default:
		var b [32]byte
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		k.SetBytes(&b)
	}
	return k
}

func randKey(t testing.TB, rng *rand.Rand) *secp256k1.PrivateKey {
	t.Helper()
	for {
		var b [32]byte
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		var k secp256k1.ModNScalar
		if overflow := k.SetBytes(&b); overflow == 0 && !k.IsZero() {
			return secp256k1.NewPrivateKey(&k)
		}
	}
}

func affineEqual(a, b *secp256k1.JacobianPoint) bool {
	ainf := (a.X.IsZero() && a.Y.IsZero()) || a.Z.IsZero()
	binf := (b.X.IsZero() && b.Y.IsZero()) || b.Z.IsZero()
	if ainf || binf {
		return ainf == binf
	}
	x, y := *a, *b
	x.ToAffine()
	y.ToAffine()
	return x.X.Equals(&y.X) && x.Y.Equals(&y.Y)
}

func scalarBig(k *secp256k1.ModNScalar) *big.Int {
	b := k.Bytes()
	return new(big.Int).SetBytes(b[:])
}

var curveN = secp256k1.S256().N

// TestEndomorphism: φ(G) = (β·x, y) is λ·G with λ = -endoNegLambda, and
// λ·P = φ(P) for another point.
func TestEndomorphism(t *testing.T) {
	lambda := endoNegLambda
	lambda.Negate()
	rng := rand.New(rand.NewPCG(1, 2))
	for range 4 {
		k := randKey(t, rng)
		var p, want, got secp256k1.JacobianPoint
		k.PubKey().AsJacobian(&p)
		secp256k1.ScalarMultNonConst(&lambda, &p, &want)
		got.Set(&p)
		got.X.Mul(&endoBeta).Normalize()
		if !affineEqual(&got, &want) {
			t.Fatalf("φ(P) is not λ·P for P = %x", k.PubKey().SerializeCompressed())
		}
	}
}

// TestSplitK: k1 + k2·λ ≡ k (mod N), both halves short (up to sign).
func TestSplitK(t *testing.T) {
	lambda := endoNegLambda
	lambda.Negate()
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 20000 {
		k := randScalar(rng)
		k1, k2 := splitK(&k)
		var sum secp256k1.ModNScalar
		sum.Mul2(&k2, &lambda).Add(&k1)
		if !sum.Equals(&k) {
			t.Fatalf("case %d: k1 + k2·λ != k for k = %x", i, k.Bytes())
		}
		for _, h := range []secp256k1.ModNScalar{k1, k2} {
			if h.IsOverHalfOrder() {
				h.Negate()
			}
			if n := scalarBig(&h).BitLen(); n > 129 {
				t.Fatalf("case %d: a half of k = %x has %d bits, want <= 129", i, k.Bytes(), n)
			}
		}
	}
}

// TestWNAF: the digits sum to k, are odd and in range, and no window holds
// two nonzero digits.
func TestWNAF(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	cases := []secp256k1.ModNScalar{}
	var minus1 secp256k1.ModNScalar
	minus1.SetInt(1).Negate() // N-1, 256 bits
	cases = append(cases, minus1, secp256k1.ModNScalar{})
	for range 20000 {
		cases = append(cases, randScalar(rng))
	}
	for i, k := range cases {
		var d [maxDigits]int8
		n := wnaf(&k, &d)
		sum := new(big.Int)
		last := -window
		for j := n - 1; j >= 0; j-- {
			sum.Lsh(sum, 1)
			sum.Add(sum, big.NewInt(int64(d[j])))
			if d[j] == 0 {
				continue
			}
			if d[j]%2 == 0 || d[j] >= 1<<(window-1) || d[j] <= -(1<<(window-1)) {
				t.Fatalf("case %d: digit %d at %d", i, d[j], j)
			}
			if last-j < window && last != -window {
				t.Fatalf("case %d: digits at %d and %d within one window", i, last, j)
			}
			last = j
		}
		for j := n; j < maxDigits; j++ {
			if d[j] != 0 {
				t.Fatalf("case %d: digit beyond the length %d", i, n)
			}
		}
		if sum.Cmp(scalarBig(&k)) != 0 {
			t.Fatalf("case %d: digits sum to %x, want %x", i, sum, k.Bytes())
		}
	}
}

// TestTableMul: the table's product is the library's, for random and
// edge scalars (0, small, N-small) on random keys.
func TestTableMul(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for range 50 {
		key := randKey(t, rng)
		var q secp256k1.JacobianPoint
		key.PubKey().AsJacobian(&q)
		tab := newTable(&q)
		for j := range tableSize {
			var m secp256k1.ModNScalar
			m.SetInt(uint32(2*j + 1))
			var want secp256k1.JacobianPoint
			secp256k1.ScalarMultNonConst(&m, &q, &want)
			for b := range bases {
				// Base b is 2^(chunkBits·(b mod chunks))·Q, times λ when b >= chunks.
				var w, m2 secp256k1.JacobianPoint
				w.Set(&want)
				for range chunkBits * (b % chunks) {
					secp256k1.DoubleNonConst(&w, &w)
				}
				if b >= chunks {
					lambda := endoNegLambda
					lambda.Negate()
					secp256k1.ScalarMultNonConst(&lambda, &w, &m2)
					w = m2
				}
				p := &tab.pts[b][j]
				got := secp256k1.MakeJacobianPoint(&p.x, &p.y, new(secp256k1.FieldVal).SetInt(1))
				if !affineEqual(&got, &w) {
					t.Fatalf("table base %d entry %d is not its %d·B", b, j, 2*j+1)
				}
			}
		}
		for range 100 {
			k := randScalar(rng)
			var got, want secp256k1.JacobianPoint
			tab.mul(&k, &got)
			secp256k1.ScalarMultNonConst(&k, &q, &want)
			if !affineEqual(&got, &want) {
				t.Fatalf("k·Q differs for k = %x", k.Bytes())
			}
		}
	}
}

// TestMulKey: the key tier's product is the library's, for random and
// edge scalars (0, small, N-small, λ and its neighbours, whose halves are
// zero or one) on random keys and on keys that are small multiples of G or
// their negations.
func TestMulKey(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	lambda := endoNegLambda
	lambda.Negate()
	var one secp256k1.ModNScalar
	one.SetInt(1)
	edges := []secp256k1.ModNScalar{{}, one, lambda}
	var l1, l2 secp256k1.ModNScalar
	l1.Add2(&lambda, &one)
	l2.Set(&lambda).Negate()
	edges = append(edges, l1, l2)
	var keys []*secp256k1.PrivateKey
	for i := 1; i <= 8; i++ {
		var s secp256k1.ModNScalar
		s.SetInt(uint32(i))
		keys = append(keys, secp256k1.NewPrivateKey(&s))
		s.Negate()
		keys = append(keys, secp256k1.NewPrivateKey(&s))
	}
	for range 60 {
		keys = append(keys, randKey(t, rng))
	}
	for _, key := range keys {
		var q secp256k1.JacobianPoint
		key.PubKey().AsJacobian(&q)
		ks := append([]secp256k1.ModNScalar(nil), edges...)
		// Small multiples and their negations: the product is then one
		// of the table's points or the sum of two equal points.
		for m := uint32(1); m < 2*tableSize+2; m++ {
			var s secp256k1.ModNScalar
			s.SetInt(m)
			ks = append(ks, s)
			s.Negate()
			ks = append(ks, s)
		}
		for range 100 {
			ks = append(ks, randScalar(rng))
		}
		for _, k := range ks {
			var got, want secp256k1.JacobianPoint
			mulKey(&k, &q, &got)
			secp256k1.ScalarMultNonConst(&k, &q, &want)
			if !affineEqual(&got, &want) {
				t.Fatalf("k·Q differs for k = %x, Q = %x", k.Bytes(), key.PubKey().SerializeCompressed())
			}
		}
	}
}

// TestInvert: invert is decred's FieldVal.Inverse on random values, small
// ones, P-1 and values given unnormalized.
func TestInvert(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	var cases []secp256k1.FieldVal
	for i := uint16(1); i < 20; i++ {
		var f secp256k1.FieldVal
		cases = append(cases, *f.SetInt(i))
		f.Negate(1).Normalize()
		cases = append(cases, f)
	}
	for range 2000 {
		var b [32]byte
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		var f secp256k1.FieldVal
		f.SetBytes(&b)
		if f.IsZero() {
			continue
		}
		cases = append(cases, f)
		var g secp256k1.FieldVal
		g.Set(&f).Add(&f).Add(&f) // magnitude 3, not normalized
		cases = append(cases, g)
	}
	for _, f := range cases {
		var got, want secp256k1.FieldVal
		invert(&f, &got)
		want.Set(&f).Inverse().Normalize()
		if !got.Normalize().Equals(&want) {
			t.Fatalf("1/%v: got %v, want %v", f.String(), got.String(), want.String())
		}
	}
}
