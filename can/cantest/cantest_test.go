package cantest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/csop/tbox/can"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// frameReceiver is the shape consumers of can.Reader and socketcan.Conn
// declare; the fake must satisfy it.
type frameReceiver interface {
	Receive() bool
	Frame() *can.Frame
	Err() error
}

var (
	_ frameReceiver = (*Receiver)(nil)
	_ frameReceiver = (*can.Reader)(nil)
)

func frame(id uint32, b ...byte) can.Frame {
	f := can.Frame{Bus: "vcan0", ID: id, Len: uint8(len(b))}
	copy(f.Data[:], b)
	return f
}

// receiveAsync runs Receive in a goroutine and returns its result channel.
func receiveAsync(r *Receiver) <-chan bool {
	ch := make(chan bool, 1)
	go func() { ch <- r.Receive() }()
	return ch
}

func waitResult(t *testing.T, ch <-chan bool) bool {
	t.Helper()
	select {
	case ok := <-ch:
		return ok
	case <-time.After(5 * time.Second):
		t.Fatal("Receive did not return")
		return false
	}
}

func TestOrderAndCopy(t *testing.T) {
	bus := NewBus()
	defer bus.Close()
	r := bus.NewReceiver()
	f := frame(0x100, 1)
	bus.Send(f)
	f.Data[0] = 99 // the bus holds a copy
	bus.Send(frame(0x101, 2))
	bus.Send(frame(0x102, 3))
	var got []byte
	for i := 0; i < 3 && r.Receive(); i++ {
		got = append(got, r.Frame().Data[0])
	}
	if string(got) != "\x01\x02\x03" {
		t.Errorf("received payloads %v, want [1 2 3] in order", got)
	}
}

func TestReceiveBlocksUntilSend(t *testing.T) {
	bus := NewBus()
	defer bus.Close()
	r := bus.NewReceiver()
	ch := receiveAsync(r)
	select {
	case <-ch:
		t.Fatal("Receive returned with nothing sent")
	case <-time.After(20 * time.Millisecond):
	}
	bus.Send(frame(0x123, 7))
	if !waitResult(t, ch) || r.Frame().ID != 0x123 {
		t.Errorf("Receive after Send: frame %+v, Err %v", *r.Frame(), r.Err())
	}
}

func TestBroadcastAndLateReceiver(t *testing.T) {
	bus := NewBus()
	defer bus.Close()
	a, b := bus.NewReceiver(), bus.NewReceiver()
	bus.Send(frame(1))
	late := bus.NewReceiver()
	bus.Send(frame(2))
	for name, tc := range map[string]struct {
		r    *Receiver
		want []uint32
	}{"a": {a, []uint32{1, 2}}, "b": {b, []uint32{1, 2}}, "late": {late, []uint32{2}}} {
		var ids []uint32
		for len(ids) < len(tc.want) && tc.r.Receive() {
			ids = append(ids, tc.r.Frame().ID)
		}
		if !slices.Equal(ids, tc.want) {
			t.Errorf("receiver %s got ids %v, want %v", name, ids, tc.want)
		}
	}
}

func TestFilter(t *testing.T) {
	bus := NewBus()
	defer bus.Close()
	filter := can.NewFilter(can.Key{ID: 0x123}, can.Key{ID: 0x18FEF100, Extended: true})
	r := bus.NewReceiver(WithFilter(filter))
	none := bus.NewReceiver(WithFilter(nil))
	all := bus.NewReceiver()
	sent := []can.Frame{
		frame(0x123, 1),
		frame(0x124, 2),
		{ID: 0x123, Flags: can.Extended, Len: 1, Data: [64]byte{3}},
		{ID: 0x123, Flags: can.Remote},
		{ID: 0x123, Flags: can.ErrorFrame, Len: 1, Data: [64]byte{5}},
		{ID: 0x18FEF100, Flags: can.Extended, Len: 1, Data: [64]byte{6}},
	}
	for _, f := range sent {
		bus.Send(f)
	}
	bus.Close()
	var got []can.Frame
	for r.Receive() {
		got = append(got, *r.Frame())
	}
	if len(got) != 2 || got[0] != sent[0] || got[1] != sent[5] {
		t.Errorf("filtered receiver got %v, want the frames of 0x123 and 0x18FEF100", got)
	}
	if none.Receive() {
		t.Errorf("receiver with a nil filter got %+v, want nothing", *none.Frame())
	}
	n := 0
	for all.Receive() {
		n++
	}
	if n != len(sent) {
		t.Errorf("receiver without filter got %d frames, want all %d", n, len(sent))
	}
}

func TestBusCloseDrainsThenEnds(t *testing.T) {
	bus := NewBus()
	r := bus.NewReceiver()
	blocked := bus.NewReceiver()
	ch := receiveAsync(blocked)
	bus.Send(frame(1))
	if !waitResult(t, ch) {
		t.Fatal("blocked receiver did not get the frame")
	}
	ch = receiveAsync(blocked)
	bus.Send(frame(2))
	bus.Close()
	bus.Send(frame(3)) // after Close: dropped
	if !r.Receive() || r.Frame().ID != 1 || !r.Receive() || r.Frame().ID != 2 {
		t.Fatal("frames queued before Close were not delivered")
	}
	if r.Receive() || r.Err() != nil {
		t.Errorf("after the queue: Receive true or Err %v, want false and nil", r.Err())
	}
	if !waitResult(t, ch) || blocked.Frame().ID != 2 {
		t.Fatal("blocked receiver missed frame 2")
	}
	if blocked.Receive() {
		t.Error("blocked receiver got a frame after Close")
	}
	if late := bus.NewReceiver(); late.Receive() {
		t.Error("receiver made after Close got a frame")
	}
}

func TestReceiverCloseUnblocks(t *testing.T) {
	bus := NewBus()
	defer bus.Close()
	r := bus.NewReceiver()
	ch := receiveAsync(r)
	time.Sleep(10 * time.Millisecond)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if waitResult(t, ch) || r.Err() != nil {
		t.Errorf("after Close: Receive true or Err %v, want false and nil", r.Err())
	}
	bus.Send(frame(1))
	if r.Receive() {
		t.Error("closed receiver got a frame")
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestContextCancelUnblocks(t *testing.T) {
	bus := NewBus()
	defer bus.Close()
	ctx, cancel := context.WithCancel(context.Background())
	r := bus.NewReceiver(WithContext(ctx))
	ch := receiveAsync(r)
	time.Sleep(10 * time.Millisecond)
	cancel()
	if waitResult(t, ch) || !errors.Is(r.Err(), context.Canceled) {
		t.Errorf("after cancel: Receive true or Err %v, want false and context.Canceled", r.Err())
	}
	bus.Send(frame(1))
	if r.Receive() {
		t.Error("receiver got a frame after its context ended")
	}
}

func TestConcurrentSenders(t *testing.T) {
	bus := NewBus()
	r := bus.NewReceiver()
	const senders, each = 4, 500
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				bus.Send(frame(uint32(s), byte(i), byte(i>>8)))
			}
		}()
	}
	go func() { wg.Wait(); bus.Close() }()
	next := make([]int, senders)
	for r.Receive() {
		f := r.Frame()
		i := int(f.Data[0]) | int(f.Data[1])<<8
		if i != next[f.ID] {
			t.Fatalf("sender %d: got frame %d, want %d (per-sender order lost)", f.ID, i, next[f.ID])
		}
		next[f.ID]++
	}
	for s, n := range next {
		if n != each {
			t.Errorf("sender %d: received %d frames, want %d", s, n, each)
		}
	}
}
