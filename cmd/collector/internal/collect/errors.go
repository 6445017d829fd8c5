package collect

import "errors"

// Reasons an attestation is refused (it cannot join the chain), besides the signer package's own
// (signer.ErrMalformed, signer.ErrUnknownVersion, signer.ErrSignerMismatch,
// signer.ErrBadSignature, signer.ErrHighS, signer.ErrModesSum,
// signer.ErrBadModes, signer.ErrUnknownFlags, signer.ErrPrevMismatch).
// A nack's reason starts with the sentinel's text; test with errors.Is on
// [Reply].Err.
var (
	// ErrTopic: the topic's device is not the attestation's device.
	ErrTopic = errors.New("topic mismatch")
	// ErrUnknownDevice: the device is not on the registry allowlist.
	ErrUnknownDevice = errors.New("unknown device")
	// ErrFork: another attestation is stored for this seq.
	ErrFork = errors.New("fork")
	// ErrBroken: the seq lies in a recorded chain break; the chain has
	// moved on past it.
	ErrBroken = errors.New("chain break")

	// ErrRegistry: a registry file line that is not an address.
	ErrRegistry = errors.New("bad registry line")
)

// refusal is a reason with details; Error is the nack reason.
type refusal struct {
	kind error
	msg  string
}

func (r *refusal) Error() string { return r.msg }
func (r *refusal) Unwrap() error { return r.kind }
