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
// The fast path only ever accepts. Whatever it does not accept (an
// unknown device, a malformed or other-key signature) goes to
// [signer.VerifyKey], the reference check, whose verdict and error are
// returned unchanged: a well-formed signature that is not the cached
// key's costs the fast check (up to the x comparison) and then the
// recovery, the price of returning the reference's error, which names the
// address recovered. A key enters the cache only after the reference
// check recovered it and found that its address is the attestation's
// device, under that address, so a key of device A can only ever be tried
// on attestations that name A as their device.
//
// # The cache
//
// Entries are kept in least-recently-used order, at most the size given
// to [New]: about [EntryBytes] (2.9 KB) each once a device's second
// attestation has built its table (the first only stores the key, so a
// device seen once costs about 300 bytes). Building a table costs about
// as much as one recovery, once per device while it stays cached. A cache smaller than the devices that
// attest to one collector within a cache's lifetime of their attestations
// evicts every key before its next use, and each attestation then takes
// the reference path: no slower than without the cache.
package sigcache

import (
	"sync"
	"sync/atomic"

	"github.com/csop/tbox/signer"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// EntryBytes is about the memory of one cached device with its table.
const EntryBytes = tableBytes + 300

// DefaultSize is a cache size for a collector: 10,000 devices, about 29 MB.
const DefaultSize = 10000

// Verifier checks attestations for one chain ID. It is safe for
// concurrent use.
type Verifier struct {
	chainID uint64
	size    int

	mu   sync.Mutex
	keys map[signer.Address]*entry
	lru  entry // sentinel of the ring, most recent after it

	hits, misses atomic.Uint64
}

// entry is a device's key, affine (Z = 1), and its table once built.
type entry struct {
	dev        signer.Address
	prev, next *entry
	key        secp256k1.JacobianPoint
	tab        atomic.Pointer[table]
}

// New returns a verifier for attestations on chainID that caches the keys
// of up to size devices (none when size <= 0).
func New(chainID uint64, size int) *Verifier {
	v := &Verifier{chainID: chainID, size: size, keys: make(map[signer.Address]*entry)}
	v.lru.prev, v.lru.next = &v.lru, &v.lru
	return v
}

// Verify checks a as [signer.Verify] (chainID of [New], a) does, with the
// same result, where digest is [signer.Digest](chainID, a), which the
// caller has already computed.
func (v *Verifier) Verify(a *signer.Attestation, digest [32]byte) error {
	if e := v.lookup(a.Device); e != nil {
		if err := a.Validate(); err != nil {
			return err
		}
		t := e.tab.Load()
		if t == nil {
			t = newTable(&e.key)
			e.tab.Store(t)
		}
		if t.verify(&digest, &a.Sig) {
			v.hits.Add(1)
			return nil
		}
	}
	v.misses.Add(1)
	pub, err := signer.VerifyKey(v.chainID, a, digest)
	if err != nil {
		return err
	}
	v.add(a.Device, pub)
	return nil
}

// Stats returns how many attestations the cached keys verified (hits) and
// how many took the reference check (misses, refusals included).
func (v *Verifier) Stats() (hits, misses uint64) {
	return v.hits.Load(), v.misses.Load()
}

// Len returns the number of devices cached.
func (v *Verifier) Len() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.keys)
}

// lookup returns the entry of dev, now the most recent, or nil.
func (v *Verifier) lookup(dev signer.Address) *entry {
	if v.size <= 0 {
		return nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	e := v.keys[dev]
	if e != nil {
		v.unlink(e)
		v.pushFront(e)
	}
	return e
}

// add caches pub, whose address the caller has checked is dev.
func (v *Verifier) add(dev signer.Address, pub *secp256k1.PublicKey) {
	if v.size <= 0 {
		return
	}
	e := &entry{dev: dev}
	pub.AsJacobian(&e.key)
	v.mu.Lock()
	defer v.mu.Unlock()
	if old := v.keys[dev]; old != nil {
		// Another goroutine verified the same device meanwhile: the same
		// key (one address, one key, short of a Keccak collision).
		v.unlink(old)
		v.pushFront(old)
		return
	}
	v.keys[dev] = e
	v.pushFront(e)
	for len(v.keys) > v.size {
		last := v.lru.prev
		v.unlink(last)
		delete(v.keys, last.dev)
	}
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
	v := sig[64]
	if v != 27 && v != 28 {
		return false
	}
	var r, s secp256k1.ModNScalar
	if r.SetByteSlice(sig[:32]) || r.IsZero() {
		return false
	}
	if s.SetByteSlice(sig[32:64]) || s.IsZero() || s.IsOverHalfOrder() {
		return false
	}
	// e as recovery takes it: the digest reduced mod N.
	var e, w, u1, u2 secp256k1.ModNScalar
	e.SetByteSlice(digest[:])
	w.InverseValNonConst(&s)
	u1.Mul2(&e, &w)
	u2.Mul2(&r, &w)
	var p1, p2, R secp256k1.JacobianPoint
	secp256k1.ScalarBaseMultNonConst(&u1, &p1)
	t.mul(&u2, &p2)
	secp256k1.AddNonConst(&p1, &p2, &R)
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
	R.ToAffine()
	return R.Y.IsOdd() == (v == 28)
}
