// Package wire parses attestations in wire form (README §C1) for the
// collector, faster than signer.ParseWire and with the same results.
//
// A device writes the wire form with signer's AppendWire: the fields in
// order, no whitespace, numbers without leading zeros, mode names without
// escapes. [ParseInto] reads that canonical form in one pass, with no
// allocation but the modes' (one slice and one string for all their
// names). Anything else, valid or not (whitespace, escapes, another field
// order, a duplicate or unknown field, a number out of range, trailing
// bytes, invalid UTF-8...), goes to signer.ParseWire, which decides it: so
// what is accepted, the attestation it gives and the error of what is
// refused are signer.ParseWire's, byte for byte. FuzzParseInto checks
// that against signer.ParseWire.
package wire

import (
	"unicode/utf8"

	"github.com/csop/tbox/signer"
)

// Parse parses one attestation in wire form, as signer.ParseWire.
func Parse(b []byte) (*signer.Attestation, error) {
	a := new(signer.Attestation)
	if err := ParseInto(a, b); err != nil {
		return nil, err
	}
	return a, nil
}

// ParseInto parses one attestation in wire form into a, as
// signer.ParseWire: the same attestation, or the same error (a is then
// left zero).
func ParseInto(a *signer.Attestation, b []byte) error {
	if canonical(a, b) {
		return nil
	}
	*a = signer.Attestation{}
	p, err := signer.ParseWire(b)
	if err != nil {
		return err
	}
	*a = *p
	return nil
}

// canonical parses b into a if it is in the canonical wire form (the
// form AppendWire writes) and reports whether it was; a holds partial
// results when it was not.
func canonical(a *signer.Attestation, b []byte) bool {
	if len(b) > signer.MaxWireSize {
		return false
	}
	p := parser{b: b}
	if !p.lit(`{"v":1,"device":"0x`) || !p.hex(a.Device[:]) ||
		!p.lit(`","seq":`) || !p.uint(&a.Seq, 64) ||
		!p.lit(`,"batch":`) || !p.uint(&a.Batch, 64) {
		return false
	}
	var n uint64
	if !p.lit(`,"batches":`) || !p.uint(&n, 32) {
		return false
	}
	a.Batches = uint32(n)
	if !p.lit(`,"meters":`) || !p.uint(&a.Meters, 64) || !p.lit(`,"modes":[`) {
		return false
	}
	var modes [signer.MaxModes]signer.ModeMeters
	var names [signer.MaxModes][2]int // offsets of each name in b
	k, first, last := 0, -1, -1
	if !p.lit(`]`) {
		for {
			if k == signer.MaxModes || !p.lit(`{"mode":"`) {
				return false
			}
			i, ok := p.str()
			if !ok {
				return false
			}
			if first < 0 {
				first = i
			}
			last = p.i
			names[k] = [2]int{i, p.i}
			if !p.lit(`","meters":`) || !p.uint(&modes[k].Meters, 64) || !p.lit(`}`) {
				return false
			}
			k++
			if p.lit(`]`) {
				break
			}
			if !p.lit(`,`) {
				return false
			}
		}
	}
	if !p.lit(`,"prev":"0x`) || !p.hex(a.Prev[:]) || !p.lit(`","flags":`) || !p.uint(&n, 32) {
		return false
	}
	a.Flags = uint32(n)
	if !p.lit(`,"sig":"0x`) || !p.hex(a.Sig[:]) || !p.lit(`"}`) || p.i != len(b) {
		return false
	}
	a.V = signer.Version
	a.Modes = nil
	if k > 0 {
		// One string holds every name: one allocation, not one per mode.
		all := string(b[first:last])
		ms := make([]signer.ModeMeters, k)
		for j := range k {
			ms[j] = signer.ModeMeters{Mode: all[names[j][0]-first : names[j][1]-first], Meters: modes[j].Meters}
		}
		a.Modes = ms
	}
	return true
}

// parser reads b from offset i.
type parser struct {
	b []byte
	i int
}

// lit consumes s if b continues with it.
func (p *parser) lit(s string) bool {
	if len(p.b)-p.i < len(s) || string(p.b[p.i:p.i+len(s)]) != s {
		return false
	}
	p.i += len(s)
	return true
}

// hex consumes 2*len(dst) lowercase hex digits into dst.
func (p *parser) hex(dst []byte) bool {
	if len(p.b)-p.i < 2*len(dst) {
		return false
	}
	s := p.b[p.i : p.i+2*len(dst)]
	for j := range dst {
		hi, ok1 := nibble(s[2*j])
		lo, ok2 := nibble(s[2*j+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[j] = hi<<4 | lo
	}
	p.i += 2 * len(dst)
	return true
}

func nibble(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// uint consumes a JSON integer without sign or leading zero, of at most
// bitSize bits.
func (p *parser) uint(dst *uint64, bitSize uint) bool {
	j := p.i
	var n uint64
	for j < len(p.b) && '0' <= p.b[j] && p.b[j] <= '9' {
		d := uint64(p.b[j] - '0')
		if n > (1<<64-1-d)/10 {
			return false // beyond 64 bits
		}
		n = n*10 + d
		j++
	}
	if j == p.i || p.b[p.i] == '0' && j > p.i+1 || bitSize < 64 && n>>bitSize != 0 {
		return false
	}
	// What follows a number in the canonical form is ',' or '}': a '.',
	// 'e' or 'E' (a JSON number that is no integer) is left to ParseWire
	// by the literal that must follow.
	*dst = n
	p.i = j
	return true
}

// str consumes the body of a JSON string without escapes, up to its
// closing quote (not consumed), and returns its start.
func (p *parser) str() (int, bool) {
	start := p.i
	ascii := true
	j := p.i
	for ; j < len(p.b); j++ {
		c := p.b[j]
		if c == '"' {
			break
		}
		if c == '\\' || c < 0x20 {
			return 0, false
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
	}
	if j == len(p.b) || !ascii && !utf8.Valid(p.b[start:j]) {
		return 0, false
	}
	p.i = j
	return start, true
}
