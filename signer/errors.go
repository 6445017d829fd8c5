package signer

import "errors"

// Errors reported by this package. Functions wrap them with details (the file,
// the field, what was expected and what was found); test for them with
// errors.Is.
var (
	// ErrBadKey: a key file that is not a SEC1 PEM secp256k1 private key
	// (not PEM, wrong block type, truncated DER, wrong curve, scalar zero or
	// not below the group order, public key not matching).
	ErrBadKey = errors.New("bad key file")
	// ErrKeyPermissions: a key file readable or writable by group or others.
	ErrKeyPermissions = errors.New("key file permissions too open")

	// ErrUnknownVersion: an attestation whose v is not [Version].
	ErrUnknownVersion = errors.New("unknown attestation version")
	// ErrMalformed: wire bytes that are not a well-formed attestation (JSON
	// syntax, a missing, repeated or unknown field, bad hex, a wrong length,
	// a number out of range), or a field outside its domain (seq 0, batches 0).
	ErrMalformed = errors.New("malformed attestation")
	// ErrUnknownFlags: flag bits outside [KnownFlags].
	ErrUnknownFlags = errors.New("unknown flags")
	// ErrBadModes: modes not sorted by name, repeated, with a zero entry or
	// an empty or invalid name.
	ErrBadModes = errors.New("bad modes")
	// ErrModesSum: modes whose meters do not add up to the attestation's meters.
	ErrModesSum = errors.New("modes do not sum to meters")

	// ErrBadSignature: a signature that is malformed (v not 27 or 28, r or s
	// out of range) or from which no public key can be recovered.
	ErrBadSignature = errors.New("bad signature")
	// ErrHighS: a signature whose s is in the upper half of the group order,
	// the malleable twin of a canonical signature.
	ErrHighS = errors.New("high-s signature")
	// ErrSignerMismatch: a signature made by another key than the
	// attestation's device.
	ErrSignerMismatch = errors.New("signature not made by device")

	// ErrMalformedReceipt: wire bytes that are not a well-formed receipt or
	// refusal (README §C2: JSON syntax, a missing, repeated or unknown
	// field, bad hex, a wrong length, a number out of range, too large), or
	// a receipt for seq 0 or a reason too long.
	ErrMalformedReceipt = errors.New("malformed receipt")
	// ErrNotCollector: a receipt or refusal whose signature recovers to
	// none of the collector addresses the verifier trusts.
	ErrNotCollector = errors.New("not signed by a collector")

	// ErrWrongDevice: an attestation from another device than the expected one.
	ErrWrongDevice = errors.New("wrong device")
	// ErrSeqGap: seqs missing before this attestation.
	ErrSeqGap = errors.New("seq gap")
	// ErrSeqDuplicate: a seq seen before.
	ErrSeqDuplicate = errors.New("duplicate seq")
	// ErrSeqReorder: a seq lower than expected that was not seen before: it
	// arrived after a later one.
	ErrSeqReorder = errors.New("seq out of order")
	// ErrPrevMismatch: prev differs from the digest signed for seq-1 (32 zero
	// bytes for seq 1).
	ErrPrevMismatch = errors.New("prev mismatch")
)

// fieldError is a problem with one attestation: kind is the sentinel, msg
// the full message.
type fieldError struct {
	kind error
	msg  string
}

func (e *fieldError) Error() string { return e.msg }
func (e *fieldError) Unwrap() error { return e.kind }
