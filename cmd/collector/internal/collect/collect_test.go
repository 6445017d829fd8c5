package collect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/csop/tbox/agent/uplink/mqtttest"
	"github.com/csop/tbox/cmd/collector/internal/ledger"
	"github.com/csop/tbox/signer"
)

// attack is one refused (or, as a control, accepted) message sent after
// seq 1 of device d, 1000 m in batch d.batch, is stored. other is a second
// device, not on the allowlist.
type attack struct {
	name      string
	build     func(t *testing.T, d, other *device) Message
	want      error  // nil: an ack
	seq       uint64 // seq in the reply
	head      uint64 // d's stored head afterwards
	forks     int    // forks recorded for d
	replyToOt bool   // the reply goes to other's topic
	verdict   string // the verdict code of seq 2 when stored; Eligible if empty
}

func attacks() []attack {
	return []attack{
		{name: "next in order", seq: 2, head: 2, build: func(t *testing.T, d, _ *device) Message {
			d.batch++
			return d.msg(d.next(2000))
		}},
		{name: "device not on the allowlist", want: ErrUnknownDevice, seq: 1, head: 1, replyToOt: true, build: func(t *testing.T, d, other *device) Message {
			return other.msg(other.next(500))
		}},
		{name: "forged signature", want: signer.ErrSignerMismatch, seq: 2, head: 1, build: func(t *testing.T, d, other *device) Message {
			a := d.make(500)
			sig, err := other.key.SignDigest(signer.Digest(testChainID, a))
			if err != nil {
				t.Fatal(err)
			}
			a.Sig = sig
			return d.msg(a.AppendWire(nil))
		}},
		{name: "signed for another chain", want: signer.ErrSignerMismatch, seq: 2, head: 1, build: func(t *testing.T, d, _ *device) Message {
			a := d.make(500)
			if err := signer.Sign(d.key, testChainID+1, a); err != nil {
				t.Fatal(err)
			}
			return d.msg(a.AppendWire(nil))
		}},
		{name: "replay of seq 1", seq: 1, head: 1, build: func(t *testing.T, d, _ *device) Message {
			d.seq, d.prev = 0, [32]byte{}
			a := d.make(1000) // the same content and key: the same deterministic signature
			return d.msg(a.AppendWire(nil))
		}},
		{name: "tampered meters", want: signer.ErrSignerMismatch, seq: 2, head: 1, build: func(t *testing.T, d, _ *device) Message {
			a := d.make(500)
			a.Meters, a.Modes[0].Meters = 5000, 5000
			return d.msg(a.AppendWire(nil))
		}},
		{name: "tampered batch", want: signer.ErrSignerMismatch, seq: 2, head: 1, build: func(t *testing.T, d, _ *device) Message {
			a := d.make(500)
			a.Batch++
			return d.msg(a.AppendWire(nil))
		}},
		{name: "tampered modes sum", want: signer.ErrModesSum, seq: 2, head: 1, build: func(t *testing.T, d, _ *device) Message {
			a := d.make(500)
			a.Meters = 501
			return d.msg(a.AppendWire(nil))
		}},
		{name: "fork of seq 1", want: ErrFork, seq: 1, head: 1, forks: 1, build: func(t *testing.T, d, _ *device) Message {
			d.seq, d.prev = 0, [32]byte{}
			return d.msg(d.make(1001).AppendWire(nil))
		}},
		{name: "prev not the digest of seq 1", want: signer.ErrPrevMismatch, seq: 2, head: 1, forks: 1, build: func(t *testing.T, d, _ *device) Message {
			return d.msg(d.make(500, func(a *signer.Attestation) { a.Prev[0] ^= 1 }).AppendWire(nil))
		}},
		{name: "meters impossible for span", seq: 2, head: 2, verdict: IneligibleImpossible, build: func(t *testing.T, d, _ *device) Message {
			d.batch++
			return d.msg(d.make(50_001).AppendWire(nil)) // 300 km/h is 50,000 m per batch
		}},
		{name: "at the speed limit", seq: 2, head: 2, build: func(t *testing.T, d, _ *device) Message {
			d.batch++
			return d.msg(d.make(50_000).AppendWire(nil))
		}},
		{name: "meters impossible split over spans of one batch", seq: 2, head: 2, verdict: IneligibleImpossible, build: func(t *testing.T, d, _ *device) Message {
			return d.msg(d.make(49_001).AppendWire(nil)) // seq 1 has 1000 m in this batch
		}},
		{name: "two spans of one batch within the limit", seq: 2, head: 2, build: func(t *testing.T, d, _ *device) Message {
			return d.msg(d.make(49_000).AppendWire(nil))
		}},
		{name: "catch-up span within the limit", seq: 2, head: 2, build: func(t *testing.T, d, _ *device) Message {
			return d.msg(d.make(149_000, func(a *signer.Attestation) { a.Batch++; a.Batches = 3; a.Flags = signer.FlagCatchup }).AppendWire(nil))
		}},
		{name: "catch-up span too fast", seq: 2, head: 2, verdict: IneligibleImpossible, build: func(t *testing.T, d, _ *device) Message {
			return d.msg(d.make(150_001, func(a *signer.Attestation) { a.Batch++; a.Batches = 3; a.Flags = signer.FlagCatchup }).AppendWire(nil))
		}},
		{name: "span before the previous one", seq: 2, head: 2, verdict: IneligibleOrder, build: func(t *testing.T, d, _ *device) Message {
			d.batch--
			return d.msg(d.make(100).AppendWire(nil))
		}},
		{name: "span from the future", seq: 2, head: 2, verdict: IneligibleFuture, build: func(t *testing.T, d, _ *device) Message {
			d.batch = nowBatch() + 2
			return d.msg(d.make(100).AppendWire(nil))
		}},
		{name: "catch-up span ending in the future", seq: 2, head: 2, verdict: IneligibleFuture, build: func(t *testing.T, d, _ *device) Message {
			return d.msg(d.make(100, func(a *signer.Attestation) { a.Batches = 13; a.Flags = signer.FlagCatchup }).AppendWire(nil))
		}},
		{name: "topic names another device", want: ErrTopic, seq: 2, head: 1, replyToOt: true, build: func(t *testing.T, d, other *device) Message {
			return Message{Topic: other.topic("att"), Payload: d.make(100).AppendWire(nil)}
		}},
		{name: "malformed", want: signer.ErrMalformed, seq: 0, head: 1, build: func(t *testing.T, d, _ *device) Message {
			return d.msg([]byte(`{"v":1,"device":"` + d.addr.String() + `"}`))
		}},
		{name: "unknown version", want: signer.ErrUnknownVersion, seq: 0, head: 1, build: func(t *testing.T, d, _ *device) Message {
			w := d.make(100).AppendWire(nil)
			return d.msg(bytes.Replace(w, []byte(`{"v":1,`), []byte(`{"v":2,`), 1))
		}},
		{name: "unknown flag bit", want: signer.ErrUnknownFlags, seq: 2, head: 1, build: func(t *testing.T, d, _ *device) Message {
			a := d.make(100) // Sign refuses unknown flags: set it after
			a.Flags = 0x40
			return d.msg(a.AppendWire(nil))
		}},
	}
}

func forksOf(t testing.TB, l ledger.Ledger, dev signer.Address) int {
	t.Helper()
	n := 0
	err := l.View(func(tx ledger.Tx) error {
		fs, err := tx.Forks()
		for _, f := range fs {
			if f.Device == dev {
				n++
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func headOf(t testing.TB, l ledger.Ledger, dev signer.Address) ledger.Head {
	t.Helper()
	var h ledger.Head
	if err := l.View(func(tx ledger.Tx) (err error) { h, err = tx.Head(dev); return err }); err != nil {
		t.Fatal(err)
	}
	return h
}

func checkAfter(t *testing.T, l ledger.Ledger, d *device, tt attack, seq1 []byte) {
	t.Helper()
	h := headOf(t, l, d.addr)
	if h.Seq != tt.head || h.Attestations != tt.head {
		t.Errorf("head seq %d with %d attestations, want %d", h.Seq, h.Attestations, tt.head)
	}
	if err := l.View(func(tx ledger.Tx) error {
		if _, w, ok := tx.Stored(d.addr, 1); !ok || !bytes.Equal(w, seq1) {
			t.Errorf("seq 1 stored as %s, want the original %s", w, seq1)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n := forksOf(t, l, d.addr); n != tt.forks {
		t.Errorf("%d forks recorded, want %d", n, tt.forks)
	}
	if tt.head == 2 {
		want := tt.verdict
		if want == "" {
			want = Eligible
		}
		if v := verdictOf(t, l, d.addr, 2); v.Code != want || v.Eligible != (want == Eligible) || (!v.Eligible && !strings.HasPrefix(v.Reason, want+": ")) {
			t.Errorf("seq 2 verdict %+v, want code %q", v, want)
		}
	}
}

func verdictOf(t testing.TB, l ledger.Ledger, dev signer.Address, seq uint64) ledger.Verdict {
	t.Helper()
	var v ledger.Verdict
	err := l.View(func(tx ledger.Tx) error {
		var ok bool
		var err error
		v, ok, err = tx.Verdict(dev, seq)
		if err == nil && !ok {
			t.Errorf("device %s seq %d: no verdict", dev, seq)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestAttacks runs each attack through Process: the reply and what is
// stored.
func TestAttacks(t *testing.T) {
	l := newLedger(t, false)
	for _, tt := range attacks() {
		t.Run(tt.name, func(t *testing.T) {
			base := nowBatch() - 10
			d, other := newDevice(t, base), newDevice(t, base)
			c, err := New(l, Config{ChainID: testChainID, Allow: allowSet{d.addr: true}}, testLog(t))
			if err != nil {
				t.Fatal(err)
			}
			seq1 := d.next(1000)
			if rs, err := c.Process([]Message{d.msg(seq1)}); err != nil || len(rs) != 1 || !rs[0].Ack() || rs[0].Seq != 1 {
				t.Fatalf("seq 1: replies %+v, err %v; want an ack of seq 1", rs, err)
			}
			m := tt.build(t, d, other)
			rs, err := c.Process([]Message{m})
			if err != nil {
				t.Fatal(err)
			}
			if len(rs) != 1 {
				t.Fatalf("%d replies %+v, want 1", len(rs), rs)
			}
			r := rs[0]
			to := d
			if tt.replyToOt {
				to = other
			}
			wantTopic := to.topic("ack")
			if tt.want != nil {
				wantTopic = to.topic("nack")
			}
			if r.Topic != wantTopic || r.Seq != tt.seq || !errors.Is(r.Err, tt.want) || (tt.want == nil) != (r.Err == nil) {
				t.Errorf("reply %s seq %d err %v; want %s seq %d err %v", r.Topic, r.Seq, r.Err, wantTopic, tt.seq, tt.want)
			}
			if tt.want != nil && !strings.HasPrefix(string(r.Payload()), fmt.Sprintf(`{"seq":%d,"reason":"%s`, tt.seq, tt.want.Error())) {
				t.Errorf("nack payload %s does not start with the reason %q", r.Payload(), tt.want.Error())
			}
			checkAfter(t, l, d, tt, seq1)
		})
	}
}

// TestAttacksOverMQTT sends each attack as a device would, through a real
// mosquitto, and reads the collector's reply.
func TestAttacksOverMQTT(t *testing.T) {
	broker := mqtttest.Start(t)
	l := newLedger(t, false)
	allow := allowSet{}
	var mu sync.Mutex
	c, err := New(l, Config{ChainID: testChainID, Allow: allowFunc(func(a signer.Address) bool { mu.Lock(); defer mu.Unlock(); return allow[a] })}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	startCollector(t, c, MQTT{Broker: broker.URL(), ClientID: "collector-attacks"})
	for _, tt := range attacks() {
		t.Run(tt.name, func(t *testing.T) {
			base := nowBatch() - 10
			d, other := newDevice(t, base), newDevice(t, base)
			mu.Lock()
			allow[d.addr] = true
			mu.Unlock()
			d.connect(broker.URL())
			other.connect(broker.URL())
			seq1 := d.next(1000)
			if r := d.send(seq1); r != (reply{Kind: "ack", Seq: 1}) {
				t.Fatalf("seq 1: reply %+v, want an ack of seq 1", r)
			}
			m := tt.build(t, d, other)
			to := d
			if tt.replyToOt {
				to = other
			}
			if tok := d.client.Publish(m.Topic, 1, false, m.Payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				t.Fatal(tok.Error())
			}
			var r reply
			select {
			case r = <-to.replies:
			case <-time.After(10 * time.Second):
				t.Fatal("no reply in 10 s")
			}
			if tt.want == nil {
				if r != (reply{Kind: "ack", Seq: tt.head}) {
					t.Errorf("reply %+v, want an ack of seq %d", r, tt.head)
				}
			} else if r.Kind != "nack" || r.Seq != tt.seq || !strings.HasPrefix(r.Reason, tt.want.Error()) {
				t.Errorf("reply %+v, want a nack of seq %d with reason %q...", r, tt.seq, tt.want.Error())
			}
			checkAfter(t, l, d, tt, seq1)
		})
	}
}

type allowFunc func(signer.Address) bool

func (f allowFunc) Allowed(a signer.Address) bool { return f(a) }

// TestNormalFlow: a device uploads its chain; each attestation is stored
// byte for byte and acked with its seq, and a gap is filled in order.
func TestNormalFlow(t *testing.T) {
	broker := mqtttest.Start(t)
	l := newLedger(t, false)
	d := newDevice(t, nowBatch()-20)
	c, err := New(l, Config{ChainID: testChainID, Allow: allowSet{d.addr: true}}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	startCollector(t, c, MQTT{Broker: broker.URL(), ClientID: "collector-normal"})
	d.connect(broker.URL())

	var sent [][]byte
	var meters, eco, sport uint64
	for i := uint64(1); i <= 6; i++ {
		w := d.next(0, func(a *signer.Attestation) {
			a.Meters = 1000 * i
			a.Modes = []signer.ModeMeters{{Mode: "ECO", Meters: 400 * i}, {Mode: "SPORT", Meters: 600 * i}}
		})
		meters, eco, sport = meters+1000*i, eco+400*i, sport+600*i
		d.batch++
		sent = append(sent, w)
		if r := d.send(w); r != (reply{Kind: "ack", Seq: i}) {
			t.Fatalf("seq %d: reply %+v, want an ack of seq %d", i, r, i)
		}
	}
	err = l.View(func(tx ledger.Tx) error {
		for i, w := range sent {
			if _, got, ok := tx.Stored(d.addr, uint64(i+1)); !ok || !bytes.Equal(got, w) {
				t.Errorf("seq %d stored as %q, want %q", i+1, got, w)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Devices) != 1 {
		t.Fatalf("%d devices in stats, want 1", len(s.Devices))
	}
	ds := s.Devices[0]
	if ds.Device != d.addr || ds.Attestations != 6 || ds.Meters != meters || ds.Batches != 6 || ds.Modes["ECO"] != eco || ds.Modes["SPORT"] != sport {
		t.Errorf("stats %+v, want 6 attestations, %d m (ECO %d, SPORT %d) in 6 batches", ds, meters, eco, sport)
	}
	if cs := c.Counts(); cs.Accepted != 6 || cs.Refused != 0 {
		t.Errorf("counts %+v, want 6 accepted, none refused", cs)
	}
}

// TestSharedSubscription: two collectors on one broker and one ledger
// split the load; none is lost and nothing is stored twice.
func TestSharedSubscription(t *testing.T) {
	broker := mqtttest.Start(t)
	l := newLedger(t, false)
	const devices, each = 8, 6
	allow := allowSet{}
	var ds []*device
	for range devices {
		d := newDevice(t, nowBatch()-each-2)
		allow[d.addr] = true
		ds = append(ds, d)
	}
	var cs []*Collector
	for i := range 2 {
		c, err := New(l, Config{ChainID: testChainID, Allow: allow}, testLog(t).With("collector", i))
		if err != nil {
			t.Fatal(err)
		}
		startCollector(t, c, MQTT{Broker: broker.URL(), ClientID: fmt.Sprintf("collector-%d", i)})
		cs = append(cs, c)
	}
	var wg sync.WaitGroup
	for _, d := range ds {
		d.connect(broker.URL())
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := uint64(1); i <= each; i++ {
				w := d.next(100 * i)
				d.batch++
				// The agent resends in order until acked.
				for {
					r := d.send(w)
					if r.Kind == "ack" && r.Seq >= i {
						break
					}
					if r.Kind == "nack" {
						t.Errorf("device %s seq %d: %+v", d.addr, i, r)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	var accepted uint64
	for i, c := range cs {
		n := c.Counts()
		if n.Received == 0 {
			t.Errorf("collector %d received nothing: the load was not split", i)
		}
		accepted += n.Accepted
		t.Logf("collector %d: %+v", i, n)
	}
	if accepted != devices*each {
		t.Errorf("%d stored in all, want %d: each once", accepted, devices*each)
	}
	for _, d := range ds {
		if h := headOf(t, l, d.addr); h.Seq != each || h.Attestations != each {
			t.Errorf("device %s: head %d with %d attestations, want %d", d.addr, h.Seq, h.Attestations, each)
		}
	}
}

// TestDurability: a collector restarted on the same database continues the
// chains: the next seq is acked, an old one is a duplicate, a fork of a
// stored one is refused.
func TestDurability(t *testing.T) {
	broker := mqtttest.Start(t)
	path := t.TempDir() + "/collector.db"
	d := newDevice(t, nowBatch()-10)
	allow := allowSet{d.addr: true}
	d.connect(broker.URL())
	key := collectorKey(t)

	run := func(name string, body func(c *Collector)) {
		l, err := ledger.Open(path, &ledger.Options{ChainID: testChainID})
		if err != nil {
			t.Fatal(err)
		}
		c, err := New(l, Config{ChainID: testChainID, Allow: allow, Signer: key}, testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx, MQTT{Broker: broker.URL(), ClientID: name}) }()
		for !c.Subscribed() {
			time.Sleep(5 * time.Millisecond)
		}
		body(c)
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if err := l.Audit(); err != nil {
			t.Errorf("%s: audit: %v", name, err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	var seq2 []byte
	run("first", func(c *Collector) {
		for i := uint64(1); i <= 3; i++ {
			w := d.next(500)
			if i == 2 {
				seq2 = w
			}
			d.batch++
			if r := d.send(w); r != (reply{Kind: "ack", Seq: i}) {
				t.Fatalf("seq %d: %+v", i, r)
			}
		}
	})
	run("restarted", func(c *Collector) {
		if r := d.send(d.next(600)); r != (reply{Kind: "ack", Seq: 4}) {
			t.Errorf("seq 4 after restart: %+v, want ack 4", r)
		}
		if r := d.send(seq2); r != (reply{Kind: "ack", Seq: 4}) {
			t.Errorf("seq 2 again: %+v, want ack 4 (cumulative)", r)
		}
		d.seq, d.prev = 2, [32]byte{} // a clone of the device rewriting seq 3
		fork := d.make(999)
		if r := d.send(fork.AppendWire(nil)); r.Kind != "nack" || r.Seq != 3 || !strings.HasPrefix(r.Reason, "fork") {
			t.Errorf("fork of seq 3: %+v, want a nack \"fork\"", r)
		}
		if cs := c.Counts(); cs.Accepted != 1 || cs.Duplicates != 1 || cs.Refused != 1 {
			t.Errorf("counts %+v, want 1 accepted, 1 duplicate, 1 refused", cs)
		}
	})
}

// TestMutualTLS: the collector connects with a client certificate to a
// broker that requires one.
func TestMutualTLS(t *testing.T) {
	pki := mqtttest.NewPKI(t)
	broker := mqtttest.Start(t, mqtttest.WithTLS(pki.CAFile, pki.ServerCert, pki.ServerKey, true))
	l := newLedger(t, false)
	d := newDevice(t, nowBatch()-2)
	c, err := New(l, Config{ChainID: testChainID, Allow: allowSet{d.addr: true}}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	cert, key := pki.ClientCert("collector")
	startCollector(t, c, MQTT{Broker: broker.URL(), ClientID: "collector-tls", CAFile: pki.CAFile, CertFile: cert, KeyFile: key})
	if h := headOf(t, l, d.addr); h.Seq != 0 {
		t.Fatal("stored before sending")
	}
	// The device side over TLS too, with its own certificate.
	dc, dk := pki.ClientCert(d.addr.String())
	tlsCfg, err := MQTT{CAFile: pki.CAFile, CertFile: dc, KeyFile: dk}.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	d.connectTLS(broker.URL(), tlsCfg)
	if r := d.send(d.next(100)); r != (reply{Kind: "ack", Seq: 1}) {
		t.Errorf("reply %+v, want ack 1", r)
	}
}

func TestTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		m    MQTT
	}{
		{"missing CA file", MQTT{CAFile: dir + "/nope.crt"}},
		{"cert without key", MQTT{CertFile: dir + "/c.crt"}},
		{"missing cert files", MQTT{CertFile: dir + "/c.crt", KeyFile: dir + "/c.key"}},
	}
	for _, tt := range tests {
		if _, err := tt.m.TLSConfig(); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
	if cfg, err := (MQTT{}).TLSConfig(); cfg != nil || err != nil {
		t.Errorf("no TLS files: %v, %v; want nil, nil", cfg, err)
	}
}

// TestBrokerRestart: after the broker crashes and comes back, the
// collector reconnects, subscribes again and continues the chains.
func TestBrokerRestart(t *testing.T) {
	broker := mqtttest.Start(t)
	l := newLedger(t, false)
	d := newDevice(t, nowBatch()-5)
	c, err := New(l, Config{ChainID: testChainID, Allow: allowSet{d.addr: true}}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	startCollector(t, c, MQTT{Broker: broker.URL(), ClientID: "collector-restart"})
	d.connect(broker.URL())
	if r := d.send(d.next(100)); r != (reply{Kind: "ack", Seq: 1}) {
		t.Fatalf("seq 1: %+v", r)
	}
	d.client.Disconnect(0)
	broker.Stop()
	waitFor(t, "the collector to notice the lost connection", func() bool { return !c.Subscribed() })
	broker.Restart()
	waitFor(t, "the collector to subscribe again", c.Subscribed)
	d.batch++
	d.connect(broker.URL())
	if r := d.send(d.next(200)); r != (reply{Kind: "ack", Seq: 2}) {
		t.Fatalf("seq 2 after the restart: %+v", r)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestBrokerLate: a collector started before its broker keeps trying and
// serves once the broker is up.
func TestBrokerLate(t *testing.T) {
	broker := mqtttest.Start(t)
	broker.Stop()
	l := newLedger(t, false)
	d := newDevice(t, nowBatch()-1)
	c, err := New(l, Config{ChainID: testChainID, Allow: allowSet{d.addr: true}, Signer: collectorKey(t)}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, MQTT{Broker: broker.URL(), ClientID: "collector-late"}) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	time.Sleep(200 * time.Millisecond)
	if c.Subscribed() {
		t.Fatal("subscribed without a broker")
	}
	broker.Restart()
	waitFor(t, "the collector to connect to the late broker", c.Subscribed)
	d.connect(broker.URL())
	if r := d.send(d.next(100)); r != (reply{Kind: "ack", Seq: 1}) {
		t.Fatalf("reply %+v, want ack 1", r)
	}
}
