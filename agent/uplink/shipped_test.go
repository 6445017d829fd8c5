package uplink_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/csop/tbox/agent/uplink"
	"github.com/csop/tbox/agent/uplink/mqtttest"
)

// TestShippedBrokerConfig runs the agent's uplink and a collector against
// mosquitto with the shipped configuration (cmd/collector/deploy/mosquitto) over mTLS,
// and tries what the broker must refuse: a client without a certificate,
// a device publishing on another device's att topic, a device forging its
// own ack, a 100 MB retained message on a device's ack topic. The outbox
// keeps everything until the collector's real receipts.
func TestShippedBrokerConfig(t *testing.T) {
	pki := mqtttest.NewPKI(t)
	b := mqtttest.Start(t, mqtttest.WithShippedConfig(pki))
	url := "ssl://" + b.Addr()
	colCert, colKey := pki.ClientCert("collector-1")
	k := newCollector(t, url, false)
	k.tc = clientTLS(t, pki.CAFile, colCert, colKey)
	k.start()

	cert, key := pki.ClientCert(device)
	ob := newMemOutbox()
	ob.add(5)
	u := newUplink(t, uplink.Config{Broker: url, CAFile: pki.CAFile, CertFile: cert, KeyFile: key, AckTimeout: time.Minute}, ob)
	runUplink(t, u)
	waitFor(t, 10*time.Second, "5 attestations at the collector", func() bool { return k.count() >= 5 })
	att, ackT, _, _ := uplink.Topics(device)

	connect := func(t *testing.T, id, cn string) (mqtt.Client, error) {
		o := mqtt.NewClientOptions().AddBroker(url).SetClientID(id).SetConnectTimeout(5 * time.Second).SetAutoReconnect(false).
			SetWriteTimeout(5 * time.Second)
		if cn != "" {
			c, k := pki.ClientCert(cn)
			o.SetTLSConfig(clientTLS(t, pki.CAFile, c, k))
		} else {
			o.SetTLSConfig(clientTLS(t, pki.CAFile, "", ""))
		}
		c := mqtt.NewClient(o)
		tok := c.Connect()
		if !tok.WaitTimeout(10 * time.Second) {
			return nil, errTimeout
		}
		if tok.Error() != nil {
			return nil, tok.Error()
		}
		t.Cleanup(func() { c.Disconnect(50) })
		return c, nil
	}

	t.Run("no client certificate", func(t *testing.T) {
		if _, err := connect(t, "anonymous", ""); err == nil {
			t.Fatal("a client without a certificate connected")
		}
	})

	// Another registered device, with its own certificate.
	const other = "0x00000000000000000000000000000000000000b2"
	oc, err := connect(t, other, other)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("device publishes on another device's att and ack", func(t *testing.T) {
		before := k.count()
		oc.Publish(att, 1, false, wire(999)).WaitTimeout(5 * time.Second)
		oc.Publish(ackT, 1, true, signedAck(t, collectorKey(t), 5)).WaitTimeout(5 * time.Second)
		time.Sleep(300 * time.Millisecond)
		if n := k.count(); n != before {
			t.Errorf("the collector received %d messages published by another device on %s", n-before, att)
		}
		if ob.len() != 5 || len(ob.ackCalls()) != 0 {
			t.Errorf("outbox %d, Ack calls %v: a receipt published by a device was applied", ob.len(), ob.ackCalls())
		}
	})

	t.Run("device forges its own ack", func(t *testing.T) {
		dc, err := connect(t, "forger", device)
		if err != nil {
			t.Fatal(err)
		}
		dc.Publish(ackT, 1, true, signedAck(t, collectorKey(t), 5)).WaitTimeout(5 * time.Second)
		time.Sleep(300 * time.Millisecond)
		if ob.len() != 5 {
			t.Errorf("outbox %d: an ack published with the device's own identity was applied", ob.len())
		}
	})

	t.Run("100 MB retained message", func(t *testing.T) {
		// collector-2's certificate: the broker makes the client ID the
		// certificate's CN, so a second collector-1 would take the running
		// collector's session.
		cc, err := connect(t, "collector-2-big", "collector-2")
		if err != nil {
			t.Fatal(err)
		}
		big := bytes.Repeat([]byte("x"), 100<<20)
		tok := cc.Publish(ackT, 1, true, big)
		big = nil
		if tok.WaitTimeout(10*time.Second) && tok.Error() == nil && cc.IsConnectionOpen() {
			// The broker closes the connection of a publisher over the
			// limit; give it a moment.
			time.Sleep(300 * time.Millisecond)
		}
		if cc.IsConnectionOpen() {
			t.Error("the broker kept the connection of a client publishing 100 MB")
		}
		// Nothing was retained: a new subscriber gets nothing.
		sub, err := connect(t, "collector-2-sub", "collector-2")
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan int, 4)
		sub.Subscribe("csop/v1/+/ack", 1, func(_ mqtt.Client, m mqtt.Message) { got <- len(m.Payload()) })
		select {
		case n := <-got:
			t.Errorf("a retained ack of %d bytes was kept", n)
		case <-time.After(500 * time.Millisecond):
		}
		if !strings.Contains(b.Log(), "collector-2") {
			t.Logf("broker log:\n%s", b.Log())
		}
	})

	if ob.len() != 5 {
		t.Fatalf("outbox %d after the attacks, want all 5 kept", ob.len())
	}
	// The real collector's receipts drain it.
	k.setAcking(true)
	waitFor(t, 10*time.Second, "the outbox to drain on real receipts", func() bool { return ob.len() == 0 })
	if st := u.Stats(); !st.Connected || st.LastAcked != 5 {
		t.Errorf("Stats %+v", st)
	}
}

var errTimeout = mqttTimeout{}

type mqttTimeout struct{}

func (mqttTimeout) Error() string { return "no CONNACK in 10 s" }
