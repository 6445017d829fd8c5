package can

import (
	"errors"
	"time"
)

// ErrInvalidFrame is wrapped by every error of Frame.Validate and of
// Writer.Write for a frame that cannot exist on a bus or in a log.
var ErrInvalidFrame = errors.New("invalid CAN frame")

// Limits of the two frame formats.
const (
	MaxID         = 0x7FF      // largest 11-bit (standard) identifier
	MaxExtendedID = 0x1FFFFFFF // largest 29-bit (extended) identifier
	MaxDataLen    = 8          // payload of a classic CAN frame
	MaxFDDataLen  = 64         // payload of a CAN FD frame
)

// Flags describe the kind of a frame.
type Flags uint8

const (
	Extended   Flags = 1 << iota // 29-bit identifier
	Remote                       // remote transmission request (classic CAN only)
	ErrorFrame                   // error frame reported by the controller; ID holds the error class
	FD                           // CAN FD frame
	BRS                          // CAN FD bit-rate switch
	ESI                          // CAN FD error state indicator

	allFlags = Extended | Remote | ErrorFrame | FD | BRS | ESI
)

// Frame is one CAN or CAN FD frame. It is a plain value: copying it copies the
// payload, and the zero value is a standard data frame with ID 0 and no data.
type Frame struct {
	// Time is when the frame was received: the kernel's receive timestamp on
	// SocketCAN, the recorded time in a log. Zero when unknown.
	Time time.Time
	// Bus is the interface the frame travelled on ("can0"). Readers intern
	// the name, so holding it costs no allocation per frame.
	Bus   string
	ID    uint32
	Flags Flags
	Len   uint8 // number of valid bytes in Data (DLC for a remote frame)
	Data  [MaxFDDataLen]byte
}

// IsExtended reports whether the frame has a 29-bit identifier.
func (f *Frame) IsExtended() bool { return f.Flags&Extended != 0 }

// IsRemote reports whether the frame is a remote transmission request.
func (f *Frame) IsRemote() bool { return f.Flags&Remote != 0 }

// IsError reports whether the frame is an error frame.
func (f *Frame) IsError() bool { return f.Flags&ErrorFrame != 0 }

// IsFD reports whether the frame is a CAN FD frame.
func (f *Frame) IsFD() bool { return f.Flags&FD != 0 }

// Payload returns the valid bytes of the frame's data. It aliases f.Data.
func (f *Frame) Payload() []byte {
	if f.IsRemote() {
		return nil
	}
	return f.Data[:f.Len]
}

// Validate reports whether the frame is well formed: the identifier fits its
// format, the length fits the frame kind, and the flags do not contradict each
// other. An error frame carries its error class in a 29-bit ID and is a
// classic frame that is neither extended nor remote. Errors wrap
// ErrInvalidFrame.
func (f *Frame) Validate() error {
	switch {
	case f.Flags&^allFlags != 0:
		return errorf("%w: undefined flag bits 0x%02X", ErrInvalidFrame, uint8(f.Flags&^allFlags))
	case f.IsError() && f.ID > MaxExtendedID:
		return errorf("%w: error class 0x%X exceeds 29 bits", ErrInvalidFrame, f.ID)
	case f.IsError() && f.Flags&(Extended|Remote|FD|BRS|ESI) != 0:
		return errorf("%w: error frame with extended, remote or CAN FD flags", ErrInvalidFrame)
	case f.IsExtended() && f.ID > MaxExtendedID:
		return errorf("%w: extended id 0x%X exceeds 29 bits", ErrInvalidFrame, f.ID)
	case !f.IsExtended() && !f.IsError() && f.ID > MaxID:
		return errorf("%w: standard id 0x%X exceeds 11 bits", ErrInvalidFrame, f.ID)
	case f.IsFD() && f.IsRemote():
		return errorf("%w: CAN FD frame cannot be a remote frame", ErrInvalidFrame)
	case !f.IsFD() && f.Flags&(BRS|ESI) != 0:
		return errorf("%w: BRS/ESI flags on a classic CAN frame", ErrInvalidFrame)
	case f.IsFD() && !validFDLen(f.Len):
		return errorf("%w: CAN FD length %d is not a valid FD length", ErrInvalidFrame, f.Len)
	case !f.IsFD() && f.Len > MaxDataLen:
		return errorf("%w: classic CAN length %d exceeds %d", ErrInvalidFrame, f.Len, MaxDataLen)
	}
	return nil
}

// String formats the frame as candump does after the interface name:
// "1A3#0011", "18FEF100#R2", "123##1AABB", "20000004#0000000000000000".
func (f *Frame) String() string {
	var b [maxFrameText]byte
	return string(appendFrameText(b[:0], f))
}

func validFDLen(n uint8) bool {
	switch n {
	case 0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64:
		return true
	}
	return false
}
