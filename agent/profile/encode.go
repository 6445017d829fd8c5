package profile

import (
	"math"

	"github.com/csop/tbox/can"
)

// Encode returns a frame of kind k's message carrying physical: meters for
// the odometer, km/h for the speed, the raw value for a drive mode (see
// ModeValue). The frame has the message's length, its other bytes zero, the
// multiplexer switch set when the signal needs it, and Bus set to the
// signal's bus ("" for the default bus). A message longer than 8 bytes, or
// one the profile says travels as CAN FD (Profile.FD), gives a CAN FD frame
// of the next valid FD length. Decode(Encode(x)) returns x within
// one Resolution step.
func (p *Profile) Encode(k Kind, physical float64) (can.Frame, error) {
	var f can.Frame
	if !p.Has(k) {
		return f, errorf("%w: the profile has no %s signal", ErrMissing, k)
	}
	s := p.sigs[k]
	if s.poll != nil {
		return f, errorf("encode %s: %w (build the response with Poll)", k, ErrPolled)
	}
	if err := s.encode(&f.Data, physical); err != nil {
		return f, errorf("encode %s %s.%s: %w", k, s.message, s.name, err)
	}
	if s.mux != nil {
		s.mux.put(&f.Data, s.muxRanges[0][0])
	}
	f.ID = s.key.ID
	if s.key.Extended {
		f.Flags |= can.Extended
	}
	f.Len = frameLen(s.size, &f.Flags)
	if s.fd {
		f.Flags |= can.FD
	}
	f.Bus = s.bus
	return f, nil
}

// frameLen returns the frame length for a DBC message size, switching to CAN
// FD (and its next valid length) above 8 bytes.
func frameLen(size uint8, flags *can.Flags) uint8 {
	if size <= can.MaxDataLen {
		return size
	}
	*flags |= can.FD
	for _, n := range []uint8{12, 16, 20, 24, 32, 48, 64} {
		if n >= size {
			return n
		}
	}
	return can.MaxFDDataLen
}

func (s *signal) encode(d *[can.MaxFDDataLen]byte, physical float64) error {
	if math.IsNaN(physical) || math.IsInf(physical, 0) {
		return errorf("%w: %v is not a finite number", ErrValue, physical)
	}
	if s.kind == DriveMode {
		lo, hi := s.f.rawRange()
		r := math.Round(physical)
		if r < lo || r > hi {
			return errorf("%w: raw value %v outside [%v, %v]", ErrValue, physical, lo, hi)
		}
		s.f.put(d, uint64(int64(r)))
		return nil
	}
	v := (physical/s.unitScale - s.dbcOffset) / s.factor
	switch s.f.enc {
	case encFloat32:
		if math.Abs(v) > math.MaxFloat32 {
			return errorf("%w: %v overflows a float32", ErrValue, physical)
		}
		s.f.put(d, uint64(math.Float32bits(float32(v))))
		return nil
	case encFloat64:
		s.f.put(d, math.Float64bits(v))
		return nil
	}
	r := math.Round(v)
	lo, hi := s.f.rawRange()
	if r < lo || r > hi {
		return errorf("%w: %v needs raw value %v, outside [%v, %v] of the %d-bit signal", ErrValue, physical, r, lo, hi, s.f.length)
	}
	if s.f.signed {
		s.f.put(d, uint64(int64(r)))
	} else {
		s.f.put(d, uint64(r))
	}
	return nil
}
