package socketcan

import (
	"encoding/binary"
	"errors"

	"github.com/csop/tbox/can"
)

// Kernel frame layouts (linux/can.h). Both structs are in host byte order.
//
//	struct can_frame {                 struct canfd_frame {
//	  0  canid_t can_id;                 0  canid_t can_id;
//	  4  __u8    len;  (can_dlc)         4  __u8    len;
//	  5  __u8    __pad;                  5  __u8    flags;  (CANFD_BRS, CANFD_ESI, CANFD_FDF)
//	  6  __u8    __res0;                 6  __u8    __res0;
//	  7  __u8    len8_dlc;               7  __u8    __res1;
//	  8  __u8    data[8];                8  __u8    data[64];
//	};  16 bytes (CAN_MTU)             };  72 bytes (CANFD_MTU)
const (
	offID    = 0
	offLen   = 4
	offFlags = 5
	offData  = 8

	classicMTU = offData + can.MaxDataLen   // CAN_MTU
	fdMTU      = offData + can.MaxFDDataLen // CANFD_MTU
)

// Pin the layouts at compile time: a change to the offsets or the payload
// sizes that breaks the kernel's struct sizes fails the build.
var (
	_ [16]struct{} = [classicMTU]struct{}{}
	_ [72]struct{} = [fdMTU]struct{}{}
)

// canfd_frame.flags.
const (
	fdFlagBRS = 0x01 // CANFD_BRS: bit rate switch
	fdFlagESI = 0x02 // CANFD_ESI: error state indicator of the transmitter
	fdFlagFDF = 0x04 // CANFD_FDF: this is a CAN FD frame (set by kernels >= 6.0)
)

// errMalformed reports a kernel frame of an unexpected size or content.
var errMalformed = errors.New("malformed kernel frame")

// marshalFrame writes f in the kernel's layout into b, which must hold
// fdMTU bytes, and returns the number of bytes to send: classicMTU for a
// classic frame, fdMTU for a CAN FD frame.
func marshalFrame(b []byte, f *can.Frame) (int, error) {
	if err := f.Validate(); err != nil {
		return 0, err
	}
	n := classicMTU
	if f.IsFD() {
		n = fdMTU
	}
	if len(b) < n {
		return 0, errorf("buffer of %d bytes: want %d", len(b), n)
	}
	b = b[:n]
	clear(b)
	binary.NativeEndian.PutUint32(b[offID:], can.KernelID(f))
	b[offLen] = f.Len
	if f.IsFD() {
		fl := byte(fdFlagFDF)
		if f.Flags&can.BRS != 0 {
			fl |= fdFlagBRS
		}
		if f.Flags&can.ESI != 0 {
			fl |= fdFlagESI
		}
		b[offFlags] = fl
	}
	if !f.IsRemote() {
		copy(b[offData:], f.Data[:f.Len])
	}
	return n, nil
}

// unmarshalFrame decodes a kernel frame of classicMTU or fdMTU bytes into f.
// It sets ID, Flags, Len and Data; Time and Bus are left alone.
func unmarshalFrame(b []byte, f *can.Frame) error {
	if len(b) != classicMTU && len(b) != fdMTU {
		return errorf("%w: %d bytes, want %d (can_frame) or %d (canfd_frame)", errMalformed, len(b), classicMTU, fdMTU)
	}
	id := binary.NativeEndian.Uint32(b[offID:])
	var fl can.Flags
	switch {
	case id&can.KernelERRFlag != 0:
		fl |= can.ErrorFrame
		f.ID = id & can.KernelEFFMask
	case id&can.KernelEFFFlag != 0:
		fl |= can.Extended
		f.ID = id & can.KernelEFFMask
	default:
		f.ID = id & can.KernelSFFMask
	}
	n := b[offLen]
	max := uint8(can.MaxDataLen)
	if len(b) == fdMTU {
		fl |= can.FD
		max = can.MaxFDDataLen
		if b[offFlags]&fdFlagBRS != 0 {
			fl |= can.BRS
		}
		if b[offFlags]&fdFlagESI != 0 {
			fl |= can.ESI
		}
	} else if id&can.KernelRTRFlag != 0 {
		fl |= can.Remote
	}
	if n > max {
		return errorf("%w: length %d exceeds %d", errMalformed, n, max)
	}
	f.Flags = fl
	f.Len = n
	f.Data = [can.MaxFDDataLen]byte{}
	if fl&can.Remote == 0 {
		copy(f.Data[:n], b[offData:offData+int(n)])
	}
	return nil
}
