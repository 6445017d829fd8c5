package uplink

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// MaxReplySize is the largest ack or nack payload accepted, in bytes; a
// larger one is ignored without being parsed.
const MaxReplySize = 2048

// MaxReasonLen is the longest nack reason kept, in bytes; a longer one is
// cut at a UTF-8 boundary.
const MaxReasonLen = 256

// reply is an ack `{"seq":N}` or a nack `{"seq":N,"reason":"..."}` from the
// collector (README §C2). Unknown fields are allowed: the contract may add
// optional ones.
type reply struct {
	Seq    json.RawMessage `json:"seq"`
	Reason *string         `json:"reason"`
}

// parseAck parses an ack payload. Errors wrap ErrMalformedReply and say
// what was wrong.
func parseAck(p []byte) (uint64, error) {
	_, seq, err := parseReply(p)
	return seq, err
}

// parseNack parses a nack payload; a missing reason is "".
func parseNack(p []byte) (seq uint64, reason string, err error) {
	r, seq, err := parseReply(p)
	if err != nil {
		return 0, "", err
	}
	if r.Reason != nil {
		reason = truncateUTF8(*r.Reason, MaxReasonLen)
	}
	return seq, reason, nil
}

func parseReply(p []byte) (reply, uint64, error) {
	var r reply
	if len(p) > MaxReplySize {
		return r, 0, fmt.Errorf("%w: payload of %d bytes; want at most %d", ErrMalformedReply, len(p), MaxReplySize)
	}
	p = bytes.TrimSpace(p)
	if len(p) == 0 || p[0] != '{' {
		return r, 0, fmt.Errorf("%w: want a JSON object {\"seq\":N}, found %s", ErrMalformedReply, excerpt(p))
	}
	if err := json.Unmarshal(p, &r); err != nil {
		return r, 0, fmt.Errorf("%w: bad JSON: %w", ErrMalformedReply, err)
	}
	if len(r.Seq) == 0 || string(r.Seq) == "null" {
		return r, 0, fmt.Errorf("%w: seq missing", ErrMalformedReply)
	}
	seq, err := strconv.ParseUint(string(r.Seq), 10, 64)
	if err != nil {
		return r, 0, fmt.Errorf("%w: seq: want an unsigned integer, found %s", ErrMalformedReply, excerpt(r.Seq))
	}
	if seq == 0 {
		return r, 0, fmt.Errorf("%w: seq 0; seqs start at 1", ErrMalformedReply)
	}
	return r, seq, nil
}

// excerpt quotes the start of b for a log line.
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
