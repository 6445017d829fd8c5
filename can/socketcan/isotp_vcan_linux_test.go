package socketcan

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/csop/tbox/can"
	"github.com/csop/tbox/can/isotp"
)

// The kernel's ISO-TP socket on vcan0: the request goes out as a padded
// single frame to the TX ID, a multi-frame answer from the RX ID comes back
// whole after the kernel's own flow control, and Receive ends at its
// context's deadline.
func TestVCANISOTP(t *testing.T) {
	requireVCAN0(t)
	tx, rx := can.Key{ID: 0x7E0}, can.Key{ID: 0x7E8}
	c, err := DialISOTP(vcan, tx, rx)
	if errors.Is(err, ErrNoISOTP) {
		t.Skipf("kernel without can-isotp: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ecu := openT(t, WithFilter(can.NewFilter(tx)))
	if err := c.Send([]byte{0x22, 0xF1, 0xA0}); err != nil {
		t.Fatal(err)
	}
	req := readT(t, ecu, 2*time.Second)
	if want := "7E0#0322F1A0CCCCCCCC"; req.String() != want {
		t.Fatalf("request %s, want %s", &req, want)
	}
	answer := []byte{0x62, 0xF1, 0xA0, 0, 0, 0, 0, 0, 0xBC, 0x61, 0x4E}
	frames, _ := isotp.Segment(rx, answer)
	if err := ecu.WriteFrame(&frames[0]); err != nil {
		t.Fatal(err)
	}
	fc := readT(t, ecu, 2*time.Second)
	if !isotp.IsFlowControl(fc.Data[:fc.Len]) || fc.ID != tx.ID {
		t.Fatalf("after the first frame the kernel sent %s, want flow control on 7E0", &fc)
	}
	if err := ecu.WriteFrame(&frames[1]); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	got, err := c.Receive(ctx)
	if err != nil || string(got) != string(answer) {
		t.Fatalf("Receive = % X, %v; want % X", got, err, answer)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := c.Receive(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Receive with nothing sent: %v, want a deadline", err)
	}
}
