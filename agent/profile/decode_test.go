package profile

import (
	"math"
	"math/rand"
	"testing"
	"time"

	"github.com/csop/tbox/can"
)

func frame(id uint32, data ...byte) *can.Frame {
	f := &can.Frame{ID: id, Len: uint8(len(data)), Bus: "can0", Time: time.Unix(1700000000, 0)}
	copy(f.Data[:], data)
	return f
}

func TestDecodeEV(t *testing.T) {
	p := mustLoad(t, "testdata/ev.toml")
	ext := func(f *can.Frame) *can.Frame { f.Flags |= can.Extended; return f }
	remote := func(f *can.Frame) *can.Frame { f.Flags |= can.Remote; return f }
	for _, c := range []struct {
		name  string
		f     *can.Frame
		want  []Reading // Time and Bus are checked separately
		short uint64
	}{
		// Motorola 7|32, 0.01 km: raw 0x0012D687 = 1234567 -> 12345.67 km.
		{"odometer", frame(0x541, 0x00, 0x12, 0xD6, 0x87, 0, 0, 0, 0), []Reading{{Kind: Odometer, Value: 12345670}}, 0},
		{"odometer max", frame(0x541, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0), []Reading{{Kind: Odometer, Value: 42949672950}}, 0},
		{"drive mode", frame(0x542, 0x02, 0, 0, 0, 0, 0, 0, 0), []Reading{{Kind: DriveMode, Value: 2, Mode: "SPORT"}}, 0},
		{"drive mode other bits", frame(0x542, 0xFB, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF), []Reading{{Kind: DriveMode, Value: 3, Mode: "SNAKE"}}, 0},
		{"unnamed mode", frame(0x542, 0x04, 0, 0, 0, 0, 0, 0, 0), []Reading{{Kind: DriveMode, Value: 4, Mode: "MODE_4"}}, 0},
		// Motorola 7|16, 0.01 km/h: 0x2710 = 10000 -> 100 km/h.
		{"speed", frame(0x220, 0x27, 0x10, 0, 0, 0, 0, 0, 0), []Reading{{Kind: Speed, Value: 100}}, 0},
		{"other id", frame(0x543, 0x27, 0x10, 0, 0, 0, 0, 0, 0), nil, 0},
		{"biometric id", frame(0x5A1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF), nil, 0},
		{"29-bit with same number", ext(frame(0x541, 0x00, 0x12, 0xD6, 0x87, 0, 0, 0, 0)), nil, 0},
		{"remote", remote(frame(0x541, 0x00, 0x12, 0xD6, 0x87, 0, 0, 0, 0)), nil, 0},
		{"short odometer", frame(0x541, 0x00, 0x12, 0xD6), nil, 1},
		{"empty speed", frame(0x220), nil, 1},
		{"odometer in 4 bytes", frame(0x541, 0x00, 0x00, 0x00, 0x64), []Reading{{Kind: Odometer, Value: 1000}}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := p.NewDecoder()
			got := d.Decode(c.f, nil)
			if len(got) != len(c.want) {
				t.Fatalf("Decode = %+v, want %+v", got, c.want)
			}
			for i := range got {
				w := c.want[i]
				w.Time, w.Bus = c.f.Time, c.f.Bus
				if got[i] != w {
					t.Errorf("reading %d = %+v, want %+v", i, got[i], w)
				}
			}
			if s := d.Stats(); s.ShortFrames != c.short || s.Readings != uint64(len(c.want)) {
				t.Errorf("Stats = %+v, want %d short frames, %d readings", s, c.short, len(c.want))
			}
		})
	}
}

func TestDecodeBuses(t *testing.T) {
	p := mustLoad(t, "testdata/ev_alt.toml") // speed on can1, the rest on the default bus
	speed := func(bus string) *can.Frame {
		f, err := p.Encode(Speed, 36)
		if err != nil {
			t.Fatal(err)
		}
		f.Bus = bus
		return &f
	}
	odo := func(bus string) *can.Frame {
		f, err := p.Encode(Odometer, 5000)
		if err != nil {
			t.Fatal(err)
		}
		f.Bus = bus
		return &f
	}
	for _, c := range []struct {
		name string
		opts []DecoderOption
		f    *can.Frame
		want int
	}{
		{"speed on can1", nil, speed("can1"), 1},
		{"speed on can0", nil, speed("can0"), 0},
		{"odometer on can0", nil, odo("can0"), 1},
		{"odometer on unknown bus", nil, odo(""), 1},
		{"odometer on can1", nil, odo("can1"), 0},
		{"default bus set: can0", []DecoderOption{WithDefaultBus("can0")}, odo("can0"), 1},
		{"default bus set: can2", []DecoderOption{WithDefaultBus("can0")}, odo("can2"), 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := p.NewDecoder(c.opts...).Decode(c.f, nil)
			if len(got) != c.want {
				t.Errorf("Decode = %+v, want %d readings", got, c.want)
			}
		})
	}
}

func TestDecodeMux(t *testing.T) {
	p := mustLoad(t, "testdata/ev_mux.toml")
	d := p.NewDecoder()
	// Page 3: TotalDistanceMi, Intel 8|24, 0.1 mi: 0x003039 = 12345 -> 1234.5 mi.
	got := d.Decode(frame(0x5C0, 3, 0x39, 0x30, 0x00, 0, 0, 0, 0), nil)
	if len(got) != 1 || got[0].Kind != Odometer || math.Abs(got[0].Value-1234.5*1609.344) > 1e-6 {
		t.Errorf("page 3 = %+v, want odometer %v m", got, 1234.5*1609.344)
	}
	// Page 2: DisplaySpeedMph, Intel 8|16, 0.01 mph: 0x1770 = 6000 -> 60 mph.
	got = d.Decode(frame(0x5C0, 2, 0x70, 0x17, 0, 0, 0, 0, 0), nil)
	if len(got) != 1 || got[0].Kind != Speed || math.Abs(got[0].Value-60*1.609344) > 1e-9 {
		t.Errorf("page 2 = %+v, want speed %v km/h", got, 60*1.609344)
	}
	// Page 1 (ambient temperature) and page 0 carry no profile signal.
	for _, page := range []byte{0, 1, 4} {
		if got := d.Decode(frame(0x5C0, page, 0x39, 0x30, 0x00, 0, 0, 0, 0), nil); len(got) != 0 {
			t.Errorf("page %d = %+v, want nothing", page, got)
		}
	}
	if s := d.Stats(); s.ShortFrames != 0 {
		t.Errorf("ShortFrames = %d", s.ShortFrames)
	}
}

func TestDecodeFloat(t *testing.T) {
	p := mustLoad(t, "testdata/ev_float.toml")
	d := p.NewDecoder()
	// FusedOdometer: Intel float64 in km at 0x3A1.
	f := frame(0x3A1, 0, 0, 0, 0, 0, 0, 0, 0)
	bits := math.Float64bits(98765.4321)
	for i := 0; i < 8; i++ {
		f.Data[i] = byte(bits >> (8 * i))
	}
	got := d.Decode(f, nil)
	if len(got) != 1 || math.Abs(got[0].Value-98765432.1) > 1e-6 {
		t.Errorf("float64 odometer = %+v, want 98765432.1 m", got)
	}
	// GnssSpeedBE: Motorola float32 (39|32 = bytes 4..7, big-endian) in m/s.
	f = frame(0x3A0, 0, 0, 0, 0, 0, 0, 0, 0)
	b32 := math.Float32bits(25)
	f.Data[4], f.Data[5], f.Data[6], f.Data[7] = byte(b32>>24), byte(b32>>16), byte(b32>>8), byte(b32)
	got = d.Decode(f, nil)
	if len(got) != 1 || got[0].Kind != Speed || got[0].Value != 90 {
		t.Errorf("float32 speed = %+v, want 90 km/h (25 m/s)", got)
	}
	// A NaN yields nothing and is counted.
	nan := math.Float64bits(math.NaN())
	for i := 0; i < 8; i++ {
		f.Data[i] = byte(nan >> (8 * i))
	}
	f.ID = 0x3A1
	if got := d.Decode(f, nil); len(got) != 0 || d.Stats().Invalid != 1 {
		t.Errorf("NaN odometer = %+v, stats %+v", got, d.Stats())
	}
	// So do +Inf and -Inf; a large finite value is a reading.
	for i, v := range []float64{math.Inf(1), math.Inf(-1), 1e300} {
		bits := math.Float64bits(v)
		for j := 0; j < 8; j++ {
			f.Data[j] = byte(bits >> (8 * j))
		}
		got := d.Decode(f, nil)
		if want := uint64(2 + i); i < 2 && (len(got) != 0 || d.Stats().Invalid != want) {
			t.Errorf("%g odometer = %+v, stats %+v", v, got, d.Stats())
		}
		if i == 2 && (len(got) != 1 || d.Stats().Invalid != 3) {
			t.Errorf("%g odometer = %+v, stats %+v", v, got, d.Stats())
		}
	}
}

func TestDecode29Bit(t *testing.T) {
	p := mustLoad(t, "testdata/ev_alt.toml")
	// VDHR 0x18FEC1EE, Intel 0|32, 5 m: 0x000F4240 = 1000000 -> 5000 km.
	f := frame(0x18FEC1EE, 0x40, 0x42, 0x0F, 0x00, 0, 0, 0, 0)
	f.Flags = can.Extended
	got := p.NewDecoder().Decode(f, nil)
	if len(got) != 1 || got[0].Value != 5e6 {
		t.Errorf("Decode = %+v, want 5e6 m", got)
	}
	f.Flags = 0
	f.ID = 0x18FEC1EE & can.MaxID
	if got := p.NewDecoder().Decode(f, nil); len(got) != 0 {
		t.Errorf("11-bit frame decoded as the 29-bit message: %+v", got)
	}
}

// The fast (8-byte word) and the bit-by-bit extraction agree for every
// position and length, both byte orders, in classic and FD payloads.
func TestFieldPaths(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, size := range []uint64{8, 64} {
		for _, be := range []bool{false, true} {
			for length := uint64(1); length <= 64; length++ {
				for start := uint64(0); start < 8*size; start++ {
					f, err := newField(start, length, be, false, encInt, size)
					if err != nil {
						continue
					}
					slow := f
					slow.fast = false
					var d [can.MaxFDDataLen]byte
					rng.Read(d[:])
					if a, b := f.raw(&d), slow.raw(&d); a != b {
						t.Fatalf("size %d be %v start %d len %d: fast %x, slow %x", size, be, start, length, a, b)
					}
					// put then raw returns the value and leaves other bits alone.
					v := rng.Uint64() & f.mask
					before := d
					f.put(&d, v)
					if got := slow.raw(&d); got != v {
						t.Fatalf("size %d be %v start %d len %d: put %x, read %x", size, be, start, length, v, got)
					}
					f.put(&d, slow.raw(&before))
					if d != before {
						t.Fatalf("size %d be %v start %d len %d: put changed other bits", size, be, start, length)
					}
				}
			}
		}
	}
}

func TestDecodeAllocs(t *testing.T) {
	for _, path := range []string{"testdata/ev.toml", "testdata/ev_mux.toml", "testdata/ev_float.toml", "testdata/public/hyundai_i30_2014.toml"} {
		p := mustLoad(t, path)
		var frames []can.Frame
		for k := Kind(0); k < numKinds; k++ {
			if !p.Has(k) {
				continue
			}
			f, err := p.Encode(k, 1)
			if err != nil {
				t.Fatal(err)
			}
			frames = append(frames, f)
		}
		d := p.NewDecoder()
		buf := make([]Reading, 0, 8)
		allocs := testing.AllocsPerRun(1000, func() {
			for i := range frames {
				buf = d.Decode(&frames[i], buf[:0])
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per run, want 0", path, allocs)
		}
	}
}
