package signer

import "fmt"

// Problem is one break found by a [ChainChecker] in one attestation.
type Problem struct {
	Device Address
	Seq    uint64 // seq of the attestation with the problem
	// Kind is the sentinel: ErrBadSignature, ErrHighS, ErrSignerMismatch,
	// ErrWrongDevice, ErrSeqGap, ErrSeqDuplicate, ErrSeqReorder,
	// ErrPrevMismatch, ErrModesSum, ErrBadModes, ErrUnknownFlags,
	// ErrUnknownVersion or ErrMalformed.
	Kind error
	Msg  string // what was expected and what was found, starting with Kind
}

// Error returns "seq N: " and the message.
func (p Problem) Error() string { return fmt.Sprintf("seq %d: %s", p.Seq, p.Msg) }

// Unwrap returns Kind, so errors.Is(p, ErrSeqGap) works.
func (p Problem) Unwrap() error { return p.Kind }

// ChainChecker checks attestations fed in file (or arrival) order: each one
// on its own as [Verify] does, and the chain per device: seqs 1, 2, 3, ...
// without gap, repeat or reordering, and prev equal to the digest signed for
// seq-1 (32 zero bytes for seq 1). A late arrival is checked against both
// neighbours. It keeps about 100 bytes per attestation seen. It is not safe
// for concurrent use.
type ChainChecker struct {
	chainID uint64
	device  *Address
	partial bool // a chain starts at the first seq seen (WithPartialChains)
	chains  map[Address]*chain
}

type chain struct {
	next uint64          // seq expected next
	base uint64          // seqs up to base precede the check (Resume)
	seen map[uint64]link // each seq seen
}

// link is what the chain needs of one attestation.
type link struct {
	digest [32]byte // digest signed for it
	prev   [32]byte // its prev
}

// ChainOption configures a ChainChecker.
type ChainOption func(*ChainChecker)

// WithDevice makes every attestation from another device a problem
// ([ErrWrongDevice]); without it, each device's chain is checked apart.
func WithDevice(device Address) ChainOption {
	return func(c *ChainChecker) { c.device = &device }
}

// WithPartialChains lets each device's chain start at the first seq the
// checker sees instead of seq 1: that attestation's prev is taken on trust,
// and from there the chain is checked as usual. It fits a part of a chain,
// such as an outbox listing after some receipts.
func WithPartialChains() ChainOption {
	return func(c *ChainChecker) { c.partial = true }
}

// NewChainChecker returns a checker for attestations on chainID.
func NewChainChecker(chainID uint64, opts ...ChainOption) *ChainChecker {
	c := &ChainChecker{chainID: chainID, chains: make(map[Address]*chain)}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Resume starts device's chain after seq, whose signed digest was digest,
// for a checker that does not see the chain from seq 1 (a collector picking
// up where its store ends). Without Resume a chain must start at seq 1.
func (c *ChainChecker) Resume(device Address, seq uint64, digest [32]byte) {
	ch := c.chainOf(device)
	ch.next = seq + 1
	ch.base = seq
	ch.seen[seq] = link{digest: digest}
}

func (c *ChainChecker) chainOf(device Address) *chain {
	ch := c.chains[device]
	if ch == nil {
		ch = &chain{next: 1, seen: make(map[uint64]link)}
		c.chains[device] = ch
	}
	return ch
}

// Check checks the next attestation and returns one Problem per issue
// found, none when it is sound.
func (c *ChainChecker) Check(a *Attestation) []Problem {
	var ps []Problem
	add := func(err error) { ps = appendProblem(ps, a, err) }
	addf := func(kind error, format string, args ...any) { add(newFieldError(kind, format, args...)) }
	for _, err := range a.fieldProblems() {
		add(err)
	}
	if err := verifySig(c.chainID, a); err != nil {
		add(err)
	}
	if c.device != nil && a.Device != *c.device {
		addf(ErrWrongDevice, "device %s, expected %s", a.Device, *c.device)
		return ps // another device's chain is not ours to follow
	}
	if a.Seq == 0 {
		return ps // reported above; no place in a chain
	}

	ch := c.chainOf(a.Device)
	if c.partial && len(ch.seen) == 0 && ch.next == 1 {
		ch.next, ch.base = a.Seq, a.Seq-1
	}
	digest := Digest(c.chainID, a)
	old, dup := ch.seen[a.Seq]
	switch {
	case dup && old.digest == digest:
		addf(ErrSeqDuplicate, "seq %d seen before, identical", a.Seq)
		return ps
	case dup:
		addf(ErrSeqDuplicate, "seq %d seen before with other content (a fork)", a.Seq)
		return ps
	case a.Seq <= ch.base:
		addf(ErrSeqDuplicate, "seq %d is at or before seq %d, where checking resumed", a.Seq, ch.base)
		return ps
	case a.Seq > ch.next:
		if a.Seq == ch.next+1 {
			addf(ErrSeqGap, "expected seq %d, found %d: seq %d missing", ch.next, a.Seq, ch.next)
		} else {
			addf(ErrSeqGap, "expected seq %d, found %d: seqs %d to %d missing", ch.next, a.Seq, ch.next, a.Seq-1)
		}
	case a.Seq < ch.next:
		addf(ErrSeqReorder, "seq %d arrived after seq %d", a.Seq, ch.next-1)
	}
	c.checkLinks(ch, a, digest, addf)
	ch.seen[a.Seq] = link{digest: digest, prev: a.Prev}
	if a.Seq >= ch.next {
		ch.next = a.Seq + 1
	}
	return ps
}

// checkLinks compares a.Prev with the digest of seq-1, and a's digest with
// the prev of seq+1 (seen before a on a reordering), where they are known.
func (c *ChainChecker) checkLinks(ch *chain, a *Attestation, digest [32]byte, addf func(error, string, ...any)) {
	if a.Seq == 1 {
		if a.Prev != ([32]byte{}) {
			addf(ErrPrevMismatch, "seq 1 has prev 0x%x, expected 32 zero bytes", a.Prev)
		}
	} else if before, ok := ch.seen[a.Seq-1]; ok && a.Prev != before.digest {
		addf(ErrPrevMismatch, "prev 0x%x, expected the digest of seq %d, 0x%x", a.Prev, a.Seq-1, before.digest)
	}
	if after, ok := ch.seen[a.Seq+1]; ok && after.prev != digest {
		addf(ErrPrevMismatch, "digest 0x%x, but seq %d has prev 0x%x", digest, a.Seq+1, after.prev)
	}
}

// appendProblem appends err, a problem of a, to ps.
//
// Not inlined: an error path called from many places, kept as one copy.
//
//go:noinline
func appendProblem(ps []Problem, a *Attestation, err error) []Problem {
	return append(ps, Problem{Device: a.Device, Seq: a.Seq, Kind: kindOf(err), Msg: err.Error()})
}
