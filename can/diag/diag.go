// Package diag is the one question a T-Box asks a car: an OBD-II current
// data request (service 0x01 with a PID) or a UDS ReadDataByIdentifier
// (service 0x22 with a DID), and the parser of the answer.
//
// # Messages
//
//	OBD request   01 PP                 response   41 PP V1 .. Vn
//	UDS request   22 DH DL              response   62 DH DL V1 .. Vn
//	negative      7F SS NN              SS = the request's service, NN = the code
//
// V1..Vn is the big-endian unsigned value of Length bytes. Code 0x78
// (response pending) means the ECU will answer later.
package diag

import (
	"errors"
	"fmt"
)

// Services.
const (
	ServiceOBDCurrent = 0x01 // OBD-II show current data
	ServiceReadDID    = 0x22 // UDS ReadDataByIdentifier
	Negative          = 0x7F // negative response
	positive          = 0x40 // a positive response's service is the request's + 0x40
)

// NRCPending is the negative response code "request correctly received,
// response pending".
const NRCPending = 0x78

// MaxLength is the largest value a Query reads, in bytes.
const MaxLength = 8

// Errors of Parse.
var (
	// ErrOther marks a response to another service, PID or DID: not ours,
	// ignored.
	ErrOther = errors.New("response to another request")
	// ErrShort marks a positive response too short for the value.
	ErrShort = errors.New("response too short")
)

// NegativeError is a negative response (0x7F).
type NegativeError struct {
	Service byte
	Code    byte
}

func (e *NegativeError) Error() string {
	return fmt.Sprintf("negative response to service 0x%02X: code 0x%02X (%s)", e.Service, e.Code, codeName(e.Code))
}

// Pending reports whether the ECU asked for more time (0x78).
func (e *NegativeError) Pending() bool { return e.Code == NRCPending }

func codeName(c byte) string {
	switch c {
	case 0x10:
		return "general reject"
	case 0x11:
		return "service not supported"
	case 0x12:
		return "sub-function not supported"
	case 0x13:
		return "incorrect message length or format"
	case 0x14:
		return "response too long"
	case 0x21:
		return "busy, repeat request"
	case 0x22:
		return "conditions not correct"
	case 0x31:
		return "request out of range"
	case 0x33:
		return "security access denied"
	case NRCPending:
		return "response pending"
	}
	return "other"
}

// Query is one configured question: the service, the PID (OBD, 8 bits) or
// DID (UDS, 16 bits), and the length of the value in the answer.
type Query struct {
	Service byte   // ServiceOBDCurrent or ServiceReadDID
	ID      uint16 // PID or DID
	Length  int    // value bytes, 1..MaxLength
}

// Validate reports a query that cannot be asked.
func (q Query) Validate() error {
	switch q.Service {
	case ServiceOBDCurrent:
		if q.ID > 0xFF {
			return errorf("PID 0x%X: want 0x00 to 0xFF", q.ID)
		}
	case ServiceReadDID:
	default:
		return errorf("service 0x%02X: want 0x01 (OBD) or 0x22 (UDS)", q.Service)
	}
	if q.Length < 1 || q.Length > MaxLength {
		return errorf("length %d: want 1 to %d bytes", q.Length, MaxLength)
	}
	return nil
}

// Request returns the request's bytes.
func (q Query) Request() []byte {
	if q.Service == ServiceOBDCurrent {
		return []byte{ServiceOBDCurrent, byte(q.ID)}
	}
	return []byte{q.Service, byte(q.ID >> 8), byte(q.ID)}
}

// header is the length of a positive response before the value.
func (q Query) header() int {
	if q.Service == ServiceOBDCurrent {
		return 2
	}
	return 3
}

// ResponseLen is the length of a positive response.
func (q Query) ResponseLen() int { return q.header() + q.Length }

// Response returns the positive response carrying raw (the simulator's
// side).
func (q Query) Response(raw uint64) []byte {
	b := append([]byte{q.Service + positive}, q.Request()[1:]...)
	for i := q.Length - 1; i >= 0; i-- {
		b = append(b, byte(raw>>(8*i)))
	}
	return b
}

// Parse reads the value of a response. A negative response to this
// service is a *NegativeError; a response to another service, PID or DID
// wraps ErrOther; a positive one too short for the value wraps ErrShort.
// Bytes after the value are ignored (an ECU may add other PIDs).
func (q Query) Parse(p []byte) (uint64, error) {
	if len(p) == 0 {
		return 0, errorf("%w: empty", ErrOther)
	}
	if p[0] == Negative {
		if len(p) < 3 {
			return 0, errorf("%w: negative response of %d bytes", ErrShort, len(p))
		}
		if p[1] != q.Service {
			return 0, errorf("%w: negative response to service 0x%02X", ErrOther, p[1])
		}
		return 0, &NegativeError{Service: p[1], Code: p[2]}
	}
	if p[0] != q.Service+positive {
		return 0, errorf("%w: service 0x%02X", ErrOther, p[0])
	}
	h := q.header()
	if len(p) < h {
		return 0, errorf("%w: %d bytes", ErrShort, len(p))
	}
	req := q.Request()
	for i := 1; i < h; i++ {
		if p[i] != req[i] {
			return 0, errorf("%w: identifier % X", ErrOther, p[1:h])
		}
	}
	if len(p) < h+q.Length {
		return 0, errorf("%w: %d bytes, want %d", ErrShort, len(p), h+q.Length)
	}
	var v uint64
	for _, b := range p[h : h+q.Length] {
		v = v<<8 | uint64(b)
	}
	return v, nil
}
