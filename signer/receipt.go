package signer

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Receipts, README §C2 revision 2: the collector signs, with its own key and
// in the attestation's EIP-712 domain, that it stored a device's chain up to
// seq (a MileageReceipt, the ack) or that it refused one attestation (a
// MileageRefusal, the nack). Only such a signature can make a car forget.
const (
	receiptType = "MileageReceipt(address device,uint64 seq,bytes32 digest)"
	refusalType = "MileageRefusal(address device,uint64 seq,bytes32 digest,string reason)"
)

var (
	receiptTypeHash = keccak256([]byte(receiptType))
	refusalTypeHash = keccak256([]byte(refusalType))
)

// Limits of the receipt wire forms.
const (
	// MaxReceiptWireSize bounds the wire form ParseReceipt and ParseRefusal
	// accept; agents ignore a larger message before parsing it.
	MaxReceiptWireSize = 4 << 10
	// MaxReasonLen bounds a refusal's reason, in bytes.
	MaxReasonLen = 512
)

// Receipt is the collector's signed ack: every attestation of Device up to
// Seq is stored for good, and Digest is the digest that was signed for
// Device's attestation Seq. Device is not in the wire form: it is the
// <device> of the topic, and the signature covers it.
type Receipt struct {
	Device Address
	Seq    uint64
	Digest [32]byte
	Sig    Signature
}

// Refusal is the collector's signed nack of Device's attestation Seq whose
// digest is Digest, with why.
type Refusal struct {
	Device Address
	Seq    uint64
	Digest [32]byte
	Reason string
	Sig    Signature
}

// HashStruct returns the EIP-712 hashStruct of the receipt.
func (r *Receipt) HashStruct() [32]byte {
	dev, seq := addressWord(r.Device), uintWord(r.Seq)
	return keccak256(receiptTypeHash[:], dev[:], seq[:], r.Digest[:])
}

// HashStruct returns the EIP-712 hashStruct of the refusal.
func (r *Refusal) HashStruct() [32]byte {
	dev, seq := addressWord(r.Device), uintWord(r.Seq)
	reason := keccak256([]byte(r.Reason))
	return keccak256(refusalTypeHash[:], dev[:], seq[:], r.Digest[:], reason[:])
}

// SigningDigest returns the digest the collector signs for r on chainID.
func (r *Receipt) SigningDigest(chainID uint64) [32]byte {
	return typedDigest(chainID, r.HashStruct())
}

// SigningDigest returns the digest the collector signs for r on chainID.
func (r *Refusal) SigningDigest(chainID uint64) [32]byte {
	return typedDigest(chainID, r.HashStruct())
}

func typedDigest(chainID uint64, st [32]byte) [32]byte {
	sep := DomainSeparator(chainID)
	return keccak256([]byte{0x19, 0x01}, sep[:], st[:])
}

// validate checks what a signature cannot vouch for.
func (r *Receipt) validate() error {
	if r.Seq == 0 {
		return receiptErr("seq is 0; seqs start at 1")
	}
	return nil
}

func (r *Refusal) validate() error {
	if len(r.Reason) > MaxReasonLen {
		return receiptErr("reason of %d bytes, at most %d allowed", len(r.Reason), MaxReasonLen)
	}
	if !utf8.ValidString(r.Reason) {
		return receiptErr("reason is not valid UTF-8")
	}
	return nil
}

// SignReceipt sets r.Sig to the collector key's signature over
// r.SigningDigest(chainID).
func SignReceipt(s Signer, chainID uint64, r *Receipt) error {
	if err := r.validate(); err != nil {
		return errorf("receipt seq %d: %w", r.Seq, err)
	}
	sig, err := signChecked(s, r.SigningDigest(chainID))
	if err != nil {
		return errorf("receipt seq %d: %w", r.Seq, err)
	}
	r.Sig = sig
	return nil
}

// SignRefusal sets r.Sig to the collector key's signature over
// r.SigningDigest(chainID). A reason longer than MaxReasonLen is refused:
// cut it with [TruncateReason] first.
func SignRefusal(s Signer, chainID uint64, r *Refusal) error {
	if err := r.validate(); err != nil {
		return errorf("refusal seq %d: %w", r.Seq, err)
	}
	sig, err := signChecked(s, r.SigningDigest(chainID))
	if err != nil {
		return errorf("refusal seq %d: %w", r.Seq, err)
	}
	r.Sig = sig
	return nil
}

func signChecked(s Signer, d [32]byte) (Signature, error) {
	sig, err := s.SignDigest(d)
	if err != nil {
		return sig, err
	}
	if v := sig[64]; v != 27 && v != 28 {
		return sig, errorf("signer returned v %d, expected 27 or 28: %w", v, ErrBadSignature)
	}
	return sig, nil
}

// RecoverReceipt returns the address whose key signed r on chainID.
func RecoverReceipt(chainID uint64, r *Receipt) (Address, error) {
	return recoverDigest(r.SigningDigest(chainID), r.Sig)
}

// RecoverRefusal returns the address whose key signed r on chainID.
func RecoverRefusal(chainID uint64, r *Refusal) (Address, error) {
	return recoverDigest(r.SigningDigest(chainID), r.Sig)
}

// VerifyReceipt checks that r is a well-formed receipt signed on chainID by
// one of collectors, and returns which. A receipt signed for another
// device, seq, digest or chain ID recovers to another address, so it gives
// [ErrNotCollector] like a receipt from a stranger.
func VerifyReceipt(chainID uint64, r *Receipt, collectors []Address) (Address, error) {
	if err := r.validate(); err != nil {
		return Address{}, err
	}
	addr, err := RecoverReceipt(chainID, r)
	return checkCollector(addr, err, collectors)
}

// VerifyRefusal is [VerifyReceipt] for a refusal.
func VerifyRefusal(chainID uint64, r *Refusal, collectors []Address) (Address, error) {
	if err := r.validate(); err != nil {
		return Address{}, err
	}
	addr, err := RecoverRefusal(chainID, r)
	return checkCollector(addr, err, collectors)
}

func checkCollector(addr Address, err error, collectors []Address) (Address, error) {
	if err != nil {
		return Address{}, err
	}
	if !slices.Contains(collectors, addr) {
		return addr, &fieldError{ErrNotCollector, fmt.Sprintf("%v: signature recovers to %s, not one of the %d collector addresses (or it was signed for another device, seq, digest or chain ID)",
			ErrNotCollector, addr, len(collectors))}
	}
	return addr, nil
}

// TruncateReason cuts s to at most MaxReasonLen bytes of valid UTF-8.
func TruncateReason(s string) string {
	if len(s) > MaxReasonLen {
		n := MaxReasonLen
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n]
	}
	if !utf8.ValidString(s) {
		s = string([]rune(s)) // invalid bytes become U+FFFD...
		for len(s) > MaxReasonLen {
			_, n := utf8.DecodeLastRuneInString(s)
			s = s[:len(s)-n] // ...which may lengthen it
		}
	}
	return s
}

// Wire forms, README §C2 revision 2:
//
//	ack:  {"seq":N,"digest":"0x<64 hex>","sig":"0x<130 hex>"}
//	nack: {"seq":N,"digest":"0x<64 hex>","reason":"...","sig":"0x<130 hex>"}

// AppendWire appends the ack wire form of r to dst.
func (r *Receipt) AppendWire(dst []byte) []byte {
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, r.Seq, 10)
	dst = append(dst, `,"digest":"0x`...)
	dst = hex.AppendEncode(dst, r.Digest[:])
	dst = append(dst, `","sig":"0x`...)
	dst = hex.AppendEncode(dst, r.Sig[:])
	return append(dst, `"}`...)
}

// AppendWire appends the nack wire form of r to dst.
func (r *Refusal) AppendWire(dst []byte) []byte {
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, r.Seq, 10)
	dst = append(dst, `,"digest":"0x`...)
	dst = hex.AppendEncode(dst, r.Digest[:])
	dst = append(dst, `","reason":`...)
	dst = appendJSONString(dst, r.Reason)
	dst = append(dst, `,"sig":"0x`...)
	dst = hex.AppendEncode(dst, r.Sig[:])
	return append(dst, `"}`...)
}

// ParseReceipt parses an ack's wire form for device (the <device> of its
// topic). It is as strict as [ParseWire]: exactly the fields seq, digest and
// sig, each once, hex lowercase of the exact length, at most
// MaxReceiptWireSize bytes. Errors wrap [ErrMalformedReceipt]. It checks the
// form only; [VerifyReceipt] checks the signature.
func ParseReceipt(device Address, b []byte) (*Receipt, error) {
	m, err := receiptMembers(b, "seq", "digest", "sig")
	if err != nil {
		return nil, err
	}
	r := &Receipt{Device: device}
	if r.Seq, err = parseUint(m["seq"], 64); err != nil {
		return nil, receiptErr(`field "seq": %v`, err)
	}
	if err := parseHex(m["digest"], r.Digest[:]); err != nil {
		return nil, receiptErr(`field "digest": %v`, err)
	}
	if err := parseHex(m["sig"], r.Sig[:]); err != nil {
		return nil, receiptErr(`field "sig": %v`, err)
	}
	if err := r.validate(); err != nil {
		return nil, err
	}
	return r, nil
}

// ParseRefusal parses a nack's wire form for device, like [ParseReceipt]
// with the field reason (a JSON string of at most MaxReasonLen bytes). Seq
// 0 is allowed: the collector refuses what it could not read as an
// attestation with seq 0.
func ParseRefusal(device Address, b []byte) (*Refusal, error) {
	m, err := receiptMembers(b, "seq", "digest", "reason", "sig")
	if err != nil {
		return nil, err
	}
	r := &Refusal{Device: device}
	if r.Seq, err = parseUint(m["seq"], 64); err != nil {
		return nil, receiptErr(`field "seq": %v`, err)
	}
	if err := parseHex(m["digest"], r.Digest[:]); err != nil {
		return nil, receiptErr(`field "digest": %v`, err)
	}
	raw := m["reason"]
	if len(raw) == 0 || raw[0] != '"' {
		return nil, receiptErr(`field "reason": expected a string, found %s`, excerpt(raw))
	}
	if err := json.Unmarshal(raw, &r.Reason); err != nil {
		return nil, receiptErr(`field "reason": %v`, err)
	}
	if err := parseHex(m["sig"], r.Sig[:]); err != nil {
		return nil, receiptErr(`field "sig": %v`, err)
	}
	if err := r.validate(); err != nil {
		return nil, err
	}
	return r, nil
}

// receiptMembers parses b as one JSON object with exactly the named fields.
func receiptMembers(b []byte, names ...string) (map[string][]byte, error) {
	if len(b) > MaxReceiptWireSize {
		return nil, receiptErr("%d bytes, at most %d allowed", len(b), MaxReceiptWireSize)
	}
	if !utf8.Valid(b) {
		return nil, receiptErr("not valid UTF-8")
	}
	members, err := parseObject(b)
	if err != nil {
		return nil, receiptErr("%v", err)
	}
	out := make(map[string][]byte, len(names))
	for _, n := range names {
		raw, ok := members[n]
		if !ok {
			return nil, receiptErr("field %q missing", n)
		}
		out[n] = raw
		delete(members, n)
	}
	for n := range members {
		return nil, receiptErr("unknown field %q", n)
	}
	return out, nil
}

func receiptErr(format string, args ...any) error {
	return &fieldError{ErrMalformedReceipt, ErrMalformedReceipt.Error() + ": " + fmt.Sprintf(format, args...)}
}
