package store

import (
	"errors"
	"fmt"
)

// These errors are returned by the Store's methods. Test for them with
// errors.Is: most are wrapped with the seq or the file they concern.
var (
	// ErrSeqGap is returned by Append when the record's seq is above head+1.
	ErrSeqGap = errors.New("seq gap")

	// ErrDuplicate is returned by Append when the record's seq is at or below
	// the head: that seq is already signed and must never be reused.
	ErrDuplicate = errors.New("duplicate seq")

	// ErrFull is returned by Append when the outbox is at its cap. Nothing
	// already stored is dropped; an ack frees room.
	ErrFull = errors.New("outbox full")

	// ErrNotFound is returned by Get and Nack for a seq that is not pending:
	// already acked, lost with a damaged database, or never appended.
	ErrNotFound = errors.New("record not found")

	// ErrAckAhead is returned by Ack for a seq above the head: the collector
	// acknowledges something this device never signed.
	ErrAckAhead = errors.New("ack above head")

	// ErrInvalidRecord is returned by Append and Checkpoint for a record or
	// state the store cannot hold (seq 0, empty or oversized wire bytes,
	// oversized state).
	ErrInvalidRecord = errors.New("invalid record")

	// ErrLocked is returned by Open when another process holds the store's
	// directory for longer than Options.LockTimeout.
	ErrLocked = errors.New("store locked")

	// ErrReadOnly is returned by every write to a store opened with
	// OpenReadOnly.
	ErrReadOnly = errors.New("store opened read-only")

	// ErrNoStore is returned by OpenReadOnly when dir is not a state
	// directory: missing, not a directory, or without an outbox.db.
	ErrNoStore = errors.New("no outbox")

	// ErrClosed is returned after Close.
	ErrClosed = errors.New("store closed")

	// ErrBroken is returned by every write after an I/O error left the
	// files in a state only Open can reconcile (a failed fsync, a commit
	// that failed after the sidecar was replaced). Close and Open again.
	ErrBroken = errors.New("store broken, reopen required")

	// ErrCorrupt marks damage found in the database or the sidecar. Open
	// repairs it (see Recovery); Check reports it.
	ErrCorrupt = errors.New("corrupt")

	// ErrHeadLost is returned by Open when both copies of the chain head are
	// unusable: the sidecar exists but is damaged and the database is missing
	// or damaged. Starting anyway could sign a seq twice (a fork), so the
	// store refuses; the files are left in place for an operator.
	ErrHeadLost = errors.New("chain head lost")
)

// SeqError is returned by Append for a record whose seq is not head+1.
// It unwraps to ErrSeqGap or ErrDuplicate.
type SeqError struct {
	Got  uint64 // the record's seq
	Want uint64 // head+1
}

func (e *SeqError) Error() string {
	return fmt.Sprintf("append seq %d: %v (expected %d)", e.Got, e.Unwrap(), e.Want)
}

// Unwrap returns ErrDuplicate for a seq at or below the head, ErrSeqGap otherwise.
func (e *SeqError) Unwrap() error {
	if e.Got < e.Want {
		return ErrDuplicate
	}
	return ErrSeqGap
}

// CorruptError describes damage found in one file. It unwraps to ErrCorrupt
// and to the underlying cause.
type CorruptError struct {
	_ [0]func() // not comparable: no generated equality function (tboxd size)

	Path string // the damaged file
	Err  error  // what was expected and what was found
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("%s: %v: %v", e.Path, ErrCorrupt, e.Err)
}

// Unwrap returns ErrCorrupt and the cause.
func (e *CorruptError) Unwrap() []error { return []error{ErrCorrupt, e.Err} }
