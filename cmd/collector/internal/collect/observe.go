package collect

import (
	"time"

	"github.com/csop/tbox/signer"
)

// Observer is told what Process did with each group of messages, for the
// metrics and the status page (package web). Observe is called once per
// group, after the group's ledger transaction committed or failed, on the
// goroutine that called Process; it must be quick and must not keep g or
// its slices after it returns.
type Observer interface {
	Observe(g *Group)
}

// Group is one call of Process as an [Observer] sees it.
type Group struct {
	// Messages is the group as received, health reports included.
	Messages []Message
	// Verify holds, per message on an att topic, how long its stateless
	// checks took (parse, digest, allowlist, signature recovery).
	Verify []time.Duration
	// Commit is how long the ledger transaction took; zero when none ran.
	Commit time.Duration
	// Err is the transaction's error: nothing of the group is stored and
	// nothing is answered.
	Err error
	// Replies are the nacks and acks Process returned (nil when Err).
	Replies []Reply
	// Attested lists the device of every attestation that passed the
	// stateless checks and was then handled by a committed transaction
	// (stored, repeated, held or refused as a fork), repeats included.
	Attested []signer.Address
}
