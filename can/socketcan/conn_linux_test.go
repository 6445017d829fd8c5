//go:build linux

package socketcan

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// appendCmsg lays out one control message as the kernel does.
func appendCmsg(b []byte, level, typ int32, data []byte) []byte {
	ne := binary.NativeEndian
	l := unix.SizeofCmsghdr + len(data)
	if unix.SizeofPtr == 8 {
		b = ne.AppendUint64(b, uint64(l))
	} else {
		b = ne.AppendUint32(b, uint32(l))
	}
	b = ne.AppendUint32(b, uint32(level))
	b = ne.AppendUint32(b, uint32(typ))
	b = append(b, data...)
	for len(b)%unix.SizeofPtr != 0 {
		b = append(b, 0)
	}
	return b
}

func ts64(sec, nsec int64) []byte {
	b := binary.NativeEndian.AppendUint64(nil, uint64(sec))
	return binary.NativeEndian.AppendUint64(b, uint64(nsec))
}

func ts32(sec, nsec int32) []byte {
	b := binary.NativeEndian.AppendUint32(nil, uint32(sec))
	return binary.NativeEndian.AppendUint32(b, uint32(nsec))
}

func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

func TestParseCmsgs(t *testing.T) {
	when := time.Unix(1700000000, 123456789)
	for _, tc := range []struct {
		name     string
		oob      []byte
		ts       time.Time
		ovfl     uint32
		haveOvfl bool
	}{
		{"none", nil, time.Time{}, 0, false},
		{"new timestamp", appendCmsg(nil, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS_NEW, ts64(1700000000, 123456789)), when, 0, false},
		{"old 32-bit timestamp", appendCmsg(nil, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS_OLD, ts32(1700000000, 123456789)), when, 0, false},
		{"timestamp and drops", appendCmsg(appendCmsg(nil, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS_NEW, ts64(1700000000, 123456789)),
			unix.SOL_SOCKET, unix.SO_RXQ_OVFL, u32(42)), when, 42, true},
		{"drops first", appendCmsg(appendCmsg(nil, unix.SOL_SOCKET, unix.SO_RXQ_OVFL, u32(0xFFFFFFFF)),
			unix.SOL_SOCKET, unix.SO_TIMESTAMPNS_NEW, ts64(1700000000, 123456789)), when, 0xFFFFFFFF, true},
		{"other level ignored", appendCmsg(nil, unix.SOL_CAN_RAW, unix.SO_RXQ_OVFL, u32(7)), time.Time{}, 0, false},
		{"truncated header", appendCmsg(nil, unix.SOL_SOCKET, unix.SO_RXQ_OVFL, u32(7))[:unix.SizeofCmsghdr-1], time.Time{}, 0, false},
		{"length beyond buffer", func() []byte {
			b := appendCmsg(nil, unix.SOL_SOCKET, unix.SO_RXQ_OVFL, u32(7))
			b[0] = 200
			return b
		}(), time.Time{}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts, ovfl, have := parseCmsgs(tc.oob)
			if !ts.Equal(tc.ts) || ovfl != tc.ovfl || have != tc.haveOvfl {
				t.Errorf("got %v, %d, %v; want %v, %d, %v", ts, ovfl, have, tc.ts, tc.ovfl, tc.haveOvfl)
			}
		})
	}
}

func FuzzParseCmsgs(f *testing.F) {
	f.Add(appendCmsg(appendCmsg(nil, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS_NEW, ts64(1, 2)), unix.SOL_SOCKET, unix.SO_RXQ_OVFL, u32(3)))
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, oob []byte) {
		parseCmsgs(oob) // must not panic or loop
	})
}

// TestDropCounterWrap checks that the cumulative uint32 kernel counter is
// turned into a uint64 total across a wrap.
func TestDropCounterWrap(t *testing.T) {
	c := &Conn{wake: -1}
	for _, v := range []uint32{10, 0xFFFFFFF0, 5} {
		c.n.dropped.Add(uint64(v - c.lastOvfl))
		c.lastOvfl = v
	}
	if got, want := c.Stats().Dropped, uint64(0x100000005); got != want {
		t.Errorf("Dropped = 0x%X, want 0x%X", got, want)
	}
}

func TestOpenErrorsNameTheInterface(t *testing.T) {
	_, err := Open("nosuchcan7")
	if !errors.Is(err, ErrNoInterface) {
		t.Fatalf("Open(nosuchcan7) = %v, want ErrNoInterface", err)
	}
	var oe *OpError
	if !errors.As(err, &oe) || oe.Iface != "nosuchcan7" || oe.Op != "open" {
		t.Fatalf("error %v does not name the interface and op", err)
	}
	// The loopback exists but is no CAN device: the host has no AF_CAN at
	// all, a CAN kernel refuses the bind. Either way: an error naming lo.
	c, err := Open("lo")
	if err == nil {
		c.Close()
		t.Fatal("Open(lo) succeeded")
	}
	if !errors.As(err, &oe) || oe.Iface != "lo" {
		t.Fatalf("error %v does not name lo", err)
	}
}

func BenchmarkParseCmsgs(b *testing.B) {
	oob := appendCmsg(appendCmsg(nil, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS_NEW, ts64(1700000000, 1)), unix.SOL_SOCKET, unix.SO_RXQ_OVFL, u32(3))
	b.ReportAllocs()
	for b.Loop() {
		parseCmsgs(oob)
	}
}
