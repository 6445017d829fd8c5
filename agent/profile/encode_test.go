package profile

import (
	"errors"
	"math"
	"math/rand"
	"testing"

	"github.com/csop/tbox/can"
)

// Decode(Encode(x)) == x within one resolution step, for every sample
// profile: Motorola and Intel, signed and unsigned, multiplexed, float32,
// float64, 29-bit.
func TestEncodeRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for _, c := range []struct {
		path   string
		maxOdo float64 // meters
		maxSpd float64 // km/h
	}{
		{"testdata/ev.toml", 4e10, 655},
		{"testdata/ev_alt.toml", 2e10, 1000},
		{"testdata/ev_mux.toml", 2.6e9, 1054},
		{"testdata/ev_float.toml", 1e12, 1000},
		{"testdata/public/hyundai_i30_2014.toml", 1.6e9, 254},
		{"testdata/public/honda_civic_touring_2016.toml", 1.6e10, 655},
	} {
		p := mustLoad(t, c.path)
		d := p.NewDecoder()
		for i := 0; i < 2000; i++ {
			k := Kind(rng.Intn(int(numKinds)))
			if !p.Has(k) {
				continue
			}
			var x float64
			switch k {
			case Odometer:
				x = rng.Float64() * c.maxOdo
			case Speed:
				x = rng.Float64() * c.maxSpd
			case DriveMode:
				x = float64(rng.Intn(1 << p.sigs[k].f.length))
			}
			f, err := p.Encode(k, x)
			if err != nil {
				t.Fatalf("%s: Encode(%v, %v): %v", c.path, k, x, err)
			}
			if err := f.Validate(); err != nil {
				t.Fatalf("%s: Encode(%v, %v) made an invalid frame: %v", c.path, k, x, err)
			}
			got := d.Decode(&f, nil)
			if len(got) != 1 || got[0].Kind != k {
				t.Fatalf("%s: Decode(Encode(%v, %v)) = %+v", c.path, k, x, got)
			}
			tol := p.Resolution(k)/2 + 1e-9*math.Abs(x)
			if p.sigs[k].f.enc == encFloat32 {
				tol = 1e-6 * math.Abs(x)
			}
			if diff := math.Abs(got[0].Value - x); diff > tol {
				t.Errorf("%s: %v %v decoded as %v (diff %v > %v)", c.path, k, x, got[0].Value, diff, tol)
			}
		}
	}
}

func TestEncodeFrame(t *testing.T) {
	p := mustLoad(t, "testdata/ev_mux.toml")
	f, err := p.Encode(Odometer, 1000*1609.344)
	if err != nil {
		t.Fatal(err)
	}
	// Page 3 in byte 0, 10000 (0x002710) from bit 8, Intel; the rest zero.
	want := [8]byte{3, 0x10, 0x27, 0, 0, 0, 0, 0}
	if f.ID != 0x5C0 || f.Len != 8 || f.Flags != 0 || [8]byte(f.Data[:8]) != want {
		t.Errorf("Encode = id %X len %d flags %v data % X, want 5C0 len 8 data % X", f.ID, f.Len, f.Flags, f.Data[:8], want)
	}
	alt := mustLoad(t, "testdata/ev_alt.toml")
	f, err = alt.Encode(Speed, 90)
	if err != nil {
		t.Fatal(err)
	}
	if f.Bus != "can1" || f.ID != 0x3A0 {
		t.Errorf("speed frame on %q id %X, want can1 3A0", f.Bus, f.ID)
	}
	f, err = alt.Encode(Odometer, 5)
	if err != nil {
		t.Fatal(err)
	}
	if !f.IsExtended() || f.ID != 0x18FEC1EE || f.Bus != "" {
		t.Errorf("odometer frame %+v, want extended 18FEC1EE on the default bus", f)
	}
}

func TestEncodeErrors(t *testing.T) {
	p := mustLoad(t, "testdata/ev.toml")
	for _, c := range []struct {
		k    Kind
		x    float64
		want error
	}{
		{Odometer, -10, ErrValue},
		{Odometer, 1e12, ErrValue},
		{Odometer, math.NaN(), ErrValue},
		{Speed, math.Inf(1), ErrValue},
		{DriveMode, 8, ErrValue},
		{Kind(9), 1, ErrMissing},
	} {
		if _, err := p.Encode(c.k, c.x); !errors.Is(err, c.want) {
			t.Errorf("Encode(%v, %v) = %v, want %v", c.k, c.x, err, c.want)
		}
	}
	p = mustLoad(t, "testdata/bad/../ev.toml")
	p.sigs[Speed] = nil
	if _, err := p.Encode(Speed, 1); !errors.Is(err, ErrMissing) {
		t.Errorf("Encode without speed = %v, want ErrMissing", err)
	}
}

// Each public DBC decodes a hand-built frame to the odometer the dashboard
// would show, in meters.
func TestPublicDBCOdometer(t *testing.T) {
	for _, c := range []struct {
		profile string
		f       *can.Frame
		want    float64
	}{
		// Hyundai CLU1 (0x4F0): CF_Clu_Odometer, Intel 40|24, 0.1 "km":
		// bytes 5..7 = 40 E2 01 is 0x01E240 = 123456 -> 12345.6 km.
		{"testdata/public/hyundai_i30_2014.toml", frame(0x4F0, 0, 0, 0, 0, 0, 0x40, 0xE2, 0x01), 12345600},
		// Honda ODOMETER (0x516): Motorola 7|24, 1 "km":
		// bytes 0..2 = 01 E2 40 is 123456 km.
		{"testdata/public/honda_civic_touring_2016.toml", frame(0x516, 0x01, 0xE2, 0x40, 0, 0, 0, 0, 0), 123456000},
	} {
		p := mustLoad(t, c.profile)
		got := p.NewDecoder().Decode(c.f, nil)
		if len(got) != 1 || got[0].Kind != Odometer || got[0].Value != c.want {
			t.Errorf("%s: Decode = %+v, want odometer %v m", c.profile, got, c.want)
		}
	}
}

func TestPublicDriveModes(t *testing.T) {
	p := mustLoad(t, "testdata/public/honda_civic_touring_2016.toml")
	// GEAR_SHIFTER: Motorola 5|6 in byte 0 (bits 5..0); 8 = "D".
	got := p.NewDecoder().Decode(frame(0x191, 0x08, 0, 0, 0, 0, 0, 0, 0), nil)
	if len(got) != 1 || got[0].Mode != "D" {
		t.Errorf("Honda gear = %+v, want D", got)
	}
	p = mustLoad(t, "testdata/public/hyundai_i30_2014.toml")
	// CF_Tcu_DrivingModeDisp: Intel 22|4, no value table.
	got = p.NewDecoder().Decode(frame(0x59B, 0, 0, 2<<6, 0, 0, 0, 0, 0), nil)
	if len(got) != 1 || got[0].Mode != "MODE_2" {
		t.Errorf("i30 mode = %+v, want MODE_2", got)
	}
}
