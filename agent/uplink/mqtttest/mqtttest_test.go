package mqtttest_test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"

	"github.com/csop/tbox/agent/uplink/mqtttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// connect returns a connected paho client or the connection error.
func connect(t *testing.T, url, id string, tc *tls.Config) (mqtt.Client, error) {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker(url).SetClientID(id).SetProtocolVersion(4).
		SetAutoReconnect(false).SetConnectTimeout(3 * time.Second).SetTLSConfig(tc)
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(5 * time.Second) {
		t.Fatalf("connect %s: no answer in 5 s", url)
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c, nil
}

// roundTrip publishes on a fresh topic and waits for the message to come back.
func roundTrip(t *testing.T, c mqtt.Client, topic string) {
	t.Helper()
	got := make(chan string, 1)
	if tok := c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case got <- string(m.Payload()):
		default:
		}
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", topic, tok.Error())
	}
	if tok := c.Publish(topic, 1, false, "ping"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
	select {
	case p := <-got:
		if p != "ping" {
			t.Fatalf("payload %q, want %q", p, "ping")
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("message on %s not delivered in 5 s", topic)
	}
}

func TestStartStopRestart(t *testing.T) {
	b := mqtttest.Start(t)
	if want := "tcp://127.0.0.1:"; !strings.HasPrefix(b.URL(), want) {
		t.Fatalf("URL() = %q, want prefix %q", b.URL(), want)
	}
	c, err := connect(t, b.URL(), "first", nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	roundTrip(t, c, "t/1")

	lost := make(chan struct{})
	o := mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("watcher").SetAutoReconnect(false).
		SetConnectionLostHandler(func(mqtt.Client, error) { close(lost) })
	w := mqtt.NewClient(o)
	if tok := w.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("watcher connect: %v", tok.Error())
	}
	b.Stop()
	if b.Running() {
		t.Fatal("Running() after Stop")
	}
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("client did not see the broker die within 5 s")
	}
	if conn, err := net.DialTimeout("tcp", b.Addr(), time.Second); err == nil {
		conn.Close()
		t.Fatalf("%s still accepts connections after Stop", b.Addr())
	}

	port := b.Port()
	b.Restart()
	if b.Port() != port {
		t.Fatalf("Restart moved the port from %d to %d", port, b.Port())
	}
	c2, err := connect(t, b.URL(), "second", nil)
	if err != nil {
		t.Fatalf("connect after restart: %v", err)
	}
	roundTrip(t, c2, "t/2")
}

func TestTwoBrokersDistinctPorts(t *testing.T) {
	a, b := mqtttest.Start(t), mqtttest.Start(t)
	if a.Port() == b.Port() {
		t.Fatalf("two brokers on one port %d", a.Port())
	}
}

func tlsConfig(t *testing.T, caFile, certFile, keyFile string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", caFile)
	}
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, ServerName: "127.0.0.1"}
	if certFile != "" {
		kp, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		tc.Certificates = []tls.Certificate{kp}
	}
	return tc
}

func TestMutualTLS(t *testing.T) {
	pki := mqtttest.NewPKI(t)
	other := mqtttest.NewPKI(t)
	b := mqtttest.Start(t, mqtttest.WithTLS(pki.CAFile, pki.ServerCert, pki.ServerKey, true))
	if want := "ssl://127.0.0.1:"; !strings.HasPrefix(b.URL(), want) {
		t.Fatalf("URL() = %q, want prefix %q", b.URL(), want)
	}
	goodCert, goodKey := pki.ClientCert("good")
	badCert, badKey := other.ClientCert("bad")

	tests := []struct {
		name      string
		tc        *tls.Config
		wantError bool
	}{
		{"client cert from the broker's CA", tlsConfig(t, pki.CAFile, goodCert, goodKey), false},
		{"client cert from another CA", tlsConfig(t, pki.CAFile, badCert, badKey), true},
		{"no client cert", tlsConfig(t, pki.CAFile, "", ""), true},
		{"server not trusted", tlsConfig(t, other.CAFile, goodCert, goodKey), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := connect(t, b.URL(), "c-"+strings.ReplaceAll(tt.name, " ", "-"), tt.tc)
			if tt.wantError {
				if err == nil {
					t.Fatal("connected, want refusal")
				}
				t.Logf("refused as expected: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			roundTrip(t, c, "tls/1")
		})
	}
}
