package profile

import (
	"encoding/binary"
	"math"

	"github.com/csop/tbox/can"
)

// Value encodings of a field.
const (
	encInt uint8 = iota
	encFloat32
	encFloat64
)

// field is the bit layout of one DBC signal, compiled for extraction.
//
// Intel (little-endian) signals name their least significant bit: bit b of
// the payload is bit b%8 of byte b/8, and the signal occupies bits start to
// start+length-1. Motorola (big-endian) signals name their most significant
// bit in the same sawtooth numbering; counting from it, the signal continues
// to lower bits of the same byte and then to bit 7 of the next byte. In the
// "linear" big-endian numbering, where position p is bit 7-p%8 of byte p/8,
// a Motorola signal occupies positions msb to msb+length-1.
type field struct {
	length    uint8
	bigEndian bool
	signed    bool
	enc       uint8
	minLen    uint8 // payload bytes needed: last byte index + 1
	lo        uint8 // first payload byte the signal touches
	fast      bool  // the signal lies within the 8 bytes from lo
	shift     uint8 // right shift of the 8-byte word at lo (fast path)
	start     uint16
	msb       uint16 // linear big-endian position of the MSB (Motorola)
	mask      uint64
}

// newField compiles a signal of a message of size bytes.
func newField(start, length uint64, bigEndian, signed bool, enc uint8, size uint64) (field, error) {
	switch {
	case length == 0 || length > 64:
		return field{}, errorf("%w: length %d bits, want 1 to 64", ErrSignal, length)
	case enc == encFloat32 && length != 32:
		return field{}, errorf("%w: a float32 signal (SIG_VALTYPE_ 1) must be 32 bits long, found %d", ErrSignal, length)
	case enc == encFloat64 && length != 64:
		return field{}, errorf("%w: a float64 signal (SIG_VALTYPE_ 2) must be 64 bits long, found %d", ErrSignal, length)
	case size == 0 || size > can.MaxFDDataLen:
		return field{}, errorf("%w: message size %d bytes, want 1 to %d", ErrSignal, size, can.MaxFDDataLen)
	case start >= 8*size:
		return field{}, errorf("%w: start bit %d outside the %d-byte message", ErrSignal, start, size)
	}
	f := field{length: uint8(length), bigEndian: bigEndian, signed: signed, enc: enc, start: uint16(start)}
	if length == 64 {
		f.mask = ^uint64(0)
	} else {
		f.mask = 1<<length - 1
	}
	var first, last uint64 // payload byte range
	if !bigEndian {
		end := start + length - 1
		if end >= 8*size {
			return field{}, errorf("%w: Intel signal at bit %d, %d bits long, ends past the %d-byte message", ErrSignal, start, length, size)
		}
		first, last = start/8, end/8
		f.shift = uint8(start % 8)
		f.fast = first <= can.MaxFDDataLen-8 && start%8+length <= 64
	} else {
		msb := start/8*8 + 7 - start%8
		lsb := msb + length - 1
		if lsb >= 8*size {
			return field{}, errorf("%w: Motorola signal at bit %d, %d bits long, ends past the %d-byte message", ErrSignal, start, length, size)
		}
		f.msb = uint16(msb)
		first, last = start/8, lsb/8
		rel := lsb - first*8 // linear position of the LSB within the word at first
		f.fast = first <= can.MaxFDDataLen-8 && rel < 64
		if f.fast {
			f.shift = uint8(63 - rel)
		}
	}
	f.lo, f.minLen = uint8(first), uint8(last+1)
	return f, nil
}

// raw extracts the signal's bits. The caller has checked that the payload
// holds at least minLen bytes; d is the frame's full data array, so the 8-byte
// loads of the fast path never leave it.
func (f *field) raw(d *[can.MaxFDDataLen]byte) uint64 {
	if f.fast {
		if f.bigEndian {
			return binary.BigEndian.Uint64(d[f.lo:]) >> f.shift & f.mask
		}
		return binary.LittleEndian.Uint64(d[f.lo:]) >> f.shift & f.mask
	}
	var v uint64
	if f.bigEndian {
		for i := uint16(0); i < uint16(f.length); i++ {
			p := f.msb + i
			v = v<<1 | uint64(d[p/8]>>(7-p%8)&1)
		}
		return v
	}
	for i := uint16(0); i < uint16(f.length); i++ {
		b := f.start + i
		v |= uint64(d[b/8]>>(b%8)&1) << i
	}
	return v
}

// value converts raw bits into the signal's number before factor and offset.
func (f *field) value(raw uint64) float64 {
	switch f.enc {
	case encFloat32:
		return float64(math.Float32frombits(uint32(raw)))
	case encFloat64:
		return math.Float64frombits(raw)
	}
	if f.signed {
		return float64(f.signedRaw(raw))
	}
	return float64(raw)
}

// signedRaw sign-extends raw bits of a signed signal.
func (f *field) signedRaw(raw uint64) int64 {
	sh := 64 - uint(f.length)
	return int64(raw<<sh) >> sh
}

// intRaw returns raw bits as the integer they stand for (signed or not).
func (f *field) intRaw(raw uint64) int64 {
	if f.signed {
		return f.signedRaw(raw)
	}
	return int64(raw)
}

// put writes raw bits into d (encoding).
func (f *field) put(d *[can.MaxFDDataLen]byte, raw uint64) {
	raw &= f.mask
	if f.bigEndian {
		for i := uint16(0); i < uint16(f.length); i++ {
			p := f.msb + i
			bit := byte(raw>>(uint(f.length)-1-uint(i))) & 1
			d[p/8] = d[p/8]&^(1<<(7-p%8)) | bit<<(7-p%8)
		}
		return
	}
	for i := uint16(0); i < uint16(f.length); i++ {
		b := f.start + i
		bit := byte(raw>>i) & 1
		d[b/8] = d[b/8]&^(1<<(b%8)) | bit<<(b%8)
	}
}

// rawRange returns the smallest and largest raw integers the field holds.
//
// Above 53 bits the largest integer is not a float64; the bound is then the
// largest float64 below 2^n, so that converting it back never overflows.
func (f *field) rawRange() (lo, hi float64) {
	n := int(f.length)
	if f.signed {
		n--
		lo = -math.Ldexp(1, n)
	}
	if n > 53 {
		return lo, math.Nextafter(math.Ldexp(1, n), 0)
	}
	return lo, math.Ldexp(1, n) - 1
}
