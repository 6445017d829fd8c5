package shell

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
	"golang.org/x/crypto/sha3"

	"github.com/csop/tbox/signer"
)

// Domain tags. Every message the shell's protocol has signed starts with
// one of them, so no such signature can pass for an EIP-712 attestation
// (whose signed preimage starts 0x19 0x01), an EIP-191 personal message
// (0x19 0x45) or an Ethereum transaction (an RLP list, >= 0xc0).
const (
	// UnlockTag starts the message a service key signs to unlock service
	// mode: keccak256(UnlockTag || device (20 bytes) || nonce (32 bytes)).
	UnlockTag = "CSOP-TBOX-SERVICE-UNLOCK-v1"
	// SelftestTag starts the one fixed message the device key signs in
	// selftest: keccak256(SelftestTag || device (20 bytes)).
	SelftestTag = "CSOP-TBOX-SELFTEST-v1"
)

// Challenge token layout (hex, no 0x: one word a terminal selects with a
// double click):
//
//	off len field
//	  0   1 version (1)
//	  1  20 device address
//	 21  32 nonce, random
//	 53   4 check: the first 4 bytes of keccak256(bytes 0..52), which
//	        catches a token mangled by copy and paste
const (
	tokenVersion = 1
	tokenLen     = 1 + 20 + 32 + 4
	// TokenHexLen is the length of a challenge token in hex digits.
	TokenHexLen = 2 * tokenLen
	// ResponseHexLen is the length of a response in hex digits: r||s||v.
	ResponseHexLen = 2 * len(signer.Signature{})
)

// Challenge is one service-mode unlock challenge: a random nonce bound to
// the device's address.
type Challenge struct {
	Device signer.Address
	Nonce  [32]byte
}

// NewChallenge returns a challenge with a fresh random nonce.
func NewChallenge(device signer.Address) (Challenge, error) {
	c := Challenge{Device: device}
	if _, err := rand.Read(c.Nonce[:]); err != nil {
		return Challenge{}, errorf("challenge nonce: %w", err)
	}
	return c, nil
}

// Token returns the challenge as the one word the shell prints and
// `tboxctl unlock --challenge` reads.
func (c Challenge) Token() string {
	var b [tokenLen]byte
	b[0] = tokenVersion
	copy(b[1:], c.Device[:])
	copy(b[21:], c.Nonce[:])
	sum := keccak256(b[:53])
	copy(b[53:], sum[:4])
	return hex.EncodeToString(b[:])
}

// Digest is what the service key signs: keccak256(UnlockTag || device ||
// nonce).
func (c Challenge) Digest() [32]byte {
	return keccak256([]byte(UnlockTag), c.Device[:], c.Nonce[:])
}

// ParseChallenge parses a challenge token (an optional 0x is accepted).
// Errors wrap ErrBadChallenge.
func ParseChallenge(token string) (Challenge, error) {
	t := strings.TrimSpace(token)
	t = strings.TrimPrefix(strings.TrimPrefix(t, "0x"), "0X")
	if len(t) != TokenHexLen {
		return Challenge{}, errorf("%w: want %d hex digits, found %d characters", ErrBadChallenge, TokenHexLen, len(t))
	}
	var b [tokenLen]byte
	if _, err := hex.Decode(b[:], []byte(t)); err != nil {
		return Challenge{}, errorf("%w: want hex digits: %v", ErrBadChallenge, err)
	}
	if b[0] != tokenVersion {
		return Challenge{}, errorf("%w: version %d, want %d", ErrBadChallenge, b[0], tokenVersion)
	}
	if sum := keccak256(b[:53]); [4]byte(sum[:4]) != [4]byte(b[53:]) {
		return Challenge{}, errorf("%w: check digits do not match (a character changed in copying?)", ErrBadChallenge)
	}
	var c Challenge
	copy(c.Device[:], b[1:21])
	copy(c.Nonce[:], b[21:53])
	return c, nil
}

// ParseNonce parses a bare 32-byte nonce in hex (64 digits, optional 0x).
func ParseNonce(s string) ([32]byte, error) {
	var n [32]byte
	t := strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(s), "0x"), "0X")
	if len(t) != 64 {
		return n, errorf("%w: nonce: want 64 hex digits, found %d characters", ErrBadChallenge, len(t))
	}
	if _, err := hex.Decode(n[:], []byte(t)); err != nil {
		return n, errorf("%w: nonce: want hex digits: %v", ErrBadChallenge, err)
	}
	return n, nil
}

// SignUnlock signs the challenge with a service key: the response to type
// into the shell. It signs only Challenge.Digest, a domain-separated hash.
func SignUnlock(serviceKey signer.Signer, c Challenge) (signer.Signature, error) {
	sig, err := serviceKey.SignDigest(c.Digest())
	if err != nil {
		return sig, errorf("unlock response: %w", err)
	}
	return sig, nil
}

// ParseResponse parses a response: 65 bytes r||s||v in hex (130 digits,
// optional 0x). Errors wrap ErrBadResponse.
func ParseResponse(s string) (signer.Signature, error) {
	var sig signer.Signature
	t := strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(s), "0x"), "0X")
	if len(t) != ResponseHexLen {
		return sig, errorf("%w: want %d hex digits (r||s||v), found %d characters", ErrBadResponse, ResponseHexLen, len(t))
	}
	if _, err := hex.Decode(sig[:], []byte(t)); err != nil {
		return sig, errorf("%w: want hex digits: %v", ErrBadResponse, err)
	}
	return sig, nil
}

// VerifyUnlock checks that sig is the service key's signature over c. It
// refuses a malformed or high-s signature (ErrBadResponse) and one made by
// another key (ErrWrongKey).
func VerifyUnlock(service signer.Address, c Challenge, sig signer.Signature) error {
	addr, err := recoverAddress(c.Digest(), sig)
	if err != nil {
		return err
	}
	if addr != service {
		return errorf("%w: signed by %s", ErrWrongKey, addr)
	}
	return nil
}

// recoverAddress returns the address whose key made sig (r||s||v, v 27 or
// 28, low s) over d.
func recoverAddress(d [32]byte, sig signer.Signature) (signer.Address, error) {
	v := sig[64]
	if v != 27 && v != 28 {
		return signer.Address{}, errorf("%w: v is %d, want 27 or 28", ErrBadResponse, v)
	}
	var r, s secp256k1.ModNScalar
	if r.SetByteSlice(sig[:32]) || r.IsZero() {
		return signer.Address{}, errorf("%w: r out of range", ErrBadResponse)
	}
	if s.SetByteSlice(sig[32:64]) || s.IsZero() {
		return signer.Address{}, errorf("%w: s out of range", ErrBadResponse)
	}
	if s.IsOverHalfOrder() {
		return signer.Address{}, errorf("%w: high s", ErrBadResponse)
	}
	var compact [65]byte
	compact[0] = v
	copy(compact[1:], sig[:64])
	pub, _, err := ecdsa.RecoverCompact(compact[:], d[:])
	if err != nil {
		return signer.Address{}, errorf("%w: %v", ErrBadResponse, err)
	}
	return signer.AddressOf(pub), nil
}

// ParseServiceKey parses the configured service public key: a compressed
// (33 bytes) or uncompressed (65 bytes, or 64 without the 04 prefix)
// secp256k1 public key in hex, or the key's address (0x and 40 hex
// digits). It returns the address the unlock responses must recover to.
func ParseServiceKey(s string) (signer.Address, error) {
	t := strings.TrimSpace(s)
	if len(t) == 42 && (strings.HasPrefix(t, "0x") || strings.HasPrefix(t, "0X")) {
		a, err := signer.ParseAddress(t)
		if err != nil {
			return a, errorf("%w: %v", ErrBadServiceKey, err)
		}
		return a, nil
	}
	h := strings.TrimPrefix(strings.TrimPrefix(t, "0x"), "0X")
	b, err := hex.DecodeString(h)
	if err != nil {
		return signer.Address{}, errorf("%w: want hex, found %q", ErrBadServiceKey, t)
	}
	if len(b) == 64 {
		b = append([]byte{0x04}, b...)
	}
	switch len(b) {
	case 33, 65:
	default:
		return signer.Address{}, errorf("%w: want a 33-byte compressed or 65-byte uncompressed public key, or a 0x address; found %d bytes", ErrBadServiceKey, len(b))
	}
	pub, err := secp256k1.ParsePubKey(b)
	if err != nil {
		return signer.Address{}, errorf("%w: %v", ErrBadServiceKey, err)
	}
	return signer.AddressOf(pub), nil
}

// SelftestDigest is the one message selftest signs with the device key:
// keccak256(SelftestTag || device). Fixed per device; nothing a user types
// goes into it.
func SelftestDigest(device signer.Address) [32]byte {
	return keccak256([]byte(SelftestTag), device[:])
}

func keccak256(parts ...[]byte) [32]byte {
	h := sha3.NewLegacyKeccak256()
	for _, p := range parts {
		h.Write(p)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// limiter rate-limits failed unlocks: after MaxFailures consecutive
// failures every further failure locks unlocking out, for LockoutBase the
// first time and twice as long each time after, up to LockoutMax. A
// success resets it. It belongs to the Shell, so a new session does not
// reset it.
type limiter struct {
	_ [0]func() // not comparable: no generated equality function (tboxd size)

	mu       sync.Mutex
	failures int
	until    time.Time
	max      int
	base     time.Duration
	cap      time.Duration
}

// check returns a *LockoutError while unlocking is locked out.
func (l *limiter) check(now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Before(l.until) {
		return &LockoutError{Until: l.until, Left: l.until.Sub(now), Failures: l.failures}
	}
	return nil
}

// fail counts a failure and returns the lockout it started (0 for none).
func (l *limiter) fail(now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures++
	if l.failures < l.max {
		return 0
	}
	d := l.base
	for i := l.max; i < l.failures && d < l.cap; i++ {
		d *= 2
	}
	d = min(d, l.cap)
	l.until = now.Add(d)
	return d
}

func (l *limiter) ok() {
	l.mu.Lock()
	l.failures, l.until = 0, time.Time{}
	l.mu.Unlock()
}

// LockoutError is an unlock refused because of earlier failures.
type LockoutError struct {
	Until    time.Time
	Left     time.Duration
	Failures int
}

func (e *LockoutError) Error() string {
	return fmt.Sprintf("unlock locked out for %s after %d failed attempts", e.Left.Round(time.Second), e.Failures)
}

func (e *LockoutError) Unwrap() error { return ErrLockedOut }

// Errors of the service-mode unlock; test with errors.Is.
var (
	ErrBadChallenge     = errors.New("bad challenge token")
	ErrBadResponse      = errors.New("bad unlock response")
	ErrWrongKey         = errors.New("response not signed by the service key")
	ErrBadServiceKey    = errors.New("bad service public key")
	ErrNoChallenge      = errors.New("no challenge pending")
	ErrChallengeExpired = errors.New("challenge expired")
	ErrLockedOut        = errors.New("unlock locked out")
	ErrNoServiceKey     = errors.New("service mode not configured")
)
