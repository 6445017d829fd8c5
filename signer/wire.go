package signer

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxWireSize bounds the wire form [ParseWire] accepts.
const MaxWireSize = 16 << 10

// Wire form, README §C1: one JSON object, fields in this order, addresses
// and hex lowercase with 0x:
//
//	{"v":1,"device":"0x<40 hex>","seq":7,"batch":2811234,"batches":1,"meters":10412,
//	 "modes":[{"mode":"ECO","meters":2412},{"mode":"SPORT","meters":8000}],
//	 "prev":"0x<64 hex>","flags":0,"sig":"0x<130 hex>"}

// AppendWire appends the wire form of a to dst.
func (a *Attestation) AppendWire(dst []byte) []byte {
	dst = append(dst, `{"v":`...)
	dst = strconv.AppendInt(dst, int64(a.V), 10)
	dst = append(dst, `,"device":"0x`...)
	dst = hex.AppendEncode(dst, a.Device[:])
	dst = append(dst, `","seq":`...)
	dst = strconv.AppendUint(dst, a.Seq, 10)
	dst = append(dst, `,"batch":`...)
	dst = strconv.AppendUint(dst, a.Batch, 10)
	dst = append(dst, `,"batches":`...)
	dst = strconv.AppendUint(dst, uint64(a.Batches), 10)
	dst = append(dst, `,"meters":`...)
	dst = strconv.AppendUint(dst, a.Meters, 10)
	dst = append(dst, `,"modes":[`...)
	for i, m := range a.Modes {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"mode":`...)
		dst = appendJSONString(dst, m.Mode)
		dst = append(dst, `,"meters":`...)
		dst = strconv.AppendUint(dst, m.Meters, 10)
		dst = append(dst, '}')
	}
	dst = append(dst, `],"prev":"0x`...)
	dst = hex.AppendEncode(dst, a.Prev[:])
	dst = append(dst, `","flags":`...)
	dst = strconv.AppendUint(dst, uint64(a.Flags), 10)
	dst = append(dst, `,"sig":"0x`...)
	dst = hex.AppendEncode(dst, a.Sig[:])
	dst = append(dst, `"}`...)
	return dst
}

// MarshalJSON returns the wire form.
func (a *Attestation) MarshalJSON() ([]byte, error) {
	return a.AppendWire(nil), nil
}

// UnmarshalJSON parses the wire form with [ParseWire].
func (a *Attestation) UnmarshalJSON(b []byte) error {
	p, err := ParseWire(b)
	if err != nil {
		return err
	}
	*a = *p
	return nil
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// as with encoding/json; Validate refuses such mode names before signing.
func appendJSONString(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}

// ParseWire parses one attestation in wire form. It is strict: the input
// must be one UTF-8 JSON object holding exactly the ten fields of README §C1,
// each once, numbers as unsigned decimal integers in range, hex lowercase
// with 0x and of the exact length. A "v" other than [Version] gives
// [ErrUnknownVersion]; anything else wrong gives [ErrMalformed], naming the
// field, what was expected and what was found. ParseWire checks the form
// only; [Verify] checks the content and the signature.
func ParseWire(b []byte) (*Attestation, error) {
	if len(b) > MaxWireSize {
		return nil, malformed("%d bytes, at most %d allowed", len(b), MaxWireSize)
	}
	if !utf8.Valid(b) {
		return nil, malformed("not valid UTF-8")
	}
	members, err := parseObject(b)
	if err != nil {
		return nil, malformed("%v", err)
	}
	// The version decides what the other fields mean: look at it first.
	vRaw, ok := members["v"]
	if !ok {
		return nil, malformed(`field "v" missing`)
	}
	if !isInteger(vRaw) {
		return nil, malformed(`field "v": expected an integer, found %s`, excerpt(vRaw))
	}
	if string(vRaw) != strconv.Itoa(Version) {
		return nil, &fieldError{ErrUnknownVersion, fmt.Sprintf("%v: v is %s, this verifier knows %d", ErrUnknownVersion, excerpt(vRaw), Version)}
	}
	a := &Attestation{V: Version}
	for _, name := range []string{"device", "seq", "batch", "batches", "meters", "modes", "prev", "flags", "sig"} {
		raw, ok := members[name]
		if !ok {
			return nil, malformed("field %q missing", name)
		}
		var err error
		switch name {
		case "device":
			err = parseHex(raw, a.Device[:])
		case "seq":
			a.Seq, err = parseUint(raw, 64)
		case "batch":
			a.Batch, err = parseUint(raw, 64)
		case "batches":
			var n uint64
			n, err = parseUint(raw, 32)
			a.Batches = uint32(n)
		case "meters":
			a.Meters, err = parseUint(raw, 64)
		case "modes":
			a.Modes, err = parseModes(raw)
		case "prev":
			err = parseHex(raw, a.Prev[:])
		case "flags":
			var n uint64
			n, err = parseUint(raw, 32)
			a.Flags = uint32(n)
		case "sig":
			err = parseHex(raw, a.Sig[:])
		}
		if err != nil {
			return nil, malformed("field %q: %v", name, err)
		}
		delete(members, name)
	}
	delete(members, "v")
	for name := range members {
		return nil, malformed("unknown field %q", name)
	}
	return a, nil
}

func malformed(format string, args ...any) error {
	return &fieldError{ErrMalformed, ErrMalformed.Error() + ": " + fmt.Sprintf(format, args...)}
}

// isInteger reports whether raw is a JSON integer: an optional minus sign
// and digits.
func isInteger(raw []byte) bool {
	if len(raw) > 0 && raw[0] == '-' {
		raw = raw[1:]
	}
	if len(raw) == 0 {
		return false
	}
	for _, c := range raw {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// parseObject reads one JSON object and returns its members. It refuses a
// repeated name (JSON parsers disagree on which value wins) and any data
// after the object. The members' values are b's own bytes, not copies.
//
// encoding/json checks the syntax (its messages name the offending
// character); the members are then cut out of the valid text by hand: a
// json.Decoder's token reader, linked for this alone, cost tboxd 7 KiB.
func parseObject(b []byte) (map[string]json.RawMessage, error) {
	if err := json.Unmarshal(b, new(json.RawMessage)); err != nil {
		return nil, syntaxErr(err)
	}
	i := skipSpace(b, 0)
	if b[i] != '{' {
		return nil, errorf("expected a JSON object, found %s", excerpt(b[i:]))
	}
	members := make(map[string]json.RawMessage)
	for i = skipSpace(b, i+1); b[i] != '}'; {
		if b[i] == ',' {
			i = skipSpace(b, i+1)
		}
		end := valueEnd(b, i)
		var name string
		_ = json.Unmarshal(b[i:end], &name) // a valid key string
		i = skipSpace(b, end)
		i = skipSpace(b, i+1) // the ':'
		end = valueEnd(b, i)
		if _, dup := members[name]; dup {
			return nil, errorf("field %q appears twice", name)
		}
		members[name] = b[i:end]
		i = skipSpace(b, end)
	}
	return members, nil
}

// syntaxErr turns encoding/json's syntax error into a message a reader
// understands: a truncated text and data after the object get their own.
func syntaxErr(err error) error {
	if se, ok := err.(*json.SyntaxError); ok {
		switch msg := se.Error(); {
		case msg == "unexpected end of JSON input":
			return errors.New("unexpected end of input (truncated JSON)")
		case strings.HasSuffix(msg, "after top-level value"):
			return errors.New("data after the JSON object")
		}
	}
	return err
}

// skipSpace returns the index of the first byte at or after i in valid
// JSON text b that is not white space.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// valueEnd returns the end of the value that starts at b[i] in valid JSON
// text b.
func valueEnd(b []byte, i int) int {
	depth := 0
	for ; i < len(b); i++ {
		switch c := b[i]; c {
		case '"':
			for i++; b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
		case '{', '[':
			depth++
			continue
		case '}', ']':
			depth--
		case ',', ':', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return i
			}
			continue
		default:
			if depth == 0 && (i+1 == len(b) || strings.IndexByte(",}] \t\n\r", b[i+1]) >= 0) {
				return i + 1 // the last byte of a number or a literal
			}
			continue
		}
		if depth == 0 {
			return i + 1
		}
	}
	return i
}

// parseUint parses an unsigned decimal JSON integer of at most bitSize bits.
func parseUint(raw json.RawMessage, bitSize int) (uint64, error) {
	n, err := strconv.ParseUint(string(raw), 10, bitSize)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, errorf("expected an integer up to %d, found %s", uint64(1)<<bitSize-1, excerpt(raw))
		}
		return 0, errorf("expected an unsigned integer, found %s", excerpt(raw))
	}
	return n, nil
}

// parseHex parses a JSON string "0x" + lowercase hex of exactly len(dst) bytes.
func parseHex(raw json.RawMessage, dst []byte) error {
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return errorf("expected a string, found %s", excerpt(raw))
	}
	want := 2 + 2*len(dst)
	if len(s) < 2 || s[:2] != "0x" {
		return errorf("expected 0x and %d lowercase hex digits, found %s", 2*len(dst), excerpt(raw))
	}
	if len(s) != want {
		return errorf("expected 0x and %d hex digits (%d bytes), found %d digits", 2*len(dst), len(dst), len(s)-2)
	}
	for i := 2; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return errorf("expected lowercase hex digits, found %q at offset %d", c, i)
		}
	}
	_, err := hex.Decode(dst, []byte(s[2:]))
	return err
}

// parseModes parses the modes array.
func parseModes(raw json.RawMessage) ([]ModeMeters, error) {
	if len(raw) == 0 || raw[0] != '[' {
		return nil, errorf("expected an array, found %s", excerpt(raw))
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, err
	}
	if len(elems) > MaxModes {
		return nil, errorf("%d entries, at most %d allowed", len(elems), MaxModes)
	}
	if len(elems) == 0 {
		return nil, nil
	}
	modes := make([]ModeMeters, 0, len(elems))
	for i, e := range elems {
		where := fmt.Sprintf("modes[%d]", i)
		members, err := parseObject(e)
		if err != nil {
			return nil, errorf("%s: %w", where, err)
		}
		var m ModeMeters
		mode, ok := members["mode"]
		if !ok {
			return nil, errorf(`%s: field "mode" missing`, where)
		}
		if len(mode) == 0 || mode[0] != '"' || json.Unmarshal(mode, &m.Mode) != nil {
			return nil, errorf(`%s: field "mode": expected a string, found %s`, where, excerpt(mode))
		}
		meters, ok := members["meters"]
		if !ok {
			return nil, errorf(`%s: field "meters" missing`, where)
		}
		if m.Meters, err = parseUint(meters, 64); err != nil {
			return nil, errorf(`%s: field "meters": %v`, where, err)
		}
		if len(members) != 2 {
			for name := range members {
				if name != "mode" && name != "meters" {
					return nil, errorf("%s: unknown field %q", where, name)
				}
			}
		}
		modes = append(modes, m)
	}
	return modes, nil
}

// excerpt quotes the start of a raw value for an error message.
//
// Not inlined: an error path called from many places, kept as one copy.
//
//go:noinline
func excerpt(raw []byte) string {
	const max = 40
	if len(raw) == 0 {
		return "nothing"
	}
	if len(raw) > max {
		n := max
		for n > 0 && !utf8.RuneStart(raw[n]) {
			n--
		}
		return string(raw[:n]) + "..."
	}
	return string(raw)
}
