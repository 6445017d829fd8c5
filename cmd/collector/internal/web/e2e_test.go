//go:build linux

package web

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/csop/tbox/agent/uplink/mqtttest"
	"github.com/csop/tbox/cmd/collector/internal/collect"
	"github.com/csop/tbox/signer"
	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// buildCollector builds the collector binary into dir.
func buildCollector(t *testing.T, dir string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(dir, "collector")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, goBin, "build", "-o", bin, "github.com/csop/tbox/cmd/collector").CombinedOutput(); err != nil {
		t.Fatalf("go build collector: %v\n%s", err, out)
	}
	return bin
}

// logTail keeps a process's stderr and finds a line.
type logTail struct {
	mu    sync.Mutex
	lines []string
	added chan struct{}
}

func (l *logTail) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		l.mu.Lock()
		l.lines = append(l.lines, sc.Text())
		l.mu.Unlock()
		select {
		case l.added <- struct{}{}:
		default:
		}
	}
}

func (l *logTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// wait returns the first submatch of re in a line, waiting up to d.
func (l *logTail) wait(t *testing.T, re *regexp.Regexp, d time.Duration) string {
	t.Helper()
	deadline := time.After(d)
	for {
		l.mu.Lock()
		for _, s := range l.lines {
			if m := re.FindStringSubmatch(s); m != nil {
				l.mu.Unlock()
				return m[1]
			}
		}
		l.mu.Unlock()
		select {
		case <-l.added:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no log line matching %s in %s; log:\n%s", re, d, l)
		}
	}
}

// startCollectorProcess runs the collector binary with cfg until the test
// ends (SIGTERM, then SIGKILL after 10 s) and returns its status page URL.
func startCollectorProcess(t *testing.T, bin, cfg string) string {
	t.Helper()
	cmd := exec.Command(bin, "run", "--config", cfg)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	lt := &logTail{added: make(chan struct{}, 1)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	read := make(chan struct{})
	go func() { lt.read(stderr); close(read) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { <-read; done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("collector exit: %v; log:\n%s", err, lt)
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("collector did not stop within 10 s of SIGTERM; log:\n%s", lt)
		}
		if t.Failed() || testing.Verbose() {
			t.Logf("collector log:\n%s", lt)
		}
	})
	url := lt.wait(t, regexp.MustCompile(`msg="status page listening" http=(http://\S+)/ `), 30*time.Second)
	lt.wait(t, regexp.MustCompile(`msg="(connected and subscribed)"`), 30*time.Second)
	return url
}

// mqttDevice is a T-Box on the broker: its own certificate, its chain.
type mqttDevice struct {
	*device
	client mqtt.Client
	acks   chan uint64
}

func connectDevice(t *testing.T, d *device, url string, tc *tls.Config) *mqttDevice {
	t.Helper()
	md := &mqttDevice{device: d, acks: make(chan uint64, 64)}
	md.client = mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(d.addr.String()).SetTLSConfig(tc).SetCleanSession(true))
	if tok := md.client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("device %s connect: %v", d.addr, tok.Error())
	}
	t.Cleanup(func() { md.client.Disconnect(50) })
	tok := md.client.Subscribe(d.topic("ack"), 1, func(_ mqtt.Client, m mqtt.Message) {
		var seq uint64
		if _, err := fmt.Sscanf(string(m.Payload()), `{"seq":%d`, &seq); err == nil {
			md.acks <- seq
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("device %s subscribe: %v", d.addr, tok.Error())
	}
	return md
}

// attest publishes the next attestation and waits for its receipt.
func (md *mqttDevice) attest(t *testing.T, meters uint64) {
	t.Helper()
	wire := md.next(meters)
	if tok := md.client.Publish(md.topic("att"), 1, false, wire); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	deadline := time.After(60 * time.Second)
	for {
		select {
		case seq := <-md.acks:
			if seq == md.seq {
				return
			}
		case <-deadline:
			t.Fatalf("device %s: no receipt for seq %d in 60 s", md.addr, md.seq)
		}
	}
}

func (md *mqttDevice) health(t *testing.T, payload string) {
	t.Helper()
	if tok := md.client.Publish(md.topic("health"), 0, true, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish health: %v", tok.Error())
	}
}

// TestEndToEnd runs the collector binary against the real mosquitto with
// the shipped configuration (mTLS, ACL, size limit): registered devices
// attest and report health, an unregistered one and a broken report are
// ignored and counted; /metrics and the status page show exactly that,
// and headless Chromium renders the page's device table.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the collector binary")
	}
	pki := mqtttest.NewPKI(t)
	broker := mqtttest.Start(t, mqtttest.WithShippedConfig(pki))
	dir := t.TempDir()
	bin := buildCollector(t, dir)

	start := nowBatch() - 10
	a, b, u := newDevice(t, start), newDevice(t, start+1), newDevice(t, start)
	q := newDevice(t, start) // registered, reports health, never attests
	keyPath := filepath.Join(dir, "signing.key")
	if _, err := signer.GenerateKeyFile(keyPath); err != nil {
		t.Fatal(err)
	}
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("devices.txt", a.addr.String()+"\n"+b.addr.String()+"\n"+q.addr.String()+"\n")
	cert, key := pki.ClientCert("collector-1")
	cfg := write("collector.toml", fmt.Sprintf(`broker = "ssl://%s"
client_id = "collector-1"
ca = %q
cert = %q
key = %q
signing_key = "signing.key"
chain_id = %d
registry = "devices.txt"
db = "collector.db"
seed = "0x%064x"
winners = 10
grace = "0s"
draw_every = "1s"
http = "127.0.0.1:0"
`, broker.Addr(), pki.CAFile, cert, key, testChainID, 7))
	base := startCollectorProcess(t, bin, cfg)

	url := "ssl://" + broker.Addr()
	tlsFor := func(cn string) *tls.Config {
		c, k := pki.ClientCert(cn)
		tc, err := collect.MQTT{CAFile: pki.CAFile, CertFile: c, KeyFile: k}.TLSConfig()
		if err != nil {
			t.Fatal(err)
		}
		return tc
	}
	da := connectDevice(t, a, url, tlsFor(a.addr.String()))
	db := connectDevice(t, b, url, tlsFor(b.addr.String()))
	du := connectDevice(t, u, url, tlsFor(u.addr.String()))
	dq := connectDevice(t, q, url, tlsFor(q.addr.String()))

	da.health(t, `{"status":`) // broken: counted, ignored
	da.health(t, `{"status":"online","device":"`+a.addr.String()+`","agent":{"version":"e2e-a"}}`)
	db.health(t, `{"status":"online","device":"`+b.addr.String()+`","agent":{"version":"e2e-b"}}`)
	du.health(t, `{"status":"online","device":"`+u.addr.String()+`"}`) // not registered
	dq.health(t, `{"status":"online","device":"`+q.addr.String()+`","agent":{"version":"e2e-q"}}`)
	for _, m := range []uint64{1200, 3400, 5600} {
		da.attest(t, m)
	}
	for _, m := range []uint64{700, 800} {
		db.attest(t, m)
	}

	// The counters converge on what was sent (health is QoS 0 but on
	// loopback; a lost one fails the test rather than being waved through).
	var e exposition
	deadline := time.Now().Add(60 * time.Second)
	for {
		e = scrape(t, base)
		if e.samples[`csop_collector_received_total{topic="health"}`] >= 5 && e.samples["csop_collector_stored_total"] >= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics did not reach 5 health reports and 5 stored in 60 s: %v", e.samples)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for k, v := range map[string]float64{
		`csop_collector_received_total{topic="att"}`:                 5,
		`csop_collector_received_total{topic="health"}`:              5,
		`csop_collector_stored_total`:                                5,
		`csop_collector_health_ignored_total{reason="malformed"}`:    1,
		`csop_collector_health_ignored_total{reason="unregistered"}`: 1,
		`csop_collector_subscribed`:                                  1,
		`csop_collector_devices_seen`:                                3,
	} {
		if got := e.get(t, k); got != v {
			t.Errorf("%s = %g, want %g", k, got, v)
		}
	}
	if n := e.histogram(t, "csop_collector_verify_seconds", ""); n != 5 {
		t.Errorf("verify observations %g, want 5", n)
	}

	// The draws of the three closed batches (grace 0, every second).
	var page string
	deadline = time.Now().Add(60 * time.Second)
	for {
		_, page = fetch(t, base+"/")
		if strings.Count(page, `<tr data-batch=`) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page does not list 3 draws after 60 s:\n%s", page)
		}
		time.Sleep(200 * time.Millisecond)
	}
	checkRows := func(t *testing.T, doc string) {
		t.Helper()
		rows := deviceRows(t, doc)
		want := map[string]map[string]string{
			a.addr.String(): {"head (receipted)": "3", "attestations": "3", "eligible": "3", "eligible km": "10.200", "status": "online", "agent": "e2e-a", "forks": "0"},
			b.addr.String(): {"head (receipted)": "2", "attestations": "2", "eligible": "2", "eligible km": "1.500", "status": "online", "agent": "e2e-b", "forks": "0"},
		}
		if len(rows) != len(want) {
			t.Fatalf("%d device rows, want %d: %v", len(rows), len(want), rows)
		}
		for _, r := range rows {
			w, ok := want[r["device"]]
			if !ok {
				t.Errorf("row of device %s, not one that attested", r["device"])
				continue
			}
			for col, v := range w {
				if r[col] != v {
					t.Errorf("device %s column %q = %q, want %q", r["device"], col, r[col], v)
				}
			}
			for _, col := range []string{"last health", "last attestation"} {
				if !strings.HasSuffix(r[col], " ago") {
					t.Errorf("device %s %s = %q, want a time ago", r["device"], col, r[col])
				}
			}
		}
		// q reported health and never attested; u is not registered.
		quiet := tableRows(t, doc, "quiet")
		if len(quiet) != 1 || quiet[0]["device"] != q.addr.String() || quiet[0]["status"] != "online" || quiet[0]["agent"] != "e2e-q" {
			t.Errorf("health without attestations: %v, want device %s only", quiet, q.addr)
		}
	}
	checkRows(t, page)
	if n := strings.Count(page, `<rect class="bar"`); n != 3 {
		t.Errorf("chart: %d bars, want one per batch with km (3)", n)
	}

	t.Run("chromium", func(t *testing.T) { chromiumCheck(t, base+"/", checkRows) })
}
