//go:build linux

package socketcan

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/csop/tbox/can"
)

// These tests need a kernel with vcan and a vcan0 that is up. The build
// machines have neither: the tests skip there and run for real inside the
// emulated ARM T-Box (go test ./hil/ -run TestSocketCANInGuest).

const vcan = "vcan0"

func requireVCAN0(t *testing.T) {
	t.Helper()
	ifi, err := net.InterfaceByName(vcan)
	if err != nil {
		t.Skipf("%s not present (the host kernel has no CAN; these tests run in the emulated T-Box: go test ./hil/)", vcan)
	}
	if ifi.Flags&net.FlagUp == 0 {
		t.Skipf("%s is down", vcan)
	}
}

func openT(t *testing.T, opts ...Option) *Conn {
	t.Helper()
	c, err := Open(vcan, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func readT(t *testing.T, c *Conn, d time.Duration) can.Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	f, err := c.ReadFrame(ctx)
	if err != nil {
		t.Fatalf("ReadFrame: %v", err)
	}
	return f
}

// expectSilence asserts that nothing arrives within d.
func expectSilence(t *testing.T, c *Conn, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if f, err := c.ReadFrame(ctx); err == nil {
		t.Fatalf("unexpected frame %s", &f)
	} else if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ReadFrame: %v, want a deadline", err)
	}
}

func sameFrame(a, b *can.Frame) bool {
	return a.ID == b.ID && a.Flags == b.Flags && a.Len == b.Len && a.Data == b.Data
}

func TestVCANRoundTrip(t *testing.T) {
	requireVCAN0(t)
	tx := openT(t, WithFD(true))
	rxFD := openT(t, WithFD(true))
	rxClassic := openT(t)
	frames := []can.Frame{
		frameOf(0x000, 0),
		frameOf(0x123, 0, 0xDE, 0xAD, 0xBE, 0xEF),
		frameOf(can.MaxID, 0, seq(8)...),
		frameOf(0x18FEF100, can.Extended, 1, 2, 3),
		frameOf(can.MaxExtendedID, can.Extended, seq(8)...),
		{ID: 0x321, Flags: can.Remote, Len: 4},
		{ID: 0x1ABCDEF, Flags: can.Remote | can.Extended, Len: 8},
		frameOf(0x124, can.FD, seq(12)...),
		frameOf(0x125, can.FD|can.BRS, seq(64)...),
		frameOf(0x126, can.FD|can.ESI, seq(20)...),
		frameOf(can.MaxExtendedID, can.FD|can.BRS|can.ESI|can.Extended, seq(64)...),
		frameOf(0x127, can.FD),
	}
	start := time.Now()
	for i := range frames {
		if err := tx.WriteFrame(&frames[i]); err != nil {
			t.Fatalf("WriteFrame %s: %v", &frames[i], err)
		}
	}
	for i := range frames {
		got := readT(t, rxFD, 5*time.Second)
		if !sameFrame(&got, &frames[i]) {
			t.Errorf("frame %d:\n got %s (%+v)\nwant %s", i, &got, got, &frames[i])
		}
		if got.Bus != vcan {
			t.Errorf("frame %d: Bus = %q, want %q", i, got.Bus, vcan)
		}
		if got.Time.Before(start.Add(-time.Second)) || got.Time.After(time.Now().Add(time.Second)) {
			t.Errorf("frame %d: kernel time %v outside the send window from %v", i, got.Time, start)
		}
	}
	// A socket without CAN FD sees exactly the classic frames.
	for i := range frames {
		if frames[i].IsFD() {
			continue
		}
		got := readT(t, rxClassic, 5*time.Second)
		if !sameFrame(&got, &frames[i]) {
			t.Errorf("classic socket, frame %d: got %s, want %s", i, &got, &frames[i])
		}
	}
	expectSilence(t, rxClassic, 200*time.Millisecond)
	expectSilence(t, rxFD, 50*time.Millisecond)
	if s := tx.Stats(); s.TxFrames != uint64(len(frames)) {
		t.Errorf("TxFrames = %d, want %d", s.TxFrames, len(frames))
	}
	if s := rxFD.Stats(); s.Frames != uint64(len(frames)) || s.Dropped != 0 {
		t.Errorf("receiver stats %+v: want %d frames, 0 dropped", s, len(frames))
	}
	// FD frames need WithFD on the writer too.
	classicTx := openT(t)
	if err := classicTx.WriteFrame(&frames[7]); !errors.Is(err, ErrFDDisabled) {
		t.Errorf("FD write on a classic socket: %v, want ErrFDDisabled", err)
	}
}

func TestVCANErrorFramesBecomeEvents(t *testing.T) {
	requireVCAN0(t)
	tx := openT(t)
	rx := openT(t)
	quiet := openT(t, WithErrorFrames(0))
	busOff := openT(t, WithErrorFrames(ErrClassBusOff))
	ef := frameOf(ErrClassController|ErrClassBusOff, can.ErrorFrame, 0, CtrlTxPassive, 0, 0, 0, 0, 0, 0)
	data := frameOf(0x100, 0, 1)
	for _, f := range []*can.Frame{&ef, &data} {
		if err := tx.WriteFrame(f); err != nil {
			t.Fatalf("WriteFrame %s: %v", f, err)
		}
	}
	// The error frame is not returned as data: the first frame read is the data frame.
	for _, c := range []*Conn{rx, quiet, busOff} {
		if got := readT(t, c, 5*time.Second); !sameFrame(&got, &data) {
			t.Fatalf("read %s, want the data frame %s", &got, &data)
		}
	}
	var kinds []Kind
	for len(kinds) < 2 {
		select {
		case e := <-rx.Events():
			kinds = append(kinds, e.Kind)
			if e.Bus != vcan || e.Class != ef.ID || e.Data[1] != CtrlTxPassive {
				t.Errorf("event %v: bus %q class 0x%X data %X", e, e.Bus, e.Class, e.Data)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("events so far %v, want error-passive and bus-off", kinds)
		}
	}
	if !slices.Equal(kinds, []Kind{ErrorPassive, BusOff}) {
		t.Errorf("events = %v, want [error-passive bus-off]", kinds)
	}
	s := rx.Stats()
	if s.ErrorFrames != 1 || s.Frames != 1 || s.Count(BusOff) != 1 || s.Count(ErrorPassive) != 1 {
		t.Errorf("stats %+v: want 1 error frame, 1 data frame, 1 bus-off, 1 error-passive", s)
	}
	if s := quiet.Stats(); s.ErrorFrames != 0 || len(quiet.Events()) != 0 {
		t.Errorf("WithErrorFrames(0): %d error frames, %d events; want none", s.ErrorFrames, len(quiet.Events()))
	}
	// A class mask of bus-off only still gets the frame (it has the bus-off bit).
	if s := busOff.Stats(); s.ErrorFrames != 1 {
		t.Errorf("bus-off mask: %d error frames, want 1", s.ErrorFrames)
	}
}

// TestVCANFilter sends 10,000 frames over 50 identifiers, 5 of them on the
// allowlist: exactly the allowlisted frames arrive, in order, none lost.
func TestVCANFilter(t *testing.T) {
	requireVCAN0(t)
	// Identifiers 0..24 standard 0x100+i, 25..49 extended 0x100+(i-25): the
	// extended ones share numbers with the standard ones and must not pass
	// for them.
	keyOf := func(i int) can.Key {
		if i < 25 {
			return can.Key{ID: 0x100 + uint32(i)}
		}
		return can.Key{ID: 0x100 + uint32(i-25), Extended: true}
	}
	allowed := []int{3, 10, 17, 30, 47}
	var keys []can.Key
	for _, i := range allowed {
		keys = append(keys, keyOf(i))
	}
	rx := openT(t, WithFilter(can.NewFilter(keys...)), WithReceiveBuffer(8<<20))
	none := openT(t, WithFilter(can.NewFilter()))
	tx := openT(t)

	const total = 10000
	var want []uint32
	for n := range uint32(total) {
		i := int(n % 50)
		k := keyOf(i)
		f := can.Frame{ID: k.ID, Len: 8}
		if k.Extended {
			f.Flags = can.Extended
		}
		binary.BigEndian.PutUint32(f.Data[:], n)
		binary.BigEndian.PutUint32(f.Data[4:], uint32(i))
		if err := tx.WriteFrame(&f); err != nil {
			t.Fatalf("WriteFrame %d: %v", n, err)
		}
		if slices.Contains(allowed, i) {
			want = append(want, n)
		}
		// A remote frame with an allowlisted id must not pass either.
		if n%1000 == 3 {
			r := can.Frame{ID: f.ID, Flags: f.Flags | can.Remote, Len: 1}
			if err := tx.WriteFrame(&r); err != nil {
				t.Fatalf("WriteFrame remote: %v", err)
			}
		}
	}
	var got []uint32
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		f, err := rx.ReadFrame(ctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatalf("ReadFrame: %v", err)
		}
		n := binary.BigEndian.Uint32(f.Data[:])
		i := int(binary.BigEndian.Uint32(f.Data[4:]))
		if k := can.KeyOf(&f); f.IsRemote() || k != keyOf(i) || !slices.Contains(allowed, i) {
			t.Fatalf("frame %s (seq %d, index %d) is not allowlisted", &f, n, i)
		}
		got = append(got, n)
	}
	if !slices.Equal(got, want) {
		t.Errorf("received %d allowlisted frames, want %d in order (first mismatch at %d)", len(got), len(want), firstMismatch(got, want))
	}
	if s := rx.Stats(); s.Dropped != 0 || s.Frames != uint64(len(want)) {
		t.Errorf("stats %+v: want %d frames and 0 dropped", s, len(want))
	}
	expectSilence(t, none, 50*time.Millisecond)
	if s := none.Stats(); s.Frames != 0 {
		t.Errorf("empty allowlist received %d frames", s.Frames)
	}
	t.Logf("filter: %d sent, %d allowlisted received, %d dropped", total, len(got), rx.Stats().Dropped)
}

func firstMismatch(a, b []uint32) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestVCANCancelUnblocksRead(t *testing.T) {
	requireVCAN0(t)
	c := openT(t, WithFilter(can.NewFilter())) // an idle bus: nothing passes
	for _, delay := range []time.Duration{0, 50 * time.Millisecond, 200 * time.Millisecond} {
		ctx, cancel := context.WithCancel(context.Background())
		cancelled := make(chan time.Time, 1)
		go func() {
			time.Sleep(delay)
			cancelled <- time.Now()
			cancel()
		}()
		_, err := c.ReadFrame(ctx)
		lat := time.Since(<-cancelled)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("ReadFrame after cancel: %v, want context.Canceled", err)
		}
		t.Logf("cancel after %v: read returned %v after the cancel", delay, lat)
		if lat > 150*time.Millisecond {
			t.Errorf("read returned %v after the cancel, want < 150ms", lat)
		}
	}
	// A stale cancellation must not disturb the next read.
	tx := openT(t)
	rx := openT(t)
	for range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := rx.ReadFrame(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("read with a cancelled context: %v", err)
		}
	}
	f := frameOf(0x42, 0, 1)
	if err := tx.WriteFrame(&f); err != nil {
		t.Fatal(err)
	}
	if got := readT(t, rx, 5*time.Second); !sameFrame(&got, &f) {
		t.Errorf("got %s, want %s", &got, &f)
	}
}

func TestVCANCloseUnblocksRead(t *testing.T) {
	requireVCAN0(t)
	c, err := Open(vcan, WithFilter(can.NewFilter()))
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.ReadFrame(context.Background())
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond)
	closed := time.Now()
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-errc:
		t.Logf("Close unblocked the read after %v", time.Since(closed))
		if !errors.Is(err, net.ErrClosed) || !errors.Is(err, os.ErrClosed) || !errors.Is(err, ErrClosed) {
			t.Errorf("read after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Close did not unblock the read within 1s")
	}
	if _, ok := <-c.Events(); ok {
		t.Error("Events channel not closed by Close")
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	f := frameOf(1, 0)
	if err := c.WriteFrame(&f); !errors.Is(err, net.ErrClosed) {
		t.Errorf("write after Close: %v, want net.ErrClosed", err)
	}

	// The scanner form ends cleanly.
	s, err := Open(vcan, WithFilter(can.NewFilter()))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan bool, 1)
	go func() {
		for s.Receive() {
		}
		done <- true
	}()
	time.Sleep(50 * time.Millisecond)
	s.Close()
	select {
	case <-done:
		if s.Err() != nil {
			t.Errorf("Err after Close = %v, want nil", s.Err())
		}
	case <-time.After(time.Second):
		t.Fatal("Close did not end Receive within 1s")
	}
}

func ipLink(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"link"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip link %v: %v: %s", args, err, out)
	}
}

func waitEvent(t *testing.T, c *Conn, k Kind, d time.Duration) Event {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case e, ok := <-c.Events():
			if !ok {
				t.Fatalf("events closed waiting for %v", k)
			}
			if e.Kind == k {
				return e
			}
		case <-deadline:
			t.Fatalf("no %v event within %v", k, d)
		}
	}
}

// TestVCANReopen deletes vcan0 under a running reader and re-creates it:
// the reader resumes by itself and frames sent after re-creation arrive.
func TestVCANReopen(t *testing.T) {
	requireVCAN0(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("no ip command")
	}
	t.Cleanup(func() {
		if _, err := net.InterfaceByName(vcan); err != nil {
			exec.Command("ip", "link", "add", "dev", vcan, "type", "vcan").Run()
		}
		exec.Command("ip", "link", "set", vcan, "up").Run()
	})
	rx := openT(t, WithReopen(20*time.Millisecond, 200*time.Millisecond))
	tx := openT(t)
	frames := make(chan can.Frame, 16)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for rx.Receive() {
			frames <- *rx.Frame()
		}
	}()
	t.Cleanup(func() { rx.Close(); wg.Wait() })

	before := frameOf(0x10, 0, 1)
	if err := tx.WriteFrame(&before); err != nil {
		t.Fatal(err)
	}
	select {
	case f := <-frames:
		if !sameFrame(&f, &before) {
			t.Fatalf("got %s, want %s", &f, &before)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no frame before the interface went away")
	}

	ipLink(t, "del", vcan)
	down := waitEvent(t, rx, Down, 5*time.Second)
	t.Logf("down event: %v", down)
	// While the interface is gone a write fails, naming it.
	if err := tx.WriteFrame(&before); err == nil {
		t.Error("write on a deleted interface succeeded")
	} else {
		t.Logf("write while deleted: %v", err)
	}
	time.Sleep(300 * time.Millisecond) // a few failed reopen attempts
	recreated := time.Now()
	ipLink(t, "add", "dev", vcan, "type", "vcan")
	ipLink(t, "set", vcan, "up")
	waitEvent(t, rx, Up, 5*time.Second)
	t.Logf("reader reopened %v after the interface came back", time.Since(recreated))

	after := frameOf(0x11, 0, 2)
	if err := tx.WriteFrame(&after); err != nil {
		t.Fatalf("write after re-creation: %v", err)
	}
	select {
	case f := <-frames:
		if !sameFrame(&f, &after) {
			t.Fatalf("after reopen got %s, want %s", &f, &after)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no frame after the interface came back")
	}
	if rx.Stats().Reopens < 1 || tx.Stats().Reopens < 1 {
		t.Errorf("reopens: reader %d, writer %d; want >= 1 each", rx.Stats().Reopens, tx.Stats().Reopens)
	}
}

// TestVCANFlood floods the bus for 10 s at the guest's top rate into a
// deliberately slow reader with a tiny receive buffer, and checks that the
// kernel's drop counter accounts for what was lost.
func TestVCANFlood(t *testing.T) {
	requireVCAN0(t)
	dur := 10 * time.Second
	if testing.Short() {
		dur = 2 * time.Second
	}
	tx := openT(t)
	rx := openT(t, WithReceiveBuffer(1)) // clamped up to the kernel's minimum: a few frames

	var received, maxSeq uint64
	rxDone := make(chan struct{})
	go func() {
		defer close(rxDone)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
			f, err := rx.ReadFrame(ctx)
			cancel()
			if err != nil {
				return // idle: the sender is done and the queue drained
			}
			received++
			maxSeq = max(maxSeq, binary.BigEndian.Uint64(f.Data[:]))
			time.Sleep(200 * time.Microsecond) // the slow consumer
		}
	}()
	var sent uint64
	f := can.Frame{ID: 0x7AB, Len: 8}
	start := time.Now()
	for time.Since(start) < dur {
		sent++
		binary.BigEndian.PutUint64(f.Data[:], sent)
		if err := tx.WriteFrame(&f); err != nil {
			t.Fatalf("WriteFrame %d: %v", sent, err)
		}
	}
	elapsed := time.Since(start)
	// The kernel reports drops with the next frame it queues: one last
	// frame, sent once the reader has drained, carries the final count.
	time.Sleep(300 * time.Millisecond)
	sent++
	binary.BigEndian.PutUint64(f.Data[:], sent)
	if err := tx.WriteFrame(&f); err != nil {
		t.Fatal(err)
	}
	<-rxDone
	s := rx.Stats()
	unaccounted := int64(sent) - int64(received) - int64(s.Dropped)
	t.Logf("flood: %d sent in %v (%.0f frames/s), %d received, %d dropped by the kernel, %d unaccounted",
		sent, elapsed.Round(time.Millisecond), float64(sent)/elapsed.Seconds(), received, s.Dropped, unaccounted)
	fmt.Printf("HIL-METRIC flood_seconds=%.1f flood_sent=%d flood_received=%d dropped=%d unaccounted=%d send_rate=%.0f\n",
		elapsed.Seconds(), sent, received, s.Dropped, unaccounted, float64(sent)/elapsed.Seconds())
	if received+s.Dropped > sent {
		t.Errorf("received %d + dropped %d > sent %d", received, s.Dropped, sent)
	}
	if s.Dropped == 0 {
		t.Errorf("a slow reader with a tiny buffer dropped nothing (%d sent, %d received)", sent, received)
	}
	if maxSeq != sent {
		t.Errorf("last frame read has seq %d, want the final frame %d", maxSeq, sent)
	}
	if s.Frames != received {
		t.Errorf("Stats().Frames = %d, reader counted %d", s.Frames, received)
	}
}

// TestVCANTimestamps checks that frames carry kernel receive times that are
// in the send window and do not go backwards. The frames are all queued
// before the first read, so they come in batches (one recvmmsg each): each
// frame must still have its own time, payload and place.
func TestVCANTimestamps(t *testing.T) {
	requireVCAN0(t)
	tx := openT(t)
	rx := openT(t, WithReceiveBuffer(1<<20))
	start := time.Now()
	const n = 50
	for i := range n {
		f := frameOf(0x55, 0, byte(i))
		if err := tx.WriteFrame(&f); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	end := time.Now()
	var prev time.Time
	for i := range n {
		f := readT(t, rx, 5*time.Second)
		if f.Time.IsZero() {
			t.Fatalf("frame %d has no timestamp", i)
		}
		if f.Data[0] != byte(i) {
			t.Fatalf("frame %d carries payload %d: out of order", i, f.Data[0])
		}
		if f.Time.Before(start.Add(-50*time.Millisecond)) || f.Time.After(end.Add(50*time.Millisecond)) {
			t.Errorf("frame %d: time %v outside the send window [%v, %v]", i, f.Time, start, end)
		}
		if f.Time.Before(prev) {
			t.Errorf("frame %d: time %v before the previous %v", i, f.Time, prev)
		}
		if i > 0 && f.Time.Sub(prev) < time.Millisecond {
			t.Errorf("frame %d: %v after the previous, the sender paused 2ms", i, f.Time.Sub(prev))
		}
		prev = f.Time
	}
	if s := rx.Stats(); s.Frames != n || s.Reads > (n+rxBatch-1)/rxBatch+1 {
		t.Errorf("%d frames in %d receive calls, want %d in at most %d: batches of up to %d", s.Frames, s.Reads, n, (n+rxBatch-1)/rxBatch+1, rxBatch)
	}
}

// BenchmarkVCANWriteReceive measures one frame written on one socket and
// received on another through kernel vcan.
func BenchmarkVCANWriteReceive(b *testing.B) {
	if _, err := net.InterfaceByName(vcan); err != nil {
		b.Skipf("%s not present", vcan)
	}
	tx, err := Open(vcan)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Close()
	rx, err := Open(vcan, WithReceiveBuffer(1<<20))
	if err != nil {
		b.Fatal(err)
	}
	defer rx.Close()
	f := frameOf(0x1A3, 0, seq(8)...)
	b.ReportAllocs()
	for b.Loop() {
		if err := tx.WriteFrame(&f); err != nil {
			b.Fatal(err)
		}
		if !rx.Receive() {
			b.Fatal(rx.Err())
		}
	}
}

// TestVCANReopenOnRequest forces a reopen under a running reader (the
// diagnostic shell's "reopen can"): Down and Up events, a new socket with
// the same options (the kernel filter still applies), and frames sent
// after the reopen arrive.
func TestVCANReopenOnRequest(t *testing.T) {
	requireVCAN0(t)
	rx := openT(t, WithFilter(can.NewFilter(can.Key{ID: 0x20}, can.Key{ID: 0x21})))
	tx := openT(t)
	frames := make(chan can.Frame, 16)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for rx.Receive() {
			frames <- *rx.Frame()
		}
	}()
	t.Cleanup(func() { rx.Close(); wg.Wait() })
	next := func(what string) can.Frame {
		t.Helper()
		select {
		case f := <-frames:
			return f
		case <-time.After(5 * time.Second):
			t.Fatalf("no frame %s", what)
			return can.Frame{}
		}
	}

	before := frameOf(0x20, 0, 1)
	if err := tx.WriteFrame(&before); err != nil {
		t.Fatal(err)
	}
	if f := next("before the reopen"); !sameFrame(&f, &before) {
		t.Fatalf("got %s, want %s", &f, &before)
	}

	for i := range 3 {
		if err := rx.Reopen(); err != nil {
			t.Fatalf("Reopen %d: %v", i+1, err)
		}
		down := waitEvent(t, rx, Down, 5*time.Second)
		if !errors.Is(down.Err, errReopenAsked) {
			t.Errorf("Down event error %v, want the reopen request", down.Err)
		}
		waitEvent(t, rx, Up, 5*time.Second)
		// The filter came with the options: 0x22 stays out.
		blocked, after := frameOf(0x22, 0, 9), frameOf(0x21, 0, byte(i))
		for _, f := range []*can.Frame{&blocked, &after} {
			if err := tx.WriteFrame(f); err != nil {
				t.Fatalf("write after Reopen %d: %v", i+1, err)
			}
		}
		if f := next("after the reopen"); !sameFrame(&f, &after) {
			t.Fatalf("after Reopen %d got %s, want %s", i+1, &f, &after)
		}
	}
	st := rx.Stats()
	if st.Reopens != 3 || st.Count(Down) != 3 || st.Count(Up) != 3 || st.Frames != 4 {
		t.Errorf("stats %+v: want 3 reopens, 3 Down and 3 Up events, 4 frames", st)
	}
	rx.Close()
	if err := rx.Reopen(); !errors.Is(err, ErrClosed) {
		t.Errorf("Reopen after Close: %v, want ErrClosed", err)
	}
}

// TestVCANCoalesce sends frames one at a time, 2 ms apart, to a reader
// with WithCoalesce(50ms): every frame arrives, in order, with its own
// kernel time 2 ms after the previous one, but in a handful of receive
// calls instead of one each; Close and a cancelled context end the wait
// between two receives at once.
func TestVCANCoalesce(t *testing.T) {
	requireVCAN0(t)
	const n, gap, window = 100, 2 * time.Millisecond, 50 * time.Millisecond
	tx := openT(t)
	rx := openT(t, WithCoalesce(window), WithReceiveBuffer(1<<20))
	start := time.Now()
	sent := make(chan error, 1)
	go func() {
		for i := range n {
			f := frameOf(0x66, 0, byte(i))
			if err := tx.WriteFrame(&f); err != nil {
				sent <- err
				return
			}
			time.Sleep(gap)
		}
		sent <- nil
	}()
	var prev time.Time
	for i := range n {
		f := readT(t, rx, 5*time.Second)
		if f.Data[0] != byte(i) {
			t.Fatalf("frame %d carries payload %d: out of order", i, f.Data[0])
		}
		if i > 0 && f.Time.Sub(prev) < gap/2 {
			t.Errorf("frame %d: kernel time %v after the previous, sent %v apart: the time is not the receive's", i, f.Time.Sub(prev), gap)
		}
		prev = f.Time
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	s := rx.Stats()
	t.Logf("%d frames %v apart in %v: %d receive calls", n, gap, elapsed.Round(time.Millisecond), s.Reads)
	// One receive per window, and the first frame on its own.
	if limit := uint64(elapsed/window) + 3; s.Reads > limit {
		t.Errorf("%d receive calls for %d frames over %v, want at most %d (one per %v)", s.Reads, n, elapsed.Round(time.Millisecond), limit, window)
	}

	// A long coalescing wait is cut short by a cancel and by Close.
	slow := openT(t, WithCoalesce(time.Hour))
	f := frameOf(0x67, 0, 1)
	if err := tx.WriteFrame(&f); err != nil {
		t.Fatal(err)
	}
	readT(t, slow, 5*time.Second) // a short batch: the next read waits an hour
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	if _, err := slow.ReadFrame(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read in a coalescing wait with a 100ms context: %v, want its deadline", err)
	}
	if d := time.Since(t0); d > time.Second {
		t.Errorf("the cancelled read returned after %v", d)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		slow.Close()
	}()
	if slow.Receive() || slow.Err() != nil {
		t.Errorf("Receive in a coalescing wait on a closed Conn: true or %v, want false and nil", slow.Err())
	}
}

// TestVCANFDNeedsMTU opens WithFD(true) on a vcan of its own set to the
// classic MTU (16): Open fails with ErrNoFD naming the interface. At MTU
// 72 the same Open works, and a 64-byte FD frame and a classic frame
// cross it, while a classic socket on it sees only the classic one.
func TestVCANFDNeedsMTU(t *testing.T) {
	requireVCAN0(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("no ip command")
	}
	const iface = "vcanfd0"
	exec.Command("ip", "link", "del", iface).Run()
	ipLink(t, "add", "dev", iface, "type", "vcan")
	t.Cleanup(func() { exec.Command("ip", "link", "del", iface).Run() })
	// A vcan starts at CANFD_MTU; a classic controller has CAN_MTU.
	ipLink(t, "set", iface, "mtu", "16")
	ipLink(t, "set", iface, "up")

	_, err := Open(iface, WithFD(true))
	if !errors.Is(err, ErrNoFD) {
		t.Fatalf("Open WithFD on MTU 16: %v, want ErrNoFD", err)
	}
	var oe *OpError
	if !errors.As(err, &oe) || oe.Iface != iface {
		t.Errorf("Open WithFD on MTU 16: %v does not name %s", err, iface)
	}
	t.Logf("at MTU 16: %v", err)
	classic, err := Open(iface)
	if err != nil {
		t.Fatalf("Open without FD on MTU 16: %v", err)
	}
	classic.Close()

	ipLink(t, "set", iface, "down")
	ipLink(t, "set", iface, "mtu", "72")
	ipLink(t, "set", iface, "up")
	open := func(opts ...Option) *Conn {
		c, err := Open(iface, opts...)
		if err != nil {
			t.Fatalf("Open at MTU 72: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	tx, rxFD, rxClassic := open(WithFD(true)), open(WithFD(true)), open()
	fd := frameOf(0x3A0, can.FD|can.BRS, seq(64)...)
	cl := frameOf(0x3A1, 0, seq(8)...)
	for _, f := range []*can.Frame{&fd, &cl} {
		if err := tx.WriteFrame(f); err != nil {
			t.Fatalf("write %s: %v", f, err)
		}
	}
	for _, want := range []*can.Frame{&fd, &cl} {
		if got := readT(t, rxFD, 2*time.Second); !sameFrame(&got, want) {
			t.Errorf("FD socket read %s, want %s", &got, want)
		}
	}
	if got := readT(t, rxClassic, 2*time.Second); !sameFrame(&got, &cl) {
		t.Errorf("classic socket read %s, want only the classic %s", &got, &cl)
	}
	expectSilence(t, rxClassic, 200*time.Millisecond)
}
