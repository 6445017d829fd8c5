package uplink_test

import (
	"slices"
	"testing"
	"time"

	"github.com/csop/tbox/agent/uplink"
	"github.com/csop/tbox/agent/uplink/mqtttest"
)

// TestReconnectOnRequest: Reconnect, asked while attestations are in
// flight and unacked, makes a new connection at once; it is not counted as
// a connection error, and everything unacked is published again on the new
// connection, so nothing is lost.
func TestReconnectOnRequest(t *testing.T) {
	b := mqtttest.Start(t)
	k := newCollector(t, b.URL(), false)
	k.start()
	ob := newMemOutbox()
	ob.add(10)
	u := newUplink(t, uplink.Config{Broker: b.URL(), AckTimeout: time.Minute}, ob)
	runUplink(t, u)
	waitFor(t, 10*time.Second, "10 deliveries", func() bool { return k.count() >= 10 })
	before := u.Stats()
	if before.Reconnects != 0 || before.InFlight != 10 {
		t.Fatalf("Stats before = %+v, want no reconnect and 10 in flight", before)
	}

	asked := time.Now()
	u.Reconnect()
	waitFor(t, 5*time.Second, "the new connection", func() bool {
		st := u.Stats()
		return st.Connected && st.Reconnects == 1
	})
	t.Logf("reconnected %v after the request", time.Since(asked).Round(time.Millisecond))
	st := u.Stats()
	if !st.ConnectedSince.After(before.ConnectedSince) {
		t.Fatalf("ConnectedSince %v, want after the old connection's %v", st.ConnectedSince, before.ConnectedSince)
	}
	if st.LastConnectError != nil {
		t.Fatalf("LastConnectError = %v after a requested reconnect, want nil", st.LastConnectError)
	}
	// The unacked window goes out again on the new connection.
	waitFor(t, 10*time.Second, "the window published again", func() bool { return k.count() >= 20 })

	ob.add(10)
	u.Notify()
	k.setAcking(true)
	waitFor(t, 10*time.Second, "the outbox to drain", func() bool { return ob.len() == 0 })
	if got := k.firstArrivals(); !slices.Equal(got, seqs(1, 20)) {
		t.Fatalf("collector received %v, want 1..20 in order", got)
	}
	if st := u.Stats(); st.Reconnects != 1 || st.LastAcked != 20 || st.AckTimeouts != 0 {
		t.Fatalf("Stats = %+v, want 1 reconnect, 20 acked, no ack timeout", st)
	}
	if n := len(k.arrivalsOf(1)); n != 2 {
		t.Fatalf("seq 1 delivered %d times, want 2 (once per connection)", n)
	}
}

// TestRetryNackedOnRequest: a refused attestation waits NackRetry (here a
// minute) to be published again, unless RetryNacked is called: then it
// goes out at once, is accepted, and the outbox drains.
func TestRetryNackedOnRequest(t *testing.T) {
	const retry = time.Minute
	b := mqtttest.Start(t)
	k := newCollector(t, b.URL(), true)
	k.refuse = func(seq uint64, delivery int) string {
		if seq == 3 && delivery == 1 {
			return "unknown device"
		}
		return ""
	}
	k.start()
	ob := newMemOutbox()
	ob.add(8)
	u := newUplink(t, uplink.Config{Broker: b.URL(), NackRetry: retry, AckTimeout: time.Minute}, ob)
	runUplink(t, u)

	waitFor(t, 10*time.Second, "the nack", func() bool { return u.Stats().Nacks == 1 })
	waitFor(t, 10*time.Second, "1..8 delivered", func() bool { return len(k.firstArrivals()) == 8 })
	time.Sleep(300 * time.Millisecond) // room for an early re-publish to show
	if n := len(k.arrivalsOf(3)); n != 1 {
		t.Fatalf("seq 3 delivered %d times before RetryNacked, want 1 (NackRetry is %v)", n, retry)
	}
	if ob.len() != 6 {
		t.Fatalf("outbox holds %d, want 6 (3..8: the refused seq holds the cumulative ack back)", ob.len())
	}

	asked := time.Now()
	u.RetryNacked()
	waitFor(t, 5*time.Second, "the outbox to drain after RetryNacked", func() bool { return ob.len() == 0 })
	at := k.arrivalsOf(3)
	if len(at) != 2 {
		t.Fatalf("seq 3 delivered %d times, want 2", len(at))
	}
	if d := at[1].Sub(asked); d > 2*time.Second {
		t.Fatalf("seq 3 published again %v after RetryNacked, want at once", d)
	}
	if st := u.Stats(); st.LastAcked != 8 || st.Nacks != 1 || st.AckTimeouts != 0 {
		t.Fatalf("Stats = %+v, want 8 acked, 1 nack, no ack timeout", st)
	}
	// With nothing refused, RetryNacked changes nothing.
	pubs := u.Stats().Publishes
	u.RetryNacked()
	time.Sleep(200 * time.Millisecond)
	if st := u.Stats(); st.Publishes != pubs {
		t.Fatalf("RetryNacked with nothing refused published %d more", st.Publishes-pubs)
	}
}

// TestServiceCallsNeverBlock: Reconnect and RetryNacked return at once,
// with or without Run.
func TestServiceCallsNeverBlock(t *testing.T) {
	u := newUplink(t, uplink.Config{Broker: "tcp://127.0.0.1:1"}, newMemOutbox())
	done := make(chan struct{})
	go func() {
		for range 10000 {
			u.Reconnect()
			u.RetryNacked()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Reconnect or RetryNacked blocked with nobody running")
	}
}
