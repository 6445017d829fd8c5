// Package sigcache verifies attestations of devices it has seen before
// against their cached public keys, faster than recovering the key from
// each signature, with exactly the verdicts of [signer.Verify].
//
// # Why it is the same check
//
// The contract, like [signer.Verify], accepts a signature (r, s, v) over
// digest e iff r and s are in [1, N-1], s <= N/2, v is 27 or 28, and the
// key recovered from it has the device's address. Recovery takes R, the
// curve point with x = r and y of v's parity (v has no overflow bit in
// Ethereum's encoding), and returns Q' = r⁻¹(s·R − e·G). For a known key Q,
// Q' = Q holds iff s·R − e·G = r·Q, that is iff R = u1·G + u2·Q with
// u1 = e/s, u2 = r/s (mod N; s is invertible, N being prime). So when the
// point R' = u1·G + u2·Q has affine x equal to r and y of v's parity, R' is
// the point recovery starts from (a curve point, since it is computed from
// two) and recovery yields Q; and when it does not, recovery does not
// yield Q. The fast path skips the square root that finds R, the
// serialization and Keccak hash of Q', and multiplies by Q through a
// table computed once per device: the scalar is split into two halves of
// about 128 bits with the curve's endomorphism (GLV), each half cut into
// four chunks of 32 bits, and the table holds the affine odd multiples
// 1B, 3B, 5B, 7B of the eight bases B = 2^(32i)·Q and 2^(32i)·φ(Q), so
// that the product takes 32 doublings and about 55 mixed additions (wNAF
// of width 4) where recovery's takes 128 doublings and about 86.
//
// The fast path only ever accepts. A device not in the cache is
// recovered as the reference recovers it, Q = r⁻¹(s·R − e·G) from the R
// of x = r and y of v's parity (recoverPub: the product by R through
// mulKey, the inversions through math/big; TestDifferential and
// FuzzVerify hold its key to decred's RecoverCompact's), and accepted
// when Q's address is the attestation's device and the fields are valid.
// Whatever the fast path does not accept (a malformed or other-key
// signature, a recovery that fails) goes to [signer.VerifyKey], the
// reference check, whose verdict and error are returned unchanged: a
// signature that fails the range checks goes there at once (no product),
// and a well-formed signature that is not the device's costs the fast
// check and then the reference's recovery, the price of returning the
// reference's error, which names the address recovered: about 1.5
// recoveries for a device with a table, about 1.8 for one known by its
// bare key or not known (no table: see mulKey), plus one table build
// (0.4) the first time a young device fails, whose table is kept. A key
// enters the cache (its key tier; a table is only ever built from a key
// of that tier, under the same address) only after a recovery yielded it
// for an attestation that names its address as the device, under that
// address, so a key of device A can only ever be tried on attestations
// that name A as their device.
//
// # The two tiers
//
// A key enters the key tier (at most the keys bound given to [New]; about
// [KeyBytes] per device) when a recovery has yielded it (above). A
// device in the key tier is checked with no table: u1·G by decred's
// product and u2·Q by mulKey's (digits of width 4 on a curve isomorphic
// to secp256k1 where the few odd multiples of Q computed for the check
// are affine, without an inversion), with the same acceptance as above:
// that skips the square root, the serialization and the Keccak hash of
// recovery, and takes about 0.75 of the time of decred's product by Q. A
// device seen again while its key tier entry is young (at most as many
// checks ago as the table tier holds devices: had it got a table then,
// the table would still be cached) gets a table, built from its key, in
// the table tier, a least-recently-used list of at most the tables bound
// given to [New] ([EntryBytes], 2.9 KB, each). The key tier evicts in the
// order keys were added (first in, first out: a ring of slots, O(1)); a
// device evicted is recovered again at its next attestation and added
// anew. A fleet that sends each device's attestations minutes apart,
// among thousands of others a second, takes the key tier's path; a
// device that attests in bursts takes the table's.
package sigcache

import (
	"math/big"
	"sync"
	"sync/atomic"

	"github.com/csop/tbox/signer"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// EntryBytes is about the memory of one device in the table tier.
const EntryBytes = tableBytes + 150

// KeyBytes is about the memory of one device in the key tier, measured
// with a full tier of DefaultKeys devices (BenchmarkKeyTierMemory): its
// slot (address, affine X and Y, a stamp: 88 bytes) and its share of the
// map from addresses to slots.
const KeyBytes = 144

// DefaultSize is a table tier size for a collector: 10,000 devices, about
// 29 MB.
const DefaultSize = 10000

// DefaultKeys is a key tier size for a collector: 1,000,000 devices,
// about 144 MB.
const DefaultKeys = 1000000

// Verifier checks attestations for one chain ID. It is safe for
// concurrent use.
type Verifier struct {
	chainID      uint64
	tables, keys int

	mu sync.Mutex
	// The table tier: devices with tables, in LRU order.
	hot map[signer.Address]*entry
	lru entry // sentinel of the ring, most recent after it
	// The key tier: slots in the order they were filled, the oldest at
	// hand once full.
	slot  map[signer.Address]uint32
	slots []keySlot
	hand  int
	clock uint32 // checks so far (wraps: a stamp only compares to recent ones)

	tableHits, keyHits, misses atomic.Uint64
	built                      atomic.Uint64 // tables built
}

// entry is a device of the table tier.
type entry struct {
	dev        signer.Address
	prev, next *entry
	tab        *table
}

// keySlot is a device of the key tier: its key's affine X and Y (big
// endian) and the clock at its last check.
type keySlot struct {
	dev   signer.Address
	xy    [64]byte
	stamp uint32
}

// New returns a verifier for attestations on chainID that keeps the tables
// of up to tables devices and the keys of up to keys devices (a tier is
// off when its size is <= 0; tables are built from the key tier, so
// keys <= 0 turns both off).
func New(chainID uint64, tables, keys int) *Verifier {
	v := &Verifier{chainID: chainID, tables: tables, keys: keys,
		hot: make(map[signer.Address]*entry), slot: make(map[signer.Address]uint32)}
	v.lru.prev, v.lru.next = &v.lru, &v.lru
	return v
}

// Verify checks a as [signer.Verify] (chainID of [New], a) does, with the
// same result, where digest is [signer.Digest](chainID, a), which the
// caller has already computed.
func (v *Verifier) Verify(a *signer.Attestation, digest [32]byte) error {
	if !wellFormed(&a.Sig) {
		// Refused by the reference check's range checks, before any
		// product: no lookup, no table for a signature no key can make.
		v.misses.Add(1)
		_, err := signer.VerifyKey(v.chainID, a, digest)
		return err
	}
	t, q, known, young := v.lookup(a.Device)
	if t != nil || known {
		if err := a.Validate(); err != nil {
			return err
		}
	}
	switch {
	case t != nil:
		if t.verify(&digest, &a.Sig) {
			v.tableHits.Add(1)
			return nil
		}
	case known && young:
		// The table is the key tier's key's, right whatever this
		// signature proves, so it is kept either way: a device whose
		// signatures fail pays for one table, not one per message.
		t = newTable(&q)
		v.built.Add(1)
		v.promote(a.Device, t)
		if t.verify(&digest, &a.Sig) {
			v.tableHits.Add(1)
			return nil
		}
	case known:
		if verifySig(&digest, &a.Sig, nil, &q) {
			v.keyHits.Add(1)
			return nil
		}
	}
	v.misses.Add(1)
	if t == nil && !known {
		// A device not in the cache: recovery as the reference does it,
		// through mulKey's product. What it does not accept goes on to
		// the reference for its error. The fields are checked first, as
		// the reference checks them: an attestation with a bad field
		// costs no recovery (TestReviewBadFieldsCostNoRecovery).
		if a.Validate() == nil {
			if pub := recoverPub(&digest, &a.Sig); pub != nil && signer.AddressOf(pub) == a.Device {
				v.add(a.Device, pub)
				return nil
			}
		}
	}
	pub, err := signer.VerifyKey(v.chainID, a, digest)
	if err != nil {
		return err
	}
	v.add(a.Device, pub)
	return nil
}

// Stats returns how many attestations the cached keys verified (hits:
// through a table or the bare key) and how many took the reference check
// (misses, refusals included).
func (v *Verifier) Stats() (hits, misses uint64) {
	return v.tableHits.Load() + v.keyHits.Load(), v.misses.Load()
}

// TierStats returns the hits of Stats split by tier: through a table,
// through the bare key.
func (v *Verifier) TierStats() (tableHits, keyHits uint64) {
	return v.tableHits.Load(), v.keyHits.Load()
}

// Built returns the number of tables built.
func (v *Verifier) Built() uint64 { return v.built.Load() }

// Len returns the number of devices with a table (the table tier).
func (v *Verifier) Len() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.hot)
}

// Keys returns the number of devices in the key tier.
func (v *Verifier) Keys() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.slot)
}

// lookup returns dev's table (dev now the most recent in the table tier),
// or else its key from the key tier (known false when absent) and
// whether the key tier saw dev within the last v.tables checks (young).
// Every call advances the clock.
func (v *Verifier) lookup(dev signer.Address) (t *table, q secp256k1.JacobianPoint, known, young bool) {
	if v.keys <= 0 {
		return nil, q, false, false
	}
	v.mu.Lock()
	v.clock++
	now := v.clock
	if e := v.hot[dev]; e != nil {
		v.unlink(e)
		v.pushFront(e)
		v.mu.Unlock()
		return e.tab, q, false, false
	}
	i, ok := v.slot[dev]
	if !ok {
		v.mu.Unlock()
		return nil, q, false, false
	}
	s := &v.slots[i]
	xy := s.xy
	young = v.tables > 0 && now-s.stamp <= uint32(v.tables)
	s.stamp = now
	v.mu.Unlock()
	q.X.SetByteSlice(xy[:32])
	q.Y.SetByteSlice(xy[32:])
	q.Z.SetInt(1)
	return nil, q, true, young
}

// promote puts dev's table t in the table tier, evicting the least
// recently used device beyond its bound.
func (v *Verifier) promote(dev signer.Address, t *table) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if old := v.hot[dev]; old != nil {
		// Another goroutine built it meanwhile: the same key.
		v.unlink(old)
		v.pushFront(old)
		return
	}
	e := &entry{dev: dev, tab: t}
	v.hot[dev] = e
	v.pushFront(e)
	for len(v.hot) > v.tables {
		last := v.lru.prev
		v.unlink(last)
		delete(v.hot, last.dev)
	}
}

// add puts pub, whose address the caller has checked is dev, in the key
// tier, replacing the oldest key once the tier is full.
func (v *Verifier) add(dev signer.Address, pub *secp256k1.PublicKey) {
	if v.keys <= 0 {
		return
	}
	var q secp256k1.JacobianPoint
	pub.AsJacobian(&q) // affine, normalized
	var xy [64]byte
	q.X.PutBytesUnchecked(xy[:32])
	q.Y.PutBytesUnchecked(xy[32:])
	v.addSlot(dev, xy)
}

// addSlot puts the key of affine coordinates xy in the key tier under dev.
func (v *Verifier) addSlot(dev signer.Address, xy [64]byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	s := keySlot{dev: dev, xy: xy, stamp: v.clock}
	if _, ok := v.slot[dev]; ok {
		return // another goroutine added it meanwhile: the same key
	}
	if len(v.slots) < v.keys {
		if len(v.slots) == cap(v.slots) {
			// Grow by doubling, never beyond the bound.
			grown := make([]keySlot, len(v.slots), min(max(2*cap(v.slots), 64), v.keys))
			copy(grown, v.slots)
			v.slots = grown
		}
		v.slot[dev] = uint32(len(v.slots))
		v.slots = append(v.slots, s)
		return
	}
	delete(v.slot, v.slots[v.hand].dev)
	v.slots[v.hand] = s
	v.slot[dev] = uint32(v.hand)
	v.hand = (v.hand + 1) % v.keys
}

func (v *Verifier) unlink(e *entry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (v *Verifier) pushFront(e *entry) {
	e.prev, e.next = &v.lru, v.lru.next
	e.next.prev, v.lru.next = e, e
}

// verify reports whether the signature sig over digest recovers to the
// table's key Q under the rules of signer.Verify (see the package
// comment). False means "not shown", not "refused".
func (t *table) verify(digest *[32]byte, sig *signer.Signature) bool {
	return verifySig(digest, sig, t, nil)
}

// verifySig is table.verify through t when t is not nil, else through
// mulKey by q, an affine point on the curve (a public key).
func verifySig(digest *[32]byte, sig *signer.Signature, t *table, q *secp256k1.JacobianPoint) bool {
	if !wellFormed(sig) {
		return false
	}
	var R secp256k1.JacobianPoint
	candidate(digest, sig, t, q, &R)
	if (R.X.IsZero() && R.Y.IsZero()) || R.Z.IsZero() {
		return false // the point at infinity
	}
	// x(R') = X/Z² = r, without an inversion; r < N < P, so r is the
	// field element itself.
	var rx, z2 secp256k1.FieldVal
	rx.SetByteSlice(sig[:32])
	z2.SquareVal(&R.Z)
	rx.Mul(&z2).Normalize()
	if !rx.Equals(&R.X) {
		return false
	}
	// y(R') = Y/Z³.
	var zi, zi3 secp256k1.FieldVal
	invert(&R.Z, &zi)
	zi3.SquareVal(&zi).Mul(&zi)
	R.Y.Mul(&zi3).Normalize()
	return R.Y.IsOdd() == (sig[64] == 28)
}

// fieldP is secp256k1's field prime.
var fieldP = secp256k1.S256().P

// invert sets out to 1/z for z a nonzero field value, by math/big's
// extended Euclid (Lehmer), about 3.5 times as fast here as decred's
// FieldVal.Inverse (an exponentiation, 255 squarings).
func invert(z, out *secp256k1.FieldVal) {
	var n secp256k1.FieldVal
	n.Set(z).Normalize()
	b := n.Bytes()
	var x big.Int
	x.SetBytes(b[:])
	x.ModInverse(&x, fieldP)
	x.FillBytes(b[:])
	out.SetBytes(b)
}

// candidate sets R to R' = u1·G + u2·Q (u1 = e/s, u2 = r/s mod N) for a
// well-formed sig over digest, Q's product through t when t is not nil,
// else through mulKey by q.
func candidate(digest *[32]byte, sig *signer.Signature, t *table, q *secp256k1.JacobianPoint, R *secp256k1.JacobianPoint) {
	var r, s secp256k1.ModNScalar
	r.SetByteSlice(sig[:32])
	s.SetByteSlice(sig[32:64])
	// e as recovery takes it: the digest reduced mod N.
	var e, w, u1, u2 secp256k1.ModNScalar
	e.SetByteSlice(digest[:])
	w.InverseValNonConst(&s)
	u1.Mul2(&e, &w)
	u2.Mul2(&r, &w)
	var p1, p2 secp256k1.JacobianPoint
	secp256k1.ScalarBaseMultNonConst(&u1, &p1)
	if t != nil {
		t.mul(&u2, &p2)
	} else {
		mulKey(&u2, q, &p2)
	}
	secp256k1.AddNonConst(&p1, &p2, R)
}

// recoverPub returns the public key that recovery (decred's
// RecoverCompact, which signer.Verify uses) yields from the well-formed
// sig over digest, or nil where recovery fails (r is not the x of a curve
// point, or the key would be the point at infinity): R is the point with
// x = r and y of v's parity, and Q = r⁻¹(s·R − e·G), the same arithmetic
// with mulKey's product by R and math/big's inversion to affine.
func recoverPub(digest *[32]byte, sig *signer.Signature) *secp256k1.PublicKey {
	var fr secp256k1.FieldVal
	fr.SetByteSlice(sig[:32]) // r < N < P: the field element itself
	var R secp256k1.JacobianPoint
	if !secp256k1.DecompressY(&fr, sig[64] == 28, &R.Y) {
		return nil
	}
	R.X.Set(&fr)
	R.Z.SetInt(1)
	var r, s, e, w, u1, u2 secp256k1.ModNScalar
	r.SetByteSlice(sig[:32])
	s.SetByteSlice(sig[32:64])
	e.SetByteSlice(digest[:])
	w.InverseValNonConst(&r)
	u1.Mul2(&e, &w).Negate()
	u2.Mul2(&s, &w)
	var p1, p2, Q secp256k1.JacobianPoint
	secp256k1.ScalarBaseMultNonConst(&u1, &p1)
	mulKey(&u2, &R, &p2)
	secp256k1.AddNonConst(&p1, &p2, &Q)
	if (Q.X.IsZero() && Q.Y.IsZero()) || Q.Z.IsZero() {
		return nil
	}
	var zi, zi2 secp256k1.FieldVal
	invert(&Q.Z, &zi)
	zi2.SquareVal(&zi)
	Q.X.Mul(&zi2).Normalize()
	Q.Y.Mul(zi2.Mul(&zi)).Normalize()
	return secp256k1.NewPublicKey(&Q.X, &Q.Y)
}

// wellFormed reports whether sig passes signer.Verify's range checks: v 27
// or 28, r and s in [1, N-1], s low.
func wellFormed(sig *signer.Signature) bool {
	if v := sig[64]; v != 27 && v != 28 {
		return false
	}
	var r, s secp256k1.ModNScalar
	if r.SetByteSlice(sig[:32]) || r.IsZero() {
		return false
	}
	return !s.SetByteSlice(sig[32:64]) && !s.IsZero() && !s.IsOverHalfOrder()
}
