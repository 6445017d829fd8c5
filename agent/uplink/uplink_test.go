package uplink_test

import (
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/csop/tbox/agent/uplink"
	"github.com/csop/tbox/agent/uplink/mqtttest"
	"github.com/csop/tbox/signer"
)

// testLogger logs to t when -v is given, and stops when the test is over.
func testLogger(t testing.TB) *slog.Logger {
	w := &tWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func seqs(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func ascending(xs []uint64) bool {
	for i := 1; i < len(xs); i++ {
		if xs[i] <= xs[i-1] {
			return false
		}
	}
	return true
}

func TestDrainOldestFirst(t *testing.T) {
	b := mqtttest.Start(t)
	k := newCollector(t, b.URL(), true)
	k.start()
	ob := newMemOutbox()
	ob.add(50)
	u := newUplink(t, uplink.Config{Broker: b.URL()}, ob)
	runUplink(t, u)
	u.Notify()

	waitFor(t, 10*time.Second, "the outbox to drain", func() bool { return ob.len() == 0 })
	if got := k.firstArrivals(); !slices.Equal(got, seqs(1, 50)) {
		t.Fatalf("collector received %v, want 1..50 in order", got)
	}
	acks := ob.ackCalls()
	if !ascending(acks) || acks[len(acks)-1] != 50 {
		t.Fatalf("Outbox.Ack calls %v, want ascending up to 50", acks)
	}
	waitFor(t, 5*time.Second, "Stats to settle", func() bool { return u.Stats().InFlight == 0 })
	st := u.Stats()
	if !st.Connected || st.LastAcked != 50 || st.Publishes < 50 || st.Acks != uint64(len(acks)) || len(st.Ignored) != 0 {
		t.Fatalf("Stats = %+v", st)
	}
}

// TestBrokerPubackIsNotDeletion: with a collector that receives but does
// not ack, the broker has PUBACKed everything, yet nothing leaves the
// outbox; no more than Window are in flight; acking then drains it.
func TestBrokerPubackIsNotDeletion(t *testing.T) {
	b := mqtttest.Start(t)
	k := newCollector(t, b.URL(), false)
	k.start()
	ob := newMemOutbox()
	ob.add(50)
	u := newUplink(t, uplink.Config{Broker: b.URL(), Window: 10, AckTimeout: time.Minute}, ob)
	runUplink(t, u)

	waitFor(t, 10*time.Second, "10 deliveries", func() bool { return k.count() >= 10 })
	time.Sleep(300 * time.Millisecond) // room for a window overrun to show
	if got := k.firstArrivals(); !slices.Equal(got, seqs(1, 10)) {
		t.Fatalf("collector received %v, want exactly the window 1..10", got)
	}
	if n := ob.len(); n != 50 {
		t.Fatalf("outbox holds %d, want all 50: a broker PUBACK must not remove anything", n)
	}
	if acks := ob.ackCalls(); len(acks) != 0 {
		t.Fatalf("Outbox.Ack called %v without a collector ack", acks)
	}
	if st := u.Stats(); st.InFlight != 10 || st.LastAcked != 0 {
		t.Fatalf("Stats = %+v, want 10 in flight and nothing acked", st)
	}

	k.setAcking(true)
	waitFor(t, 10*time.Second, "the outbox to drain", func() bool { return ob.len() == 0 })
	if got := k.firstArrivals(); !slices.Equal(got, seqs(1, 50)) {
		t.Fatalf("collector received %v, want 1..50 in order", got)
	}
}

// TestAckTimeoutRepublishes: the collector misses the window (it is not
// subscribed yet); after AckTimeout the uplink publishes the unacked again.
func TestAckTimeoutRepublishes(t *testing.T) {
	b := mqtttest.Start(t)
	ob := newMemOutbox()
	ob.add(5)
	u := newUplink(t, uplink.Config{Broker: b.URL(), AckTimeout: 300 * time.Millisecond}, ob)
	runUplink(t, u)
	waitFor(t, 10*time.Second, "5 publishes", func() bool { return u.Stats().Publishes >= 5 })
	k := newCollector(t, b.URL(), true)
	k.start()
	waitFor(t, 10*time.Second, "the outbox to drain", func() bool { return ob.len() == 0 })
	if st := u.Stats(); st.AckTimeouts == 0 || st.Publishes < 10 {
		t.Fatalf("Stats = %+v, want an ack timeout and the 5 published again", st)
	}
}

// TestBrokerCrash kills the broker mid-stream and restarts it, three
// times: nothing is lost, and the uplink resumes within 2 s of the broker
// coming back.
func TestBrokerCrash(t *testing.T) {
	b := mqtttest.Start(t)
	k := newCollector(t, b.URL(), true)
	k.start()
	ob := newMemOutbox()
	u := newUplink(t, uplink.Config{Broker: b.URL(), AckTimeout: time.Second}, ob)
	runUplink(t, u)

	// A producer appends an attestation every 5 ms, as the mileage engine
	// would (much faster), and notifies.
	stopProducer := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stopProducer:
				return
			case <-time.After(5 * time.Millisecond):
				ob.add(1)
				u.Notify()
			}
		}
	}()
	defer func() { close(stopProducer); wg.Wait() }()

	var worst time.Duration
	for cycle := range 3 {
		waitFor(t, 10*time.Second, "acks to flow", func() bool { return u.Stats().LastAcked > uint64(50*(cycle+1)) })
		before := u.Stats()
		b.Stop()
		k.stop()
		waitFor(t, 10*time.Second, "the uplink to notice the crash", func() bool { return !u.Stats().Connected })
		time.Sleep(2 * time.Second) // long enough for the backoff to reach its cap
		b.Restart()
		back := time.Now()
		waitFor(t, 10*time.Second, "the uplink to reconnect", func() bool { return u.Stats().Connected })
		latency := time.Since(back)
		worst = max(worst, latency)
		t.Logf("cycle %d: resumed %v after the broker came back (%d attempts while it was down)", cycle, latency.Round(time.Millisecond), u.Stats().Attempts-before.Attempts)
		if latency > 2*time.Second {
			t.Errorf("cycle %d: resumed %v after the broker came back, want < 2 s", cycle, latency)
		}
		k.start()
	}
	close(stopProducer)
	wg.Wait()
	stopProducer = make(chan struct{})
	last := ob.add(0)
	u.Notify()
	waitFor(t, 20*time.Second, "the outbox to drain", func() bool { return ob.len() == 0 })
	got := k.firstArrivals()
	slices.Sort(got)
	if !slices.Equal(slices.Compact(got), seqs(1, last)) {
		t.Fatalf("collector has %d distinct seqs, want all of 1..%d", len(slices.Compact(got)), last)
	}
	st := u.Stats()
	if st.Reconnects != 3 || st.LastAcked != last {
		t.Fatalf("Stats = %+v, want 3 reconnects and %d acked", st, last)
	}
	t.Logf("%d attestations, %d publishes, worst resume latency %v", last, st.Publishes, worst.Round(time.Millisecond))
}

// TestCollectorDown: while the collector is away the outbox grows; when it
// returns the backlog drains in seq order.
func TestCollectorDown(t *testing.T) {
	b := mqtttest.Start(t)
	k := newCollector(t, b.URL(), true)
	k.start()
	ob := newMemOutbox()
	ob.add(20)
	u := newUplink(t, uplink.Config{Broker: b.URL(), AckTimeout: 300 * time.Millisecond, Window: 8}, ob)
	runUplink(t, u)
	waitFor(t, 10*time.Second, "the first 20 to drain", func() bool { return ob.len() == 0 })

	k.stop()
	nBefore := len(ob.ackCalls())
	for range 30 {
		ob.add(1)
		u.Notify()
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(time.Second) // several ack timeouts with nobody listening
	if n := ob.len(); n != 30 {
		t.Fatalf("outbox holds %d with the collector down, want 30", n)
	}
	if st := u.Stats(); st.AckTimeouts == 0 || st.LastAcked != 20 {
		t.Fatalf("Stats = %+v, want ack timeouts and 20 acked", st)
	}

	k.start()
	waitFor(t, 10*time.Second, "the backlog to drain", func() bool { return ob.len() == 0 })
	if got := k.firstArrivals(); !slices.Equal(got, seqs(1, 50)) {
		t.Fatalf("collector first saw %v, want 1..50 in order", got)
	}
	if acks := ob.ackCalls()[nBefore:]; !ascending(acks) || acks[len(acks)-1] != 50 {
		t.Fatalf("Outbox.Ack calls after the return %v, want ascending up to 50", acks)
	}
}

// TestNackRetriedSlowly: the collector refuses seq 7 twice; it is kept,
// counted, published again only after NackRetry each time, and acked at
// the third try; the rest is not held up longer than that.
func TestNackRetriedSlowly(t *testing.T) {
	const retry = 700 * time.Millisecond
	b := mqtttest.Start(t)
	k := newCollector(t, b.URL(), true)
	k.refuse = func(seq uint64, delivery int) string {
		if seq == 7 && delivery <= 2 {
			return "bad signature"
		}
		return ""
	}
	k.start()
	ob := newMemOutbox()
	ob.add(20)
	u := newUplink(t, uplink.Config{Broker: b.URL(), NackRetry: retry, AckTimeout: time.Minute}, ob)
	runUplink(t, u)

	waitFor(t, 10*time.Second, "the first nack", func() bool { return u.Stats().Nacks >= 1 })
	if !ob.has(7) {
		t.Fatal("seq 7 left the outbox after a nack")
	}
	st := u.Stats()
	if st.LastNackSeq != 7 || st.LastNackReason != "bad signature" {
		t.Fatalf("Stats = %+v, want last nack 7 %q", st, "bad signature")
	}
	waitFor(t, 10*time.Second, "the outbox to drain", func() bool { return ob.len() == 0 })

	nacks := ob.nackCalls()
	if len(nacks) != 2 || nacks[0].seq != 7 || nacks[1].seq != 7 || nacks[0].reason != "bad signature" {
		t.Fatalf("Outbox.Nack calls %+v, want seq 7 twice with its reason", nacks)
	}
	if st := u.Stats(); st.Nacks != 2 || st.LastAcked != 20 {
		t.Fatalf("Stats = %+v, want 2 nacks and 20 acked", st)
	}
	at := k.arrivalsOf(7)
	if len(at) != 3 {
		t.Fatalf("seq 7 delivered %d times, want 3", len(at))
	}
	for i := 1; i < len(at); i++ {
		gap := at[i].Sub(at[i-1])
		t.Logf("seq 7 retry %d after %v", i, gap.Round(time.Millisecond))
		if gap < retry {
			t.Fatalf("seq 7 published again %v after its refusal, want >= NackRetry %v", gap, retry)
		}
		if gap > retry+time.Second {
			t.Fatalf("seq 7 published again %v after its refusal, want about NackRetry %v", gap, retry)
		}
	}
}

// TestNackRetryWithFullWindow: the refused seq holds the collector's
// cumulative ack back while the window behind it is full; its retry goes
// out anyway, without waiting for an ack timeout.
func TestNackRetryWithFullWindow(t *testing.T) {
	const retry = 300 * time.Millisecond
	b := mqtttest.Start(t)
	k := newCollector(t, b.URL(), true)
	k.refuse = func(seq uint64, delivery int) string {
		if seq == 2 && delivery == 1 {
			return "chain id mismatch"
		}
		return ""
	}
	k.start()
	ob := newMemOutbox()
	ob.add(20)
	u := newUplink(t, uplink.Config{Broker: b.URL(), Window: 4, NackRetry: retry, AckTimeout: time.Minute}, ob)
	runUplink(t, u)
	waitFor(t, 10*time.Second, "the nack", func() bool { return u.Stats().Nacks == 1 })
	waitFor(t, 10*time.Second, "the window to fill behind the refused seq", func() bool { return u.Stats().InFlight == 4 })
	// In flight means published: give the broker the time to deliver them.
	waitFor(t, 10*time.Second, "the window at the collector", func() bool { return len(k.firstArrivals()) >= 6 })
	if got := k.firstArrivals(); !slices.Equal(got[:6], seqs(1, 6)) {
		t.Fatalf("collector received %v, want 1..6 (1, the refused 2, and a window of 4)", got)
	}
	waitFor(t, 5*time.Second, "the outbox to drain", func() bool { return ob.len() == 0 })
	if st := u.Stats(); st.AckTimeouts != 0 {
		t.Fatalf("Stats = %+v: drained by an ack timeout, want by the retry", st)
	}
}

// TestForgedReplies: garbage, unsigned acks, receipts from another key,
// for another device or over another digest, and forged nacks on the ack
// and nack topics are counted by kind and ignored: no Ack or Nack call
// reaches the outbox; then the real collector's receipt is applied.
func TestForgedReplies(t *testing.T) {
	b := mqtttest.Start(t)
	k := newCollector(t, b.URL(), false)
	k.start()
	ob := newMemOutbox()
	ob.add(5)
	u := newUplink(t, uplink.Config{Broker: b.URL(), AckTimeout: time.Minute}, ob)
	runUplink(t, u)
	waitFor(t, 10*time.Second, "5 deliveries", func() bool { return k.count() >= 5 })

	stranger := newKeyFile(t)
	coll := collectorKey(t)
	wrongDigest := signer.Receipt{Device: deviceAddr(), Seq: 3, Digest: digestOf(4)}
	if err := signer.SignReceipt(coll, chainID, &wrongDigest); err != nil {
		t.Fatal(err)
	}
	otherDev := signer.Receipt{Device: signer.Address{0x42}, Seq: 3, Digest: digestOf(3)}
	if err := signer.SignReceipt(coll, chainID, &otherDev); err != nil {
		t.Fatal(err)
	}
	_, ackT, nackT, _ := uplink.Topics(device)
	bad := []struct{ topic, payload, kind string }{
		{ackT, `not json`, uplink.IgnoredMalformed},
		{ackT, `{"seq":3}`, uplink.IgnoredMalformed}, // the old unsigned ack
		{ackT, `{"seq":0}`, uplink.IgnoredMalformed},
		{ackT, `{"seq":3,"pad":"` + strings.Repeat("x", 100000) + `"}`, uplink.IgnoredOversize},
		{ackT, string(signedAck(t, stranger, 3)), uplink.IgnoredForged},
		{ackT, string(otherDev.AppendWire(nil)), uplink.IgnoredForged}, // another device's receipt: recovers elsewhere
		{ackT, string(wrongDigest.AppendWire(nil)), uplink.IgnoredDigest},
		{ackT, string(signedAck(t, coll, 999)), uplink.IgnoredUnknown},
		{nackT, `{"seq":2,"reason":"unsigned"}`, uplink.IgnoredMalformed},
		{nackT, string(signedNack(t, stranger, 2, "forged\nservice unlocked")), uplink.IgnoredForged},
		{nackT, string(signedNack(t, coll, 1000, "beyond")), uplink.IgnoredUnknown},
	}
	// One at a time, each counted before the next goes out: acks are
	// cumulative and the inbox keeps only the highest, so a wrong-digest
	// receipt for seq 3 followed at once by one for seq 999 would be
	// replaced before it is looked at (and counted as nothing).
	want := map[string]uint64{}
	c := k.client()
	for _, m := range bad {
		want[m.kind]++
		if tok := c.Publish(m.topic, 1, false, m.payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
		waitFor(t, 30*time.Second, m.kind+" counted", func() bool { return u.Stats().Ignored[m.kind] >= want[m.kind] })
	}
	for end := time.Now().Add(30 * time.Second); !maps.Equal(u.Stats().Ignored, want); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("after 30 s the ignored replies are counted %v; want %v", u.Stats().Ignored, want)
		}
	}
	if acks, nacks := ob.ackCalls(), ob.nackCalls(); len(acks) != 0 || len(nacks) != 0 || ob.len() != 5 {
		t.Fatalf("after forged replies: Ack calls %v, Nack calls %v, outbox %d; want none, none, 5", acks, nacks, ob.len())
	}
	t.Logf("last ignored: %s", u.Stats().LastIgnored)

	if tok := c.Publish(ackT, 1, false, signedAck(t, coll, 3)); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	waitFor(t, 10*time.Second, "the good ack", func() bool { return ob.len() == 2 })
	if st := u.Stats(); !st.Connected || st.LastAcked != 3 {
		t.Fatalf("Stats = %+v, want connected and 3 acked", st)
	}
	// The same receipt replayed, and an older one: nothing happens.
	c.Publish(ackT, 1, false, signedAck(t, coll, 3)).WaitTimeout(5 * time.Second)
	c.Publish(ackT, 1, false, signedAck(t, coll, 2)).WaitTimeout(5 * time.Second)
	time.Sleep(200 * time.Millisecond)
	if acks := ob.ackCalls(); len(acks) != 1 {
		t.Errorf("Ack calls %v after replayed receipts, want one", acks)
	}
}

func newKeyFile(t testing.TB) *signer.FileKey {
	t.Helper()
	path := t.TempDir() + "/k.key"
	if _, err := signer.GenerateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	k, err := signer.LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// client returns the collector's paho client.
func (k *collector) client() mqtt.Client {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.c
}

// TestMutualTLS: a client certificate from the broker's CA connects and
// delivers; one from another CA is refused, Run keeps trying, Stats shows
// the TLS error and nothing is delivered.
func TestMutualTLS(t *testing.T) {
	pki := mqtttest.NewPKI(t)
	b := mqtttest.Start(t, mqtttest.WithTLS(pki.CAFile, pki.ServerCert, pki.ServerKey, true))
	colCert, colKey := pki.ClientCert("collector")
	k := newCollector(t, b.URL(), true)
	k.tc = clientTLS(t, pki.CAFile, colCert, colKey)
	k.start()

	t.Run("good client cert", func(t *testing.T) {
		cert, key := pki.ClientCert(device)
		ob := newMemOutbox()
		ob.add(10)
		u := newUplink(t, uplink.Config{Broker: b.URL(), CAFile: pki.CAFile, CertFile: cert, KeyFile: key}, ob)
		stop := runUplink(t, u)
		waitFor(t, 10*time.Second, "the outbox to drain over mutual TLS", func() bool { return ob.len() == 0 })
		stop()
	})

	t.Run("client cert from the wrong CA", func(t *testing.T) {
		rogue := mqtttest.NewPKI(t)
		cert, key := rogue.ClientCert(device)
		ob := newMemOutbox()
		ob.add(10)
		before := k.count()
		u := newUplink(t, uplink.Config{Broker: b.URL(), CAFile: pki.CAFile, CertFile: cert, KeyFile: key}, ob)
		runUplink(t, u)
		waitFor(t, 10*time.Second, "three refused attempts", func() bool { return u.Stats().Attempts >= 3 })
		st := u.Stats()
		if st.Connected || st.Publishes != 0 || st.LastConnectError == nil {
			t.Fatalf("Stats = %+v, want never connected, nothing published, a connect error", st)
		}
		var op *net.OpError // the broker's TLS alert, or its reset of the refused connection
		if !errors.As(st.LastConnectError, &op) {
			t.Fatalf("LastConnectError = %v, want a network (TLS) error", st.LastConnectError)
		}
		t.Logf("refused: %v", st.LastConnectError)
		if k.count() != before || ob.len() != 10 {
			t.Fatalf("collector got %d new deliveries, outbox %d; want 0 and 10", k.count()-before, ob.len())
		}
	})
}

// TestHealth: a retained online report on connect and every
// HealthInterval, the will on an unclean drop, an offline report on a
// clean stop.
func TestHealth(t *testing.T) {
	b := mqtttest.Start(t)
	p := newProxy(t, b.Addr())
	_, _, _, healthT := uplink.Topics(device)

	reports := make(chan map[string]any, 100)
	w := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("watcher").SetAutoReconnect(false))
	if tok := w.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("watcher: %v", tok.Error())
	}
	defer w.Disconnect(100)
	if tok := w.Subscribe(healthT, 0, func(_ mqtt.Client, m mqtt.Message) {
		var r map[string]any
		if err := json.Unmarshal(m.Payload(), &r); err != nil {
			t.Errorf("health payload %q: %v", m.Payload(), err)
			return
		}
		r["_retained"] = m.Retained()
		select {
		case reports <- r:
		default:
		}
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("watcher subscribe: %v", tok.Error())
	}
	next := func(what string) map[string]any {
		t.Helper()
		select {
		case r := <-reports:
			return r
		case <-time.After(5 * time.Second):
			t.Fatalf("no health report (%s) in 5 s", what)
			return nil
		}
	}

	ob := newMemOutbox()
	u := newUplink(t, uplink.Config{
		Broker:         "tcp://" + p.addr(),
		HealthInterval: 200 * time.Millisecond,
		Health:         func() any { return map[string]any{"version": "test-1", "outbox_depth": ob.len()} },
	}, ob)
	stop := runUplink(t, u)

	r := next("online")
	agent, _ := r["agent"].(map[string]any)
	if r["status"] != "online" || r["device"] != device || agent["version"] != "test-1" {
		t.Fatalf("first report %v, want online, the device, the agent's version", r)
	}
	start := time.Now()
	r = next("periodic")
	if r["status"] != "online" || time.Since(start) > time.Second {
		t.Fatalf("periodic report %v after %v, want online within 1 s", r, time.Since(start))
	}

	p.cut() // an unclean drop: the broker publishes the will
	for r = next("will"); r["status"] == "online"; r = next("will") {
	}
	if r["status"] != "offline" || r["device"] != device {
		t.Fatalf("will %v, want offline with the device", r)
	}
	waitFor(t, 10*time.Second, "a reconnect through the proxy", func() bool { return u.Stats().Connected })
	for r = next("online again"); r["status"] != "online"; r = next("online again") {
	}

	stop()
	for r = next("offline"); r["status"] != "offline"; r = next("offline") {
	}
	if _, ok := r["uptime_s"]; !ok {
		t.Fatalf("offline report %v, want the full report of a clean stop", r)
	}

	// A late subscriber gets the retained offline report.
	late := make(chan string, 1)
	w2 := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("late").SetAutoReconnect(false))
	if tok := w2.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("late watcher: %v", tok.Error())
	}
	defer w2.Disconnect(100)
	w2.Subscribe(healthT, 0, func(_ mqtt.Client, m mqtt.Message) {
		var r map[string]any
		_ = json.Unmarshal(m.Payload(), &r)
		if m.Retained() {
			s, _ := r["status"].(string)
			select {
			case late <- s:
			default:
			}
		}
	})
	select {
	case s := <-late:
		if s != "offline" {
			t.Fatalf("retained health after a clean stop: %q, want offline", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no retained health report for a late subscriber")
	}
}

func TestRunTwiceAndNotify(t *testing.T) {
	b := mqtttest.Start(t)
	u := newUplink(t, uplink.Config{Broker: b.URL()}, newMemOutbox())
	// Notify never blocks, running or not.
	done := make(chan struct{})
	go func() {
		for range 10000 {
			u.Notify()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Notify blocked with nobody running")
	}
	runUplink(t, u)
	waitFor(t, 10*time.Second, "a connection", func() bool { return u.Stats().Connected })
	if err := u.Run(t.Context()); !errors.Is(err, uplink.ErrRunning) {
		t.Fatalf("second Run = %v, want ErrRunning", err)
	}
}

// TestStopWhileBrokerDown: Run returns promptly when cancelled during the
// reconnect backoff.
func TestStopWhileBrokerDown(t *testing.T) {
	b := mqtttest.Start(t)
	u := newUplink(t, uplink.Config{Broker: b.URL()}, newMemOutbox())
	stop := runUplink(t, u)
	waitFor(t, 10*time.Second, "a connection", func() bool { return u.Stats().Connected })
	b.Stop()
	waitFor(t, 10*time.Second, "the loss", func() bool { return !u.Stats().Connected })
	start := time.Now()
	stop()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Run took %v to return after cancel", d)
	}
}
