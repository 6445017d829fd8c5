// Package isotp is ISO 15765-2 (ISO-TP) on classic CAN, as far as a tester
// that asks one ECU for one value needs it: the single frame of a request,
// the flow control frame a tester sends, segmenting a response (for
// simulators), and a bounded reassembler of responses.
//
// # Frames
//
// The first nibble of byte 0 (the PCI) tells the frame type:
//
//	0x0L            single frame, L = payload length 1..7, payload in bytes 1..L
//	0x1L LL         first frame, 12-bit length LLL (8..4095), 6 payload bytes
//	0x2N            consecutive frame, sequence number N (1, 2, ..., 15, 0, 1, ...)
//	0x3S BS ST      flow control: S = 0 continue, 1 wait, 2 overflow; block size, STmin
//
// Frames are padded to 8 bytes with Pad, as ISO 15765-4 (OBD on CAN) asks.
// The 32-bit length escape of a first frame (0x10 0x00, ISO 15765-2:2016) and
// CAN FD framing are not supported: a reassembler refuses them.
package isotp

import (
	"errors"

	"github.com/csop/tbox/can"
)

// MaxPayload is the largest payload of classic ISO-TP (a 12-bit length).
const MaxPayload = 4095

// Pad fills the unused bytes of a frame.
const Pad = 0xCC

// Frame types: the high nibble of byte 0.
const (
	TypeSingle      = 0x0
	TypeFirst       = 0x1
	TypeConsecutive = 0x2
	TypeFlowControl = 0x3
)

// Errors of the reassembler; Push wraps them with what it found.
var (
	ErrTooLong    = errors.New("ISO-TP length above the limit")
	ErrSequence   = errors.New("ISO-TP consecutive frame out of sequence")
	ErrMalformed  = errors.New("malformed ISO-TP frame")
	ErrUnexpected = errors.New("ISO-TP consecutive frame without a first frame")
	ErrAborted    = errors.New("ISO-TP message abandoned by a new first or single frame")
)

// SingleFrame returns the single frame carrying payload (1 to 7 bytes) on
// key, padded to 8 bytes.
func SingleFrame(key can.Key, payload []byte) (can.Frame, error) {
	if len(payload) < 1 || len(payload) > 7 {
		return can.Frame{}, errorf("%w: single frame of %d bytes, want 1 to 7", ErrMalformed, len(payload))
	}
	f := newFrame(key)
	f.Data[0] = byte(len(payload))
	copy(f.Data[1:], payload)
	return f, nil
}

// FlowControl returns the flow control frame "continue to send", with block
// size 0 (all the rest) and STmin 0, that a tester sends after a first frame.
func FlowControl(key can.Key) can.Frame {
	f := newFrame(key)
	f.Data[0], f.Data[1], f.Data[2] = TypeFlowControl<<4, 0, 0
	return f
}

// IsFlowControl reports whether data is a flow control frame.
func IsFlowControl(data []byte) bool { return len(data) >= 3 && data[0]>>4 == TypeFlowControl }

// Segment returns the frames that carry payload on key: one single frame up
// to 7 bytes, else a first frame and its consecutive frames (the sender
// waits for the receiver's flow control after the first one).
func Segment(key can.Key, payload []byte) ([]can.Frame, error) {
	if len(payload) <= 7 {
		f, err := SingleFrame(key, payload)
		if err != nil {
			return nil, err
		}
		return []can.Frame{f}, nil
	}
	if len(payload) > MaxPayload {
		return nil, errorf("%w: %d bytes, the limit is %d", ErrTooLong, len(payload), MaxPayload)
	}
	f := newFrame(key)
	f.Data[0] = TypeFirst<<4 | byte(len(payload)>>8)
	f.Data[1] = byte(len(payload))
	copy(f.Data[2:8], payload)
	out := []can.Frame{f}
	rest := payload[6:]
	for sn := 1; len(rest) > 0; sn++ {
		c := newFrame(key)
		c.Data[0] = TypeConsecutive<<4 | byte(sn&0xF)
		n := copy(c.Data[1:8], rest)
		rest = rest[n:]
		out = append(out, c)
	}
	return out, nil
}

func newFrame(key can.Key) can.Frame {
	f := can.Frame{ID: key.ID, Len: 8}
	if key.Extended {
		f.Flags = can.Extended
	}
	for i := 0; i < 8; i++ {
		f.Data[i] = Pad
	}
	return f
}

// Event is what one frame did to a Reassembler.
type Event uint8

// Events of Push.
const (
	Ignored  Event = iota // not ISO-TP data for us (flow control, empty frame, ...)
	Complete              // a whole payload is ready
	First                 // a first frame started a message: a tester now sends flow control
	Partial               // a consecutive frame was added
	Dropped               // the frame was refused (see the error)
)

// Reassembler rebuilds ISO-TP payloads from the frames of one sender. Its
// memory is fixed at construction (the limit), whatever the frames claim.
// It is not safe for concurrent use.
type Reassembler struct {
	buf    []byte // cap = limit
	want   int    // length announced by the first frame; 0 when idle
	seq    byte   // next expected sequence number
	active bool
}

// NewReassembler returns a reassembler of payloads up to limit bytes (at
// most MaxPayload): a first frame that announces more is refused at once,
// before any byte is kept.
func NewReassembler(limit int) *Reassembler {
	limit = min(max(limit, 7), MaxPayload)
	return &Reassembler{buf: make([]byte, 0, limit)}
}

// Reset abandons a message in progress.
func (r *Reassembler) Reset() { r.active, r.want, r.buf = false, 0, r.buf[:0] }

// Active reports whether a multi-frame message is in progress.
func (r *Reassembler) Active() bool { return r.active }

// Push adds one frame's data. With Complete, payload is the whole message;
// it is valid until the next Push. With Dropped, err says why, and the
// message in progress, if any, is abandoned.
func (r *Reassembler) Push(data []byte) (ev Event, payload []byte, err error) {
	if len(data) == 0 {
		return Ignored, nil, nil
	}
	switch data[0] >> 4 {
	case TypeSingle:
		r.Reset() // a single frame supersedes a message in progress, as in ISO 15765-2
		n := int(data[0] & 0xF)
		if n == 0 || n > 7 || n > len(data)-1 {
			return Dropped, nil, errorf("%w: single frame of length %d in %d bytes", ErrMalformed, n, len(data))
		}
		if n > cap(r.buf) {
			return Dropped, nil, errorf("%w: single frame of %d bytes, the limit is %d", ErrTooLong, n, cap(r.buf))
		}
		r.buf = append(r.buf, data[1:1+n]...)
		return Complete, r.buf, nil
	case TypeFirst:
		r.Reset()
		if len(data) < 8 {
			return Dropped, nil, errorf("%w: first frame of %d bytes, want 8", ErrMalformed, len(data))
		}
		n := int(data[0]&0xF)<<8 | int(data[1])
		if n == 0 {
			return Dropped, nil, errorf("%w: first frame with the 32-bit length escape", ErrTooLong)
		}
		if n < 8 {
			return Dropped, nil, errorf("%w: first frame of length %d, want 8 or more", ErrMalformed, n)
		}
		if n > cap(r.buf) {
			return Dropped, nil, errorf("%w: first frame announces %d bytes, the limit is %d", ErrTooLong, n, cap(r.buf))
		}
		r.buf = append(r.buf, data[2:8]...)
		r.want, r.seq, r.active = n, 1, true
		return First, nil, nil
	case TypeConsecutive:
		if !r.active {
			return Dropped, nil, ErrUnexpected
		}
		if sn := data[0] & 0xF; sn != r.seq {
			r.Reset()
			return Dropped, nil, errorf("%w: sequence number %d, want %d", ErrSequence, sn, r.seq)
		}
		take := min(r.want-len(r.buf), 7, len(data)-1)
		if take <= 0 {
			r.Reset()
			return Dropped, nil, errorf("%w: empty consecutive frame", ErrMalformed)
		}
		r.buf = append(r.buf, data[1:1+take]...)
		r.seq = (r.seq + 1) & 0xF
		if len(r.buf) == r.want {
			r.active = false
			return Complete, r.buf, nil
		}
		return Partial, nil, nil
	}
	return Ignored, nil, nil
}
