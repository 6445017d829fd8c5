package uplink

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/csop/tbox/signer"
)

// MaxReplySize is the largest ack or nack payload looked at, in bytes
// (README §C2: 4 KiB); a larger one is ignored without being parsed.
const MaxReplySize = 4 << 10

// MaxReasonLen is the longest nack reason kept, in bytes; a longer one is
// cut at a UTF-8 boundary.
const MaxReasonLen = 256

// Kinds of ignored replies, as counted in Stats.Ignored.
const (
	IgnoredOversize  = "oversize"  // larger than MaxReplySize: not parsed
	IgnoredMalformed = "malformed" // not a receipt or refusal wire form
	IgnoredForged    = "forged"    // not signed by a collector address for this device and chain
	IgnoredDigest    = "digest"    // signed, but the digest is not this agent's record of the seq
	IgnoredUnknown   = "unknown"   // signed, for a seq this agent has no unacked record of
	ignoredLogEvery  = time.Minute // each kind is logged at most this often
)

// checkReply parses and verifies an ack (nack false) or nack payload for
// device: the size, the wire form, and a signature by one of collectors
// over this device's receipt on chainID. It returns the kind of problem
// ("" when none) and what was wrong.
func checkReply(p []byte, nack bool, device signer.Address, chainID uint64, collectors []signer.Address) (*signer.Receipt, *signer.Refusal, string, error) {
	if len(p) > MaxReplySize {
		return nil, nil, IgnoredOversize, errorf("%w: payload of %d bytes; want at most %d", ErrMalformedReply, len(p), MaxReplySize)
	}
	if !nack {
		r, err := signer.ParseReceipt(device, p)
		if err != nil {
			return nil, nil, IgnoredMalformed, errorf("%w: %w", ErrMalformedReply, err)
		}
		if _, err := signer.VerifyReceipt(chainID, r, collectors); err != nil {
			return nil, nil, IgnoredForged, errorf("%w: %w", ErrForgedReply, err)
		}
		return r, nil, "", nil
	}
	r, err := signer.ParseRefusal(device, p)
	if err != nil {
		return nil, nil, IgnoredMalformed, errorf("%w: %w", ErrMalformedReply, err)
	}
	if _, err := signer.VerifyRefusal(chainID, r, collectors); err != nil {
		return nil, nil, IgnoredForged, errorf("%w: %w", ErrForgedReply, err)
	}
	return nil, r, "", nil
}

// excerpt quotes the start of b for a log line.
//
// Not inlined: an error path called from many places, kept as one copy.
//
//go:noinline
func excerpt(b []byte) string {
	const n = 64
	if len(b) > n {
		return strconv.Quote(string(b[:n])) + "..."
	}
	return strconv.Quote(string(b))
}

// truncateUTF8 cuts s to at most n bytes without splitting a rune.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
