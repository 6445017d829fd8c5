package uplink_test

import (
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/csop/tbox/agent/uplink"
	"github.com/csop/tbox/agent/uplink/mqtttest"
)

// TestClientIDTakeover: with the shipped broker configuration, nobody but
// the holder of a device's certificate can take its client ID. The device
// is connected with its own certificate; then clients claim its client
// ID with no certificate, with another device's certificate and with a
// collector's, five times each. The device is never disconnected, and a
// client that did connect got its own identity (the broker replaces the
// client ID with the certificate's CN): it still reads nothing of the
// device's (its ack stays the device's alone).
func TestClientIDTakeover(t *testing.T) {
	pki := mqtttest.NewPKI(t)
	b := mqtttest.Start(t, mqtttest.WithShippedConfig(pki))
	url := "ssl://" + b.Addr()
	_, ackT, _, _ := uplink.Topics(device)

	var lost atomic.Int32
	dc, dk := pki.ClientCert(device)
	devOpts := mqtt.NewClientOptions().AddBroker(url).SetClientID(device).SetAutoReconnect(false).
		SetConnectTimeout(5 * time.Second).SetTLSConfig(clientTLS(t, pki.CAFile, dc, dk)).
		SetConnectionLostHandler(func(mqtt.Client, error) { lost.Add(1) })
	dev := mqtt.NewClient(devOpts)
	if tok := dev.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("device connect: %v", tok.Error())
	}
	defer dev.Disconnect(50)

	const other = "0x00000000000000000000000000000000000000b2"
	for _, c := range []struct{ name, cn string }{
		{"no certificate", ""},
		{"another device's certificate", other},
		{"a collector's certificate", "collector-2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			connected := 0
			for i := 0; i < 5; i++ {
				o := mqtt.NewClientOptions().AddBroker(url).SetClientID(device).SetAutoReconnect(false).
					SetConnectTimeout(5 * time.Second)
				if c.cn == "" {
					o.SetTLSConfig(clientTLS(t, pki.CAFile, "", ""))
				} else {
					cert, key := pki.ClientCert(c.cn)
					o.SetTLSConfig(clientTLS(t, pki.CAFile, cert, key))
				}
				got := make(chan []byte, 1)
				cl := mqtt.NewClient(o)
				tok := cl.Connect()
				if tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
					connected++
					// Subscribing to the device's ack is refused by the ACL:
					// no retained or live receipt reaches this client.
					cl.Subscribe(ackT, 1, func(_ mqtt.Client, m mqtt.Message) {
						select {
						case got <- m.Payload():
						default:
						}
					}).WaitTimeout(5 * time.Second)
					select {
					case p := <-got:
						t.Errorf("a client with %s read the device's ack: %q", c.name, p)
					case <-time.After(200 * time.Millisecond):
					}
					cl.Disconnect(50)
				}
				time.Sleep(100 * time.Millisecond)
				if !dev.IsConnectionOpen() || lost.Load() != 0 {
					t.Fatalf("attempt %d with %s: the device was disconnected (lost %d times)", i+1, c.name, lost.Load())
				}
			}
			if c.cn == "" && connected != 0 {
				t.Errorf("%d of 5 clients without a certificate connected", connected)
			}
			t.Logf("%s: %d of 5 connected (as themselves), the device stayed connected", c.name, connected)
		})
	}
	// The broker's log names the clients by their certificates' CNs.
	if !dev.IsConnectionOpen() {
		t.Fatal("device disconnected")
	}
}
