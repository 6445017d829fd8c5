package sigcache

import (
	"encoding/hex"
	"math/bits"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// window is the width of the signed-digit (wNAF) form of the scalars
// multiplied with a device key: digits are odd, in [-(2^(window-1)-1),
// 2^(window-1)-1], so a table holds the 2^(window-2) odd multiples
// 1B, 3B, ..., (2^(window-1)-1)B of each of its bases B (see chunks).
const window = 4

// tableSize is the number of odd multiples in each half of a table.
const tableSize = 1 << (window - 2)

// The endomorphism φ(x, y) = (β·x, y) = λ·(x, y) of secp256k1 and the
// constants of the scalar split k = k1 + k2·λ (mod N) with k1, k2 of about
// 128 bits (GLV; [GECC] §3.5). The values are those of
// github.com/decred/dcrd/dcrec/secp256k1/v4 curve.go, which keeps them
// unexported; TestEndomorphism checks them against the curve.
var (
	endoNegLambda = scalarHex("-5363ad4cc05c30e0a5261c028812645a122e22ea20816678df02967c1b23bd72")
	endoBeta      = fieldHex("7ae96a2b657c07106e64479eac3434e99cf0497512f58995c1396c28719501ee")
	endoNegB1     = scalarHex("e4437ed6010e88286f547fa90abfe4c3")
	endoNegB2     = scalarHex("-3086d221a7d46bcde86c90e49284eb15")
	endoZ1        = scalarHex("3086d221a7d46bcde86c90e49284eb153daa8a1471e8ca7f")
	endoZ2        = scalarHex("e4437ed6010e88286f547fa90abfe4c4221208ac9df506c6")
)

// scalarHex returns the scalar of hex digits, negated with a leading "-".
func scalarHex(s string) secp256k1.ModNScalar {
	neg := s[0] == '-'
	if neg {
		s = s[1:]
	}
	var k secp256k1.ModNScalar
	if k.SetByteSlice(mustHex(s)) {
		panic("sigcache: constant " + s + " overflows the group order")
	}
	if neg {
		k.Negate()
	}
	return k
}

// fieldHex returns the field value of hex digits.
func fieldHex(s string) secp256k1.FieldVal {
	var f secp256k1.FieldVal
	if f.SetByteSlice(mustHex(s)) {
		panic("sigcache: constant " + s + " overflows the field prime")
	}
	return f
}

func mustHex(s string) []byte {
	if len(s)%2 == 1 {
		s = "0" + s
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		panic("sigcache: constant " + s + ": " + err.Error())
	}
	return b
}

// limbs returns k as four 64-bit limbs, least significant first.
func limbs(k *secp256k1.ModNScalar) [4]uint64 {
	b := k.Bytes()
	var l [4]uint64
	for i := range l {
		for j := 0; j < 8; j++ {
			l[i] |= uint64(b[31-8*i-j]) << (8 * j)
		}
	}
	return l
}

// scalarOfLimbs returns the scalar of four limbs whose value is below N.
func scalarOfLimbs(l [4]uint64) secp256k1.ModNScalar {
	var b [32]byte
	for i := range l {
		for j := 0; j < 8; j++ {
			b[31-8*i-j] = byte(l[i] >> (8 * j))
		}
	}
	var k secp256k1.ModNScalar
	k.SetBytes(&b)
	return k
}

// mulShift320Round returns round(a·b / 2^320) for a < 2^256 and b < 2^192,
// which is below 2^128.
func mulShift320Round(a, b *secp256k1.ModNScalar) secp256k1.ModNScalar {
	x, y := limbs(a), limbs(b)
	var p [8]uint64
	for i := 0; i < 4; i++ {
		var carry uint64
		for j := 0; j < 4; j++ {
			hi, lo := bits.Mul64(x[i], y[j])
			var c uint64
			lo, c = bits.Add64(lo, p[i+j], 0)
			hi += c
			lo, c = bits.Add64(lo, carry, 0)
			hi += c
			p[i+j] = lo
			carry = hi
		}
		p[i+4] = carry
	}
	// Bits 320 and up, plus bit 319 to round.
	r0, c := bits.Add64(p[5], p[4]>>63, 0)
	r1, c := bits.Add64(p[6], 0, c)
	r2, _ := bits.Add64(p[7], 0, c)
	return scalarOfLimbs([4]uint64{r0, r1, r2, 0})
}

// splitK returns k1, k2 with k1 + k2·λ ≡ k (mod N), each of about 128 bits
// or the negation (mod N) of such. Whatever the rounding, the identity
// holds exactly (k1 is computed from k2), so a product through the split is
// correct; the rounding only keeps the halves short.
func splitK(k *secp256k1.ModNScalar) (k1, k2 secp256k1.ModNScalar) {
	c1 := mulShift320Round(k, &endoZ1)
	c2 := mulShift320Round(k, &endoZ2)
	k2.Add2(c1.Mul(&endoNegB1), c2.Mul(&endoNegB2))
	k1.Mul2(&k2, &endoNegLambda).Add(k)
	return k1, k2
}

// maxDigits bounds the wNAF digits of a value below 2^256.
const maxDigits = 257

// wnaf writes the width-window NAF digits of k (least significant first)
// to out and returns how many there are: k = Σ out[i]·2^i, every nonzero
// digit odd and below 2^(window-1) in magnitude, and any window digits
// holding at most one nonzero.
func wnaf(k *secp256k1.ModNScalar, out *[maxDigits]int8) int {
	l4 := limbs(k)
	return wnafLimbs([5]uint64{l4[0], l4[1], l4[2], l4[3], 0}, out)
}

// wnafLimbs is wnaf of a value below 2^256 in limbs, least significant
// first (the fifth takes the carries of the digits).
func wnafLimbs(l [5]uint64, out *[maxDigits]int8) int {
	n := 0
	for l != [5]uint64{} {
		if l[0]&1 == 0 {
			z := bits.TrailingZeros64(l[0]) // 64 when the limb is 0
			shiftRight(&l, uint(z))
			n += z
			continue
		}
		m := int64(l[0] & (1<<window - 1))
		if m >= 1<<(window-1) {
			m -= 1 << window
		}
		out[n] = int8(m)
		// l -= m: afterwards the low window bits are zero.
		var c uint64
		if m > 0 {
			l[0], c = bits.Sub64(l[0], uint64(m), 0)
			for i := 1; i < len(l) && c != 0; i++ {
				l[i], c = bits.Sub64(l[i], 0, c)
			}
		} else {
			l[0], c = bits.Add64(l[0], uint64(-m), 0)
			for i := 1; i < len(l) && c != 0; i++ {
				l[i], c = bits.Add64(l[i], 0, c)
			}
		}
		shiftRight(&l, 1)
		n++
	}
	return n
}

// shiftRight shifts l right by z bits, 0 < z <= 64.
func shiftRight(l *[5]uint64, z uint) {
	if z == 64 {
		copy(l[:], l[1:])
		l[4] = 0
		return
	}
	for i := 0; i < len(l)-1; i++ {
		l[i] = l[i]>>z | l[i+1]<<(64-z)
	}
	l[4] >>= z
}

// Each GLV half (about 128 bits) is cut into chunks of chunkBits bits, the
// last taking whatever is above, and the table holds the odd multiples of
// 2^(i·chunkBits)·Q and of 2^(i·chunkBits)·φ(Q) for each chunk i: a product
// then takes about chunkBits doublings instead of 128.
const (
	chunks    = 4
	chunkBits = 128 / chunks
	bases     = 2 * chunks
)

// table holds, for each base B (see chunks), the odd multiples
// 1B, 3B, ..., (2^(window-1)-1)B, affine (Z = 1, normalized), so that each
// addition is a mixed one. Bases [0, chunks) are multiples of Q, the
// others of φ(Q).
type table struct {
	pts [bases][tableSize]affinePoint
}

// affinePoint is a point (x, y) on the curve, both normalized.
type affinePoint struct {
	x, y secp256k1.FieldVal
}

// tableBytes is the memory of one table.
const tableBytes = bases * tableSize * 80

// newTable returns the table of q, an affine point on the curve that is not
// the point at infinity (a public key).
func newTable(q *secp256k1.JacobianPoint) *table {
	var jac [chunks][tableSize]secp256k1.JacobianPoint
	b := *q
	for i := 0; i < chunks; i++ {
		if i > 0 {
			for range chunkBits {
				secp256k1.DoubleNonConst(&b, &b)
			}
		}
		row := &jac[i]
		var b2 secp256k1.JacobianPoint
		secp256k1.DoubleNonConst(&b, &b2)
		row[0].Set(&b)
		for j := 1; j < tableSize; j++ {
			secp256k1.AddNonConst(&row[j-1], &b2, &row[j])
		}
	}
	t := new(table)
	// To affine with one inversion (Montgomery's trick). No Z is zero: the
	// points are multiples below the group order N, which is prime, of a
	// point that is not the point at infinity.
	const n = chunks * tableSize
	at := func(i int) *secp256k1.JacobianPoint { return &jac[i/tableSize][i%tableSize] }
	var acc [n]secp256k1.FieldVal
	acc[0].Set(&at(0).Z)
	for i := 1; i < n; i++ {
		acc[i].Mul2(&acc[i-1], &at(i).Z).Normalize()
	}
	var inv secp256k1.FieldVal
	invert(&acc[n-1], &inv)
	for i := n - 1; i >= 0; i-- {
		p := at(i)
		var zi, zi2 secp256k1.FieldVal
		if i > 0 {
			zi.Mul2(&inv, &acc[i-1]).Normalize() // 1/Z_i
			inv.Mul(&p.Z).Normalize()            // 1/(Z_0···Z_(i-1))
		} else {
			zi.Set(&inv)
		}
		zi2.SquareVal(&zi)
		a := &t.pts[i/tableSize][i%tableSize]
		a.x.Mul2(&p.X, &zi2).Normalize()
		a.y.Mul2(&p.Y, zi2.Mul(&zi)).Normalize()
		phi := &t.pts[chunks+i/tableSize][i%tableSize]
		phi.x.Mul2(&a.x, &endoBeta).Normalize()
		phi.y.Set(&a.y)
	}
	return t
}

// mul sets res to k·Q: k = k1 + k2·λ, so k·Q = k1·Q + k2·φ(Q), each half
// cut into chunks, all in wNAF form along one chain of doublings.
func (t *table) mul(k *secp256k1.ModNScalar, res *secp256k1.JacobianPoint) {
	k1, k2 := splitK(k)
	var neg [bases]bool
	var digits [bases][maxDigits]int8
	n := 0
	for h, half := range [2]*secp256k1.ModNScalar{&k1, &k2} {
		isNeg := half.IsOverHalfOrder()
		if isNeg {
			half.Negate()
		}
		l4 := limbs(half)
		l := [5]uint64{l4[0], l4[1], l4[2], l4[3], 0}
		for i := 0; i < chunks; i++ {
			c := l
			if i < chunks-1 {
				c = lowBits(l, chunkBits)
			}
			neg[h*chunks+i] = isNeg
			n = max(n, wnafLimbs(c, &digits[h*chunks+i]))
			l = shiftRightBy(l, chunkBits)
		}
	}
	var q secp256k1.JacobianPoint // the point at infinity
	for i := n - 1; i >= 0; i-- {
		secp256k1.DoubleNonConst(&q, &q)
		for b := range bases {
			if d := digits[b][i]; d != 0 {
				addDigit(&q, &t.pts[b], d, neg[b])
			}
		}
	}
	res.Set(&q)
}

// lowBits returns the low n bits of l, 0 < n < 256.
func lowBits(l [5]uint64, n uint) [5]uint64 {
	var r [5]uint64
	q := n / 64
	copy(r[:q], l[:q])
	if m := n % 64; m != 0 {
		r[q] = l[q] & (1<<m - 1)
	}
	return r
}

// shiftRightBy returns l shifted right by n bits, 0 < n < 256.
func shiftRightBy(l [5]uint64, n uint) [5]uint64 {
	for n > 64 {
		shiftRight(&l, 64)
		n -= 64
	}
	shiftRight(&l, n)
	return l
}

// addDigit adds d·B to q from the table of B's odd multiples, negated when
// neg.
func addDigit(q *secp256k1.JacobianPoint, tab *[tableSize]affinePoint, d int8, neg bool) {
	if d < 0 {
		d, neg = -d, !neg
	}
	p := &tab[d>>1]
	var m secp256k1.JacobianPoint
	m.X.Set(&p.x)
	m.Y.Set(&p.y)
	m.Z.SetInt(1)
	if neg {
		m.Y.Negate(1).Normalize()
	}
	secp256k1.AddNonConst(q, &m, q)
}

// mulKey sets res to k·q for q an affine point on the curve that is not
// the point at infinity (a public key), without a cached table: the
// product of the key tier, faster than decred's ScalarMultNonConst (NAF,
// all additions by q or φ(q)) by using digits of width window.
//
// The odd multiples 1q, 3q, ..., (2^(window-1)-1)q are computed in
// Jacobian coordinates and brought to one common Z, Zc, with no inversion
// (each point's X and Y scaled by the product of the other points' Z). On
// the curve E' : y² = x³ + 7·Zc⁶, isomorphic to secp256k1 through
// ψ(x, y) = (x·Zc², y·Zc³), those points are affine: ψ of the multiples.
// The additions and doublings of decred's Jacobian formulas do not use
// the curve's constant b (a = 0 on both), so the product runs on E' with
// mixed additions, and ψ⁻¹ of its result (X, Y, Z) is (X, Y, Z·Zc) on
// secp256k1. ψ commutes with φ (both scale x), so φ's multiples on E' are
// (β·x, y) of the ones of q.
//
// (Measured and not kept: adding u1·G in the same chain of doublings,
// from a table of G's odd multiples of width 8 mapped to E' as they are
// added, was slower than decred's ScalarBaseMultNonConst beside it.)
func mulKey(k *secp256k1.ModNScalar, q *secp256k1.JacobianPoint, res *secp256k1.JacobianPoint) {
	var jac [tableSize]secp256k1.JacobianPoint
	var q2 secp256k1.JacobianPoint
	jac[0].Set(q)
	secp256k1.DoubleNonConst(q, &q2)
	for j := 1; j < tableSize; j++ {
		secp256k1.AddNonConst(&jac[j-1], &q2, &jac[j])
	}
	// No Z is zero: the points are multiples below N (prime) of a point
	// that is not the point at infinity. pre[j] = Z_0···Z_(j-1).
	var pre [tableSize + 1]secp256k1.FieldVal
	pre[0].SetInt(1)
	for j := range tableSize {
		pre[j+1].Mul2(&pre[j], &jac[j].Z).Normalize()
	}
	var pts [2][tableSize]affinePoint
	var suf secp256k1.FieldVal // Z_(j+1)···Z_(tableSize-1)
	suf.SetInt(1)
	for j := tableSize - 1; j >= 0; j-- {
		var s, s2 secp256k1.FieldVal
		s.Mul2(&pre[j], &suf).Normalize() // Zc / Z_j
		s2.SquareVal(&s)
		a := &pts[0][j]
		a.x.Mul2(&jac[j].X, &s2).Normalize()
		a.y.Mul2(&jac[j].Y, s2.Mul(&s)).Normalize()
		pts[1][j].x.Mul2(&a.x, &endoBeta).Normalize()
		pts[1][j].y.Set(&a.y)
		suf.Mul(&jac[j].Z).Normalize()
	}
	zc := &pre[tableSize]

	var neg [2]bool
	var digits [2][maxDigits]int8
	n := keyDigits(k, &digits, &neg)
	var p secp256k1.JacobianPoint // the point at infinity
	for i := n - 1; i >= 0; i-- {
		secp256k1.DoubleNonConst(&p, &p)
		for h := range pts {
			if d := digits[h][i]; d != 0 {
				addDigit(&p, &pts[h], d, neg[h])
			}
		}
	}
	res.Set(&p)
	res.Z.Mul(zc).Normalize()
}

// keyDigits writes the wNAF digits of k's GLV halves (k = k1 + k2·λ) to
// digits, each half made short by negation where neg says so (the half's
// product is then negated), and returns the number of digits of the
// longer: mulKey's chain, which TestReviewChainNeverExceptional replays.
func keyDigits(k *secp256k1.ModNScalar, digits *[2][maxDigits]int8, neg *[2]bool) int {
	k1, k2 := splitK(k)
	n := 0
	for h, half := range [2]*secp256k1.ModNScalar{&k1, &k2} {
		if neg[h] = half.IsOverHalfOrder(); neg[h] {
			half.Negate()
		}
		n = max(n, wnaf(half, &digits[h]))
	}
	return n
}
