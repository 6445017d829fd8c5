package signer

import (
	"encoding/hex"
	"fmt"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

// Address is an Ethereum-style address: the last 20 bytes of keccak256 of
// the 64-byte uncompressed public key. It is the device's pseudonym.
type Address [20]byte

// String returns the address as lowercase hex with 0x.
func (a Address) String() string {
	return "0x" + hex.EncodeToString(a[:])
}

// MarshalText implements encoding.TextMarshaler (lowercase 0x hex).
func (a Address) MarshalText() ([]byte, error) {
	return []byte(a.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with [ParseAddress].
func (a *Address) UnmarshalText(b []byte) error {
	p, err := ParseAddress(string(b))
	if err != nil {
		return err
	}
	*a = p
	return nil
}

// ParseAddress parses "0x" followed by 40 hex digits, in any letter case (an
// EIP-55 checksum is accepted but not checked).
func ParseAddress(s string) (Address, error) {
	var a Address
	if len(s) != 2+2*len(a) || (s[:2] != "0x" && s[:2] != "0X") {
		return a, errorf("address %q: expected 0x and 40 hex digits", s)
	}
	if _, err := hex.Decode(a[:], []byte(s[2:])); err != nil {
		return a, errorf("address %q: expected 0x and 40 hex digits: %w", s, err)
	}
	return a, nil
}

// AddressOf returns the address of a public key.
func AddressOf(pub *secp256k1.PublicKey) Address {
	u := pub.SerializeUncompressed() // 0x04 || X || Y
	h := keccak256(u[1:])
	var a Address
	copy(a[:], h[12:])
	return a
}

// Signature is a recoverable ECDSA signature in Ethereum's layout:
// r (32 bytes) || s (32 bytes) || v (1 byte, 27 or 28), with low s.
type Signature [65]byte

// String returns the signature as lowercase hex with 0x.
func (s Signature) String() string {
	return "0x" + hex.EncodeToString(s[:])
}

// Signer signs attestation digests with a device key. A FileKey is one; a
// secure element can be another. It is internal to the agent: nothing that
// outside parties can reach may call SignDigest, which signs any 32 bytes.
type Signer interface {
	// Address is the address of the key.
	Address() Address
	// SignDigest signs a 32-byte digest and returns r||s||v with v in
	// {27, 28} and low s.
	SignDigest(d [32]byte) (Signature, error)
}

// signDigest signs d with key (RFC 6979 deterministic nonce, low s).
func signDigest(key *secp256k1.PrivateKey, d [32]byte) (Signature, error) {
	var sig Signature
	// SignCompact returns code || r || s with code = 27 + recovery code.
	c := ecdsa.SignCompact(key, d[:], false)
	if c[0] != 27 && c[0] != 28 {
		// Recovery codes 2 and 3 (r >= N) occur with probability about
		// 2^-127 and have no Ethereum encoding.
		return sig, errorf("signature: recovery code %d has no Ethereum encoding", c[0]-27)
	}
	copy(sig[:64], c[1:])
	sig[64] = c[0]
	return sig, nil
}

// recoverDigest returns the address that made sig over d. It refuses a v
// other than 27 or 28, r or s outside [1, N-1], and a high s.
func recoverDigest(d [32]byte, sig Signature) (Address, error) {
	pub, err := recoverKey(d, sig)
	if err != nil {
		return Address{}, err
	}
	return AddressOf(pub), nil
}

// recoverKey returns the public key that made sig over d, refusing what
// recoverDigest refuses.
func recoverKey(d [32]byte, sig Signature) (*secp256k1.PublicKey, error) {
	v := sig[64]
	if v != 27 && v != 28 {
		return nil, &fieldError{ErrBadSignature, fmt.Sprintf("bad signature: v is %d, expected 27 or 28", v)}
	}
	var r, s secp256k1.ModNScalar
	if r.SetByteSlice(sig[:32]) || r.IsZero() {
		return nil, &fieldError{ErrBadSignature, "bad signature: r is not in [1, N-1]"}
	}
	if s.SetByteSlice(sig[32:64]) || s.IsZero() {
		return nil, &fieldError{ErrBadSignature, "bad signature: s is not in [1, N-1]"}
	}
	if s.IsOverHalfOrder() {
		return nil, &fieldError{ErrHighS, "high-s signature: s is above N/2; only the low-s form is accepted"}
	}
	var c [65]byte
	c[0] = v
	copy(c[1:], sig[:64])
	pub, _, err := ecdsa.RecoverCompact(c[:], d[:])
	if err != nil {
		return nil, &fieldError{ErrBadSignature, "bad signature: " + err.Error()}
	}
	return pub, nil
}
