package signer

import (
	"fmt"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// VerifyKey is [Verify] for a caller that has already computed
// digest = Digest(chainID, a): it checks a the same way, refuses what
// Verify refuses with the same error, and on success returns the public
// key the signature recovers to (whose address is a.Device), so that the
// caller may check later attestations of the device against it.
func VerifyKey(chainID uint64, a *Attestation, digest [32]byte) (*secp256k1.PublicKey, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	pub, err := recoverKey(digest, a.Sig)
	if err != nil {
		return nil, err
	}
	if addr := AddressOf(pub); addr != a.Device {
		return nil, &fieldError{ErrSignerMismatch, fmt.Sprintf("%v: signature recovers to %s, device is %s (a changed field, or signed for another chain ID than %d)",
			ErrSignerMismatch, addr, a.Device, chainID)}
	}
	return pub, nil
}
