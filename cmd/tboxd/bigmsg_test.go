package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/csop/tbox/agent/uplink"
	"github.com/csop/tbox/agent/uplink/mqtttest"
	"github.com/csop/tbox/hil/vehicle"
)

// maxHWM bounds tboxd's peak RSS while someone tries to hand it a huge
// message: the T-Box has 256 MiB for everything.
const maxHWM = 32 << 20

// TestHugeAckRefusedRSSBounded: with the shipped broker configuration over
// mTLS, a client allowed to write a device's ack topic (a collector's
// certificate) publishes 100 MB, retained, while the real tboxd is
// connected and subscribed. The broker refuses it (message_size_limit) and
// drops the publisher; tboxd stays connected, its peak RSS (VmHWM) stays
// under 32 MiB, and again after a restart (the reconnect at which a
// retained message would be delivered: none is).
func TestHugeAckRefusedRSSBounded(t *testing.T) {
	r := newRig(t)
	pki := mqtttest.NewPKI(t)
	b := mqtttest.Start(t, mqtttest.WithShippedConfig(pki))
	url := "ssl://" + b.Addr()
	devCert, devKey := pki.ClientCert(r.device)
	d := filepath.Join(r.dir, "drive")
	if err := os.MkdirAll(d, 0o700); err != nil {
		t.Fatal(err)
	}
	drive, _ := writeDrive(t, d, vehicle.Scenario{Seed: 41, Start: pastStart(time.Hour), Duration: 20 * time.Minute, Noise: 1, SpeedHz: 10})
	conf := filepath.Join(r.dir, "tboxd-tls.toml")
	// No collector runs (nothing here needs receipts); the replay at 40x
	// keeps tboxd up for 30 s, longer than the test needs.
	err := os.WriteFile(conf, []byte(fmt.Sprintf(`profile = %q
key = %q
state_dir = "state"
chain_id = 20220807
shutdown_grace = "3s"

[can]
replay = %q
replay_pace = 40

[mqtt]
broker = %q
ca_file = %q
cert_file = %q
key_file = %q
health_interval = "1s"
collector_addresses = [%q]

[log]
level = "info"
`, evProfile(t), r.key, drive, url, pki.CAFile, devCert, devKey, r.col.addr)), 0o600)
	if err != nil {
		t.Fatal(err)
	}

	t0 := time.Now()
	a := r.startAgent(conf)
	if _, ok := a.waitLine(reConnected, time.Time{}, 20*time.Second); !ok {
		t.Fatal("tboxd did not connect to the shipped broker over mTLS")
	}
	base := vmHWM(t, a.cmd.Process.Pid)

	_, ackT, _, _ := uplink.Topics(r.device)
	cc, ck := pki.ClientCert("collector-1")
	kp, err := tls.LoadX509KeyPair(cc, ck)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(pki.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID("big").SetAutoReconnect(false).
		SetWriteTimeout(20 * time.Second).
		SetTLSConfig(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{kp}, MinVersion: tls.VersionTLS12, ServerName: "127.0.0.1"}))
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher connect: %v", tok.Error())
	}
	defer pub.Disconnect(50)
	connectedAt := time.Now()
	tok := pub.Publish(ackT, 1, true, bytes.Repeat([]byte{'x'}, 100<<20))
	tok.WaitTimeout(30 * time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for pub.IsConnectionOpen() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if pub.IsConnectionOpen() {
		t.Error("the broker kept the connection of a client publishing 100 MB")
	}
	time.Sleep(time.Second)
	select {
	case <-a.done:
		t.Fatalf("tboxd exited after the 100 MB publish:\n%s", tail(a.stderr(), 30))
	default:
	}
	if l, ok := a.waitLine(reLost, connectedAt, 0); ok {
		t.Errorf("tboxd lost its connection: %s", l.text)
	}
	hwm1 := vmHWM(t, a.cmd.Process.Pid)
	t.Logf("connected, published and checked in %v", time.Since(t0).Round(time.Millisecond))

	// A restart: tboxd connects and subscribes again, where a retained
	// 100 MB message would be delivered.
	_ = a.cmd.Process.Signal(os.Interrupt)
	if code := a.wait(30 * time.Second); code != 0 {
		t.Fatalf("tboxd exit status %d after SIGINT", code)
	}
	t.Logf("stopped at %v", time.Since(t0).Round(time.Millisecond))
	a = r.startAgent(conf)
	if _, ok := a.waitLine(reConnected, time.Time{}, 20*time.Second); !ok {
		t.Fatal("tboxd did not reconnect")
	}
	time.Sleep(2 * time.Second)
	hwm2 := vmHWM(t, a.cmd.Process.Pid)
	_ = a.cmd.Process.Signal(os.Interrupt)
	code2 := a.wait(30 * time.Second)
	t.Logf("second run ended (status %d) at %v", code2, time.Since(t0).Round(time.Millisecond))

	t.Logf("tboxd VmHWM: %.2f MiB connected, %.2f MiB after the 100 MB publish, %.2f MiB after a restart (bound %d MiB)",
		mib(base), mib(hwm1), mib(hwm2), maxHWM>>20)
	for _, h := range []int64{hwm1, hwm2} {
		if h >= maxHWM {
			t.Errorf("tboxd VmHWM %.2f MiB, want under %d MiB", mib(h), maxHWM>>20)
		}
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// vmHWM reads a process's peak resident set size from /proc.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("/proc/%d/status: no VmHWM", pid)
	return 0
}
