package socketcan

import (
	"slices"
	"testing"
	"time"

	"github.com/csop/tbox/can"
)

func TestErrorEvents(t *testing.T) {
	errFrame := func(class uint32, data ...byte) can.Frame {
		f := frameOf(class, can.ErrorFrame, make([]byte, 8)...)
		copy(f.Data[:], data)
		return f
	}
	for _, tc := range []struct {
		name  string
		frame can.Frame
		want  []Kind
	}{
		{"data frame", frameOf(0x123, 0, 1), nil},
		{"no class", errFrame(0), nil},
		{"tx timeout", errFrame(ErrClassTxTimeout), []Kind{TxTimeout}},
		{"lost arbitration", errFrame(ErrClassLostArb, 5), []Kind{LostArbitration}},
		{"controller unspecified", errFrame(ErrClassController), []Kind{ControllerProblem}},
		{"rx overflow", errFrame(ErrClassController, 0, CtrlRxOverflow), []Kind{Overflow}},
		{"tx warning", errFrame(ErrClassController, 0, CtrlTxWarning), []Kind{ErrorWarning}},
		{"rx passive", errFrame(ErrClassController, 0, CtrlRxPassive), []Kind{ErrorPassive}},
		{"warning and passive", errFrame(ErrClassController, 0, CtrlRxWarning|CtrlTxPassive), []Kind{ErrorWarning, ErrorPassive}},
		{"back to active", errFrame(ErrClassController, 0, CtrlActive), []Kind{ErrorActive}},
		{"protocol", errFrame(ErrClassProtocol, 0, 0, 0x04, 0x08), []Kind{ProtocolViolation}},
		{"transceiver", errFrame(ErrClassTrx, 0, 0, 0, 0, 0x04), []Kind{TransceiverError}},
		{"no ack", errFrame(ErrClassAck), []Kind{NoAck}},
		{"bus off", errFrame(ErrClassBusOff), []Kind{BusOff}},
		{"bus error", errFrame(ErrClassBusError), []Kind{BusError}},
		{"restarted", errFrame(ErrClassRestarted), []Kind{Restarted}},
		{"passive then bus off", errFrame(ErrClassController|ErrClassBusOff, 0, CtrlTxPassive), []Kind{ErrorPassive, BusOff}},
		{"counters only", errFrame(ErrClassCounters, 0, 0, 0, 0, 0, 0, 100, 130), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.frame.Bus = "vcan0"
			tc.frame.Time = time.Unix(1700000000, 5)
			evs := ErrorEvents(&tc.frame)
			var got []Kind
			for _, e := range evs {
				got = append(got, e.Kind)
				if e.Bus != "vcan0" || !e.Time.Equal(tc.frame.Time) || e.Class != tc.frame.ID {
					t.Errorf("event %v: bus %q time %v class 0x%X, want the frame's", e.Kind, e.Bus, e.Time, e.Class)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("kinds = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestEventDetails(t *testing.T) {
	f := frameOf(ErrClassLostArb|ErrClassCounters, can.ErrorFrame, 12, 0, 0, 0, 0, 0, 97, 128)
	evs := ErrorEvents(&f)
	if len(evs) != 1 {
		t.Fatalf("got %d events, want 1", len(evs))
	}
	e := evs[0]
	if e.ArbitrationBit() != 12 {
		t.Errorf("ArbitrationBit = %d, want 12", e.ArbitrationBit())
	}
	if tx, rx, ok := e.Counters(); !ok || tx != 97 || rx != 128 {
		t.Errorf("Counters = %d, %d, %v; want 97, 128, true", tx, rx, ok)
	}
	f.ID = ErrClassLostArb
	if _, _, ok := ErrorEvents(&f)[0].Counters(); ok {
		t.Error("Counters ok without CAN_ERR_CNT")
	}
}

func TestKindString(t *testing.T) {
	for k := Down; k < numKinds; k++ {
		if s := k.String(); s == "" || s[0] == 'K' {
			t.Errorf("Kind %d has no name: %q", k, s)
		}
	}
	if s := Kind(200).String(); s != "Kind(200)" {
		t.Errorf("unknown kind = %q", s)
	}
}

func TestBackoff(t *testing.T) {
	b := backoff{min: 50 * time.Millisecond, max: 2 * time.Second}
	var got []time.Duration
	for range 8 {
		got = append(got, b.next())
	}
	want := []time.Duration{50, 100, 200, 400, 800, 1600, 2000, 2000}
	for i := range want {
		want[i] *= time.Millisecond
	}
	if !slices.Equal(got, want) {
		t.Errorf("delays = %v, want %v", got, want)
	}
	b.reset()
	if d := b.next(); d != 50*time.Millisecond {
		t.Errorf("after reset: %v, want 50ms", d)
	}
}

func FuzzErrorEvents(f *testing.F) {
	f.Add(uint32(ErrClassController|ErrClassBusOff), []byte{0, CtrlTxPassive, 0, 0, 0, 0, 0, 0})
	f.Add(uint32(0x3FF), []byte{1, 2, 3, 4, 5, 6, 7, 8})
	f.Fuzz(func(t *testing.T, class uint32, data []byte) {
		fr := can.Frame{ID: class & ErrClassAll, Flags: can.ErrorFrame, Len: 8}
		copy(fr.Data[:8], data)
		evs := ErrorEvents(&fr)
		for _, e := range evs {
			if e.Kind == Down || e.Kind == Up || e.Kind >= numKinds {
				t.Fatalf("error frame produced kind %v", e.Kind)
			}
		}
		// Every known class bit yields at least one event.
		if fr.ID&0x1FF != 0 && len(evs) == 0 {
			t.Fatalf("class 0x%X gave no event", fr.ID)
		}
	})
}
