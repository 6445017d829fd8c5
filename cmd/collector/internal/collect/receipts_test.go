package collect

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/csop/tbox/agent/uplink/mqtttest"
	"github.com/csop/tbox/signer"
	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Every reply Process makes is signed as a receipt or refusal that names
// the device and the digest of the attestation concerned.
func TestSignedReplies(t *testing.T) {
	key := collectorKey(t)
	colls := []signer.Address{key.Address()}
	l := newLedger(t, true)
	d := newDevice(t, nowBatch()-5)
	c, err := New(l, Config{ChainID: testChainID, Allow: allowSet{d.addr: true}, Signer: key}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	a1 := d.make(100)
	d.advance(a1)
	d.batch++
	bad := d.make(200)
	bad.Sig[10] ^= 1 // a bad signature: refused
	replies, err := c.Process([]Message{d.msg(a1.AppendWire(nil)), d.msg(bad.AppendWire(nil)), d.msg([]byte("{not json"))})
	if err != nil {
		t.Fatal(err)
	}
	var acks, nacks int
	for _, r := range replies {
		p, err := SignedPayload(key, testChainID, r)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.HasSuffix(r.Topic, "/ack"):
			acks++
			rc, err := signer.ParseReceipt(d.addr, p)
			if err != nil {
				t.Fatalf("ack %s: %v", p, err)
			}
			if _, err := signer.VerifyReceipt(testChainID, rc, colls); err != nil {
				t.Errorf("ack %s: %v", p, err)
			}
			if rc.Seq != 1 || rc.Digest != signer.Digest(testChainID, a1) {
				t.Errorf("ack of seq %d digest 0x%x, want seq 1 with the stored digest", rc.Seq, rc.Digest)
			}
		default:
			nacks++
			rf, err := signer.ParseRefusal(d.addr, p)
			if err != nil {
				t.Fatalf("nack %s: %v", p, err)
			}
			if _, err := signer.VerifyRefusal(testChainID, rf, colls); err != nil {
				t.Errorf("nack %s: %v", p, err)
			}
			switch rf.Seq {
			case bad.Seq:
				if rf.Digest != signer.Digest(testChainID, bad) {
					t.Errorf("nack of seq %d names digest 0x%x, not the refused attestation's", rf.Seq, rf.Digest)
				}
			case 0: // no attestation at all: no digest an agent could match
				if rf.Digest != ([32]byte{}) {
					t.Errorf("nack of unparsable bytes names digest 0x%x, want zero", rf.Digest)
				}
			default:
				t.Errorf("nack of seq %d", rf.Seq)
			}
		}
	}
	if acks != 1 || nacks != 2 {
		t.Errorf("%d acks, %d nacks; want 1 and 2", acks, nacks)
	}

	// A reason longer than a refusal may carry is cut, still signed.
	long := Reply{Topic: d.topic("nack"), Seq: 3, Err: errors.New(strings.Repeat("é", 400))}
	p, err := SignedPayload(key, testChainID, long)
	if err != nil {
		t.Fatal(err)
	}
	rf, err := signer.ParseRefusal(d.addr, p)
	if err != nil || len(rf.Reason) > signer.MaxReasonLen || !strings.HasSuffix(rf.Reason, "...") {
		t.Errorf("long reason: %v, %d bytes", err, len(rf.Reason))
	}
	if _, err := SignedPayload(key, testChainID, Reply{Topic: "csop/v1/nobody/ack", Seq: 1}); err == nil {
		t.Error("a reply to a topic naming no device was signed")
	}
}

func TestFairQueue(t *testing.T) {
	q := newFairQueue()
	for i := 0; i < queuePerDevice+10; i++ {
		q.put(Message{Topic: "a", Payload: []byte{byte(i)}})
	}
	if got := q.takeDropped(); got != 10 {
		t.Errorf("dropped %d of device a's surplus, want 10", got)
	}
	if !q.put(Message{Topic: "b"}) {
		t.Fatal("device b's message dropped because device a floods")
	}
	q.put(Message{Topic: "c"})
	got := q.take(nil, 3)
	if len(got) != 3 || got[0].Topic != "a" || got[1].Topic != "b" || got[2].Topic != "c" {
		t.Errorf("first take %v, want one message of each device in turn", got)
	}
	rest := q.take(nil, 1000)
	if len(rest) != queuePerDevice-1 || q.len() != 0 {
		t.Errorf("rest %d, queue %d", len(rest), q.len())
	}
	for i, m := range append(got[:1], rest...) {
		if m.Payload[0] != byte(i) {
			t.Fatalf("device a's message %d is its #%d: order lost", i, m.Payload[0])
		}
	}
}

// TestFloodDoesNotDelayOthers: on the shipped broker configuration (mTLS,
// the per-device ACL), a registered device floods the collector with 3,000
// bad-signature attestations; another device's attestation is still
// receipted within a second of its unflooded round trip, the receipts are
// retained, and the flooder's replies are bounded.
func TestFloodDoesNotDelayOthers(t *testing.T) {
	pki := mqtttest.NewPKI(t)
	broker := mqtttest.Start(t, mqtttest.WithShippedConfig(pki))
	url := "ssl://" + broker.Addr()
	tlsFor := func(cn string) *tls.Config {
		c, k := pki.ClientCert(cn)
		cfg, err := MQTT{CAFile: pki.CAFile, CertFile: c, KeyFile: k}.TLSConfig()
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	l := newLedger(t, false)
	flooder, honest := newDevice(t, nowBatch()-5), newDevice(t, nowBatch()-5)
	key := collectorKey(t)
	c, err := New(l, Config{ChainID: testChainID, Allow: allowSet{flooder.addr: true, honest.addr: true}, Signer: key}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	cc, ck := pki.ClientCert("collector-1")
	startCollector(t, c, MQTT{Broker: url, ClientID: "collector", CAFile: pki.CAFile, CertFile: cc, KeyFile: ck})
	honest.connectTLS(url, tlsFor(honest.addr.String()))

	fc := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(flooder.addr.String()).SetTLSConfig(tlsFor(flooder.addr.String())))
	if tok := fc.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer fc.Disconnect(50)
	var nackCount sync.Map
	var nacks int64
	var mu sync.Mutex
	fc.Subscribe(flooder.topic("nack"), 1, func(_ mqtt.Client, m mqtt.Message) {
		mu.Lock()
		nacks++
		mu.Unlock()
		nackCount.Store(string(m.Payload()), true)
	}).WaitTimeout(5 * time.Second)

	// One receipt round trip, published once and awaited, no retry.
	receipt := func(seq uint64) time.Duration {
		start := time.Now()
		honest.client.Publish(honest.topic("att"), 1, false, honest.next(100))
		honest.batch++
		for {
			select {
			case r := <-honest.replies:
				if r.Kind != "ack" {
					t.Fatalf("honest seq %d: %+v", seq, r)
				}
				if r.Seq == seq {
					return time.Since(start)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("honest seq %d: no ack in 10 s", seq)
			}
		}
	}
	// The round trip without a flood, on this (possibly busy) machine.
	base := receipt(1)

	badWire := make([][]byte, 3000)
	for i := range badWire {
		a := flooder.make(uint64(i + 1))
		a.Sig[5] ^= 1
		badWire[i] = a.AppendWire(nil)
	}
	floodDone := make(chan struct{})
	go func() {
		defer close(floodDone)
		for _, w := range badWire {
			fc.Publish(flooder.topic("att"), 1, false, w)
		}
	}()
	time.Sleep(50 * time.Millisecond) // the flood is under way
	var worst time.Duration
	for seq := uint64(2); seq <= 4; seq++ {
		worst = max(worst, receipt(seq))
	}
	<-floodDone
	if worst-base > time.Second {
		t.Errorf("an honest device's receipt took %v during the flood, %v without; want at most 1 s more", worst, base)
	}
	t.Logf("honest receipts during a 3,000-message flood: worst %v (%v without a flood)", worst, base)

	// The ack is retained: a device connecting later (a reflashed one)
	// gets the receipt of the stored head at once.
	// The shipped broker makes the client ID the certificate's CN: the
	// late client, with the honest device's certificate, takes its session.
	honest.client.Disconnect(50)
	got := make(chan []byte, 1)
	late := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID("late-" + honest.addr.String()).SetTLSConfig(tlsFor(honest.addr.String())))
	if tok := late.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer late.Disconnect(50)
	late.Subscribe(honest.topic("ack"), 1, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case got <- m.Payload():
		default:
		}
	})
	select {
	case p := <-got:
		rc, err := signer.ParseReceipt(honest.addr, p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := signer.VerifyReceipt(testChainID, rc, []signer.Address{key.Address()}); err != nil || rc.Seq != 4 || rc.Digest != honest.prev {
			t.Errorf("retained receipt %s: %v; want seq 4 with the head's digest", p, err)
		}
	case <-time.After(5 * time.Second):
		t.Error("no retained receipt for a late subscriber")
	}
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if nacks == 0 || nacks > 3000 {
		t.Errorf("flooder got %d nacks", nacks)
	}
	t.Logf("flooder: 3,000 bad messages, %d signed nacks back (%s)", nacks, fmt.Sprint(c.Counts()))
}
