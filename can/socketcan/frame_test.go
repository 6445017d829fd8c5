package socketcan

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/csop/tbox/can"
)

func frameOf(id uint32, fl can.Flags, data ...byte) can.Frame {
	f := can.Frame{ID: id, Flags: fl, Len: uint8(len(data))}
	copy(f.Data[:], data)
	return f
}

func seq(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 1)
	}
	return b
}

func TestFrameRoundTrip(t *testing.T) {
	remote := func(id uint32, fl can.Flags, dlc uint8) can.Frame {
		return can.Frame{ID: id, Flags: fl | can.Remote, Len: dlc}
	}
	for _, tc := range []struct {
		name  string
		frame can.Frame
		size  int
		flags byte // canfd_frame.flags on the wire
	}{
		{"standard empty", frameOf(0x000, 0), classicMTU, 0},
		{"standard max id 8 bytes", frameOf(can.MaxID, 0, seq(8)...), classicMTU, 0},
		{"extended", frameOf(0x18FEF100, can.Extended, 1, 2, 3), classicMTU, 0},
		{"extended max id", frameOf(can.MaxExtendedID, can.Extended, seq(8)...), classicMTU, 0},
		{"extended low id", frameOf(0x5, can.Extended, 9), classicMTU, 0},
		{"remote standard dlc 4", remote(0x123, 0, 4), classicMTU, 0},
		{"remote extended dlc 8", remote(0x1ABCDEF, can.Extended, 8), classicMTU, 0},
		{"error frame", frameOf(ErrClassController|ErrClassBusOff, can.ErrorFrame, 0, CtrlTxPassive, 0, 0, 0, 0, 0, 0), classicMTU, 0},
		{"fd no flags", frameOf(0x123, can.FD, seq(12)...), fdMTU, fdFlagFDF},
		{"fd brs", frameOf(0x123, can.FD|can.BRS, seq(64)...), fdMTU, fdFlagFDF | fdFlagBRS},
		{"fd esi", frameOf(0x7FF, can.FD|can.ESI, seq(8)...), fdMTU, fdFlagFDF | fdFlagESI},
		{"fd brs esi extended", frameOf(0x1FFFFFFF, can.FD|can.BRS|can.ESI|can.Extended, seq(48)...), fdMTU, fdFlagFDF | fdFlagBRS | fdFlagESI},
		{"fd empty", frameOf(0x1, can.FD), fdMTU, fdFlagFDF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b [fdMTU]byte
			n, err := marshalFrame(b[:], &tc.frame)
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			if n != tc.size {
				t.Fatalf("marshal size = %d, want %d", n, tc.size)
			}
			// Wire layout at the documented offsets.
			if got, want := binary.NativeEndian.Uint32(b[offID:]), can.KernelID(&tc.frame); got != want {
				t.Errorf("can_id = 0x%08X, want 0x%08X", got, want)
			}
			if b[offLen] != tc.frame.Len {
				t.Errorf("len byte = %d, want %d", b[offLen], tc.frame.Len)
			}
			if b[offFlags] != tc.flags {
				t.Errorf("flags byte = 0x%02X, want 0x%02X", b[offFlags], tc.flags)
			}
			for i := offData; i < n; i++ {
				want := byte(0)
				if !tc.frame.IsRemote() && i-offData < int(tc.frame.Len) {
					want = tc.frame.Data[i-offData]
				}
				if b[i] != want {
					t.Fatalf("data byte at offset %d = 0x%02X, want 0x%02X", i, b[i], want)
				}
			}
			var got can.Frame
			if err := unmarshalFrame(b[:n], &got); err != nil {
				t.Fatalf("unmarshal: %v", err)
			}
			if got != tc.frame {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, tc.frame)
			}
		})
	}
}

// TestUnmarshalGolden decodes bytes as the kernel lays them out.
func TestUnmarshalGolden(t *testing.T) {
	le := func(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }
	classic := func(id uint32, n byte, data ...byte) []byte {
		b := append(le(id), n, 0, 0, 0)
		d := make([]byte, 8)
		copy(d, data)
		return append(b, d...)
	}
	fd := func(id uint32, n, flags byte, data ...byte) []byte {
		b := append(le(id), n, flags, 0, 0)
		d := make([]byte, 64)
		copy(d, data)
		return append(b, d...)
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want can.Frame
	}{
		{"standard", classic(0x1A3, 2, 0xDE, 0xAD), frameOf(0x1A3, 0, 0xDE, 0xAD)},
		{"extended", classic(0x80000000|0x18FEF100, 1, 7), frameOf(0x18FEF100, can.Extended, 7)},
		{"remote", classic(0x40000000|0x100, 3, 0xFF), can.Frame{ID: 0x100, Flags: can.Remote, Len: 3}},
		{"error", classic(0x20000000|0x40, 8), frameOf(0x40, can.ErrorFrame, 0, 0, 0, 0, 0, 0, 0, 0)},
		{"fd brs without fdf (kernel < 6.0)", fd(0x123, 2, fdFlagBRS, 1, 2), frameOf(0x123, can.FD|can.BRS, 1, 2)},
		{"fd rtr bit ignored", fd(0x40000000|0x123, 1, fdFlagFDF, 5), frameOf(0x123, can.FD, 5)},
		{"classic garbage beyond len", classic(0x10, 1, 1, 2, 3), frameOf(0x10, 0, 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got can.Frame
			if err := unmarshalFrame(tc.in, &got); err != nil {
				t.Fatalf("unmarshal: %v", err)
			}
			if got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestUnmarshalMalformed(t *testing.T) {
	long := make([]byte, classicMTU)
	long[offLen] = 9
	fdLong := make([]byte, fdMTU)
	fdLong[offLen] = 65
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"short", make([]byte, 15)},
		{"between sizes", make([]byte, 40)},
		{"can xl size", make([]byte, 2060)},
		{"classic len 9", long},
		{"fd len 65", fdLong},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f can.Frame
			if err := unmarshalFrame(tc.in, &f); !errors.Is(err, errMalformed) {
				t.Fatalf("err = %v, want errMalformed", err)
			}
		})
	}
}

func TestMarshalRejectsInvalid(t *testing.T) {
	for _, tc := range []struct {
		name  string
		frame can.Frame
	}{
		{"standard id too big", frameOf(0x800, 0)},
		{"extended id too big", frameOf(0x20000000, can.Extended)},
		{"classic 9 bytes", can.Frame{ID: 1, Len: 9}},
		{"fd invalid length", can.Frame{ID: 1, Flags: can.FD, Len: 9}},
		{"fd remote", can.Frame{ID: 1, Flags: can.FD | can.Remote}},
		{"brs on classic", can.Frame{ID: 1, Flags: can.BRS}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b [fdMTU]byte
			if _, err := marshalFrame(b[:], &tc.frame); !errors.Is(err, can.ErrInvalidFrame) {
				t.Fatalf("err = %v, want can.ErrInvalidFrame", err)
			}
		})
	}
}

func FuzzUnmarshalFrame(f *testing.F) {
	var b [fdMTU]byte
	for _, fr := range []can.Frame{
		frameOf(0x123, 0, 1, 2, 3),
		frameOf(0x18FEF100, can.Extended, seq(8)...),
		{ID: 0x100, Flags: can.Remote, Len: 2},
		frameOf(0x44, can.ErrorFrame, seq(8)...),
		frameOf(0x7FF, can.FD|can.BRS|can.ESI, seq(64)...),
	} {
		n, _ := marshalFrame(b[:], &fr)
		f.Add(append([]byte(nil), b[:n]...))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var fr can.Frame
		if err := unmarshalFrame(in, &fr); err != nil {
			return
		}
		if fr.Validate() != nil {
			return // e.g. an FD length of 9: the kernel would not deliver it
		}
		var out [fdMTU]byte
		n, err := marshalFrame(out[:], &fr)
		if err != nil {
			t.Fatalf("decoded frame %+v does not encode: %v", fr, err)
		}
		var back can.Frame
		if err := unmarshalFrame(out[:n], &back); err != nil || back != fr {
			t.Fatalf("re-decode: %+v, %v; want %+v", back, err, fr)
		}
	})
}

func BenchmarkUnmarshalFrame(b *testing.B) {
	var buf [fdMTU]byte
	in := frameOf(0x18FEF100, can.Extended, seq(8)...)
	n, _ := marshalFrame(buf[:], &in)
	var out can.Frame
	b.ReportAllocs()
	for b.Loop() {
		if err := unmarshalFrame(buf[:n], &out); err != nil {
			b.Fatal(err)
		}
	}
}

func TestCheckFDMTU(t *testing.T) {
	for _, tc := range []struct {
		mtu int
		ok  bool
	}{{CANMTU, false}, {0, false}, {CANFDMTU - 1, false}, {CANFDMTU, true}, {2060, true}} {
		err := checkFDMTU("can1", tc.mtu)
		if (err == nil) != tc.ok {
			t.Errorf("MTU %d: err %v, want ok %v", tc.mtu, err, tc.ok)
		}
		if err != nil {
			if !errors.Is(err, ErrNoFD) {
				t.Errorf("MTU %d: %v does not match ErrNoFD", tc.mtu, err)
			}
			// The operator reads which interface and what to do.
			for _, want := range []string{"can1", "MTU", "72", "fd on"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("MTU %d: %q does not say %q", tc.mtu, err, want)
				}
			}
		}
	}
}
