//go:build soak

package fleettest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/csop/tbox/agent/uplink/mqtttest"
	"github.com/csop/tbox/cmd/collector/internal/ledger/pgledger/pgtest"
	"github.com/csop/tbox/signer"
	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// envOr reads a knob of the soak.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// procStatus reads VmRSS (kB) and Threads of pid from /proc.
func procStatus(t *testing.T, pid int) (rssKB, threads int) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "VmRSS:" {
			rssKB, _ = strconv.Atoi(f[1])
		}
		if len(f) >= 2 && f[0] == "Threads:" {
			threads, _ = strconv.Atoi(f[1])
		}
	}
	return
}

// goroutines reads go_goroutines from the collector's /metrics; -1 when
// it cannot.
func goroutines(addr string) int {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int(n)
		}
	}
	return -1
}

// sample is the collector seen at one minute of the soak.
type sample struct {
	at                   time.Duration
	sent, receipted      int64
	rssKB, threads, gors int
}

// TestSoak (make soak; build tag soak): one collector process on a real
// PostgreSQL behind mosquitto on loopback, SOAK_DEVICES devices (default
// 2,000) attesting at SOAK_RATE attestations/s in all (default 17,000:
// 10x the 1 M-car rate of 6 attestations an hour) for SOAK_DURATION
// (default 10m), signed as they go. Like an agent, a device has at most
// SOAK_WINDOW attestations (default 16) not yet receipted: a collector
// slower than the offered rate shows as a lower rate sustained, not as
// messages dropped by the broker's queue and chains stalled on the gaps.
//
// It reports, per minute and at the end: the rate offered, sent and
// receipted (the rate sustained is the receipts from the first minute to
// the end), the p50/p99/max receipt latency (publish to the receipt that
// covers it), and the collector's RSS, threads and goroutines (go_goroutines
// from its /metrics) at the first minute and at the end. It fails when the
// RSS grew by more than half or the goroutines by more than 20 after the
// first minute, or when the receipts stalled for a minute.
func TestSoak(t *testing.T) {
	mqtttest.Require(t)
	pgBin := pgtest.Require(t)
	rate, _ := strconv.Atoi(envOr("SOAK_RATE", "17000"))
	dur, err := time.ParseDuration(envOr("SOAK_DURATION", "10m"))
	if err != nil {
		t.Fatal(err)
	}
	ndev, _ := strconv.Atoi(envOr("SOAK_DEVICES", "2000"))
	window, _ := strconv.Atoi(envOr("SOAK_WINDOW", "16"))
	if rate <= 0 || ndev <= 0 || window <= 0 || dur < 2*time.Minute {
		t.Fatalf("SOAK_RATE %d, SOAK_DEVICES %d, SOAK_WINDOW %d must be positive and SOAK_DURATION %v at least 2m", rate, ndev, window, dur)
	}
	dir := t.TempDir()
	bin := buildCollector(t, dir)
	pg, err := pgtest.NewWith(pgBin, pgtest.Options{Fsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Stop()
	url, err := pg.CreateDB()
	if err != nil {
		t.Fatal(err)
	}
	broker := mqtttest.Start(t, mqtttest.WithConfig("max_queued_messages 100000"))
	keyPath := filepath.Join(dir, "signing.key")
	if _, err := signer.GenerateKeyFile(keyPath); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := ln.Addr().String()
	ln.Close()
	cfg := filepath.Join(dir, "c.toml")
	conf := fmt.Sprintf("broker = %q\nclient_id = \"collector-1\"\nsigning_key = %q\nchain_id = %d\ndatabase_url = %q\nhttp = %q\nseed = \"0x00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"\nlog_level = \"warn\"\n",
		broker.URL(), keyPath, chainID, url, httpAddr)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	type dev struct {
		key   *signer.MemKey
		topic string
		seq   uint64 // last sent; its worker's alone
		prev  [32]byte
		acked atomic.Uint64 // highest seq receipted
		mu    sync.Mutex
		sent  map[uint64]time.Time // seq -> when published, until receipted
	}
	devs := make([]*dev, ndev)
	args := []string{"registry", "add", "--config", cfg}
	for i := range devs {
		priv, _ := signer.GenerateScalar()
		k, err := signer.NewMemKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		devs[i] = &dev{key: k, topic: "csop/v1/" + k.Address().String() + "/att", sent: map[uint64]time.Time{}}
		args = append(args, k.Address().String())
	}
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("registry add: %v\n%s", err, out)
	}
	p := startCollector(t, bin, cfg)
	defer func() {
		p.stop()
		if t.Failed() {
			t.Logf("collector log:\n%s", p)
		}
	}()

	var latMu sync.Mutex
	var lat []time.Duration
	var receipted atomic.Int64
	byAddr := map[string]*dev{}
	for _, d := range devs {
		byAddr[d.key.Address().String()] = d
	}
	onAck := func(_ mqtt.Client, m mqtt.Message) {
		parts := strings.Split(m.Topic(), "/")
		if len(parts) != 4 || m.Retained() {
			return
		}
		d := byAddr[parts[2]]
		if d == nil {
			return
		}
		r, err := signer.ParseReceipt(d.key.Address(), m.Payload())
		if err != nil {
			return
		}
		now := time.Now()
		var got []time.Duration
		d.mu.Lock()
		for seq, at := range d.sent {
			if seq <= r.Seq {
				got = append(got, now.Sub(at))
				delete(d.sent, seq)
			}
		}
		d.mu.Unlock()
		for old := d.acked.Load(); r.Seq > old && !d.acked.CompareAndSwap(old, r.Seq); old = d.acked.Load() {
		}
		latMu.Lock()
		lat = append(lat, got...)
		latMu.Unlock()
		receipted.Add(int64(len(got)))
	}
	var reconnects atomic.Int64
	// The devices' client resubscribes at each (re)connection: a clean
	// session loses its subscriptions.
	client := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker.URL()).SetClientID("soak-devices").SetCleanSession(true).
		SetOnConnectHandler(func(c mqtt.Client) {
			reconnects.Add(1)
			c.Subscribe("csop/v1/+/ack", 1, onAck).WaitTimeout(10 * time.Second)
		}))
	if tok := client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer client.Disconnect(50)
	for deadline := time.Now().Add(30 * time.Second); goroutines(httpAddr) < 0; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no /metrics on %s in 30 s", httpAddr)
		}
	}

	batch0 := uint64(time.Now().Unix())/600 - 1
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var sent, windowFull atomic.Int64
	workers := runtime.NumCPU()
	var wg sync.WaitGroup
	start := time.Now()
	// Devices are split between workers by index, so one device's seqs
	// come from one goroutine, in order.
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			per := time.Duration(float64(time.Second) * float64(workers) / float64(rate))
			next := time.Now()
			blocked := 0
			for i := w; ctx.Err() == nil; i += workers {
				d := devs[i%ndev]
				if d.seq-d.acked.Load() >= uint64(window) {
					windowFull.Add(1)
					if blocked++; blocked >= ndev/workers { // a whole round waits on receipts
						time.Sleep(time.Millisecond)
						blocked = 0
					}
					continue
				}
				blocked = 0
				a := &signer.Attestation{V: signer.Version, Device: d.key.Address(), Seq: d.seq + 1, Batch: batch0, Batches: 1, Meters: 0, Prev: d.prev}
				if err := signer.Sign(d.key, chainID, a); err != nil {
					t.Error(err)
					return
				}
				d.seq, d.prev = a.Seq, signer.Digest(chainID, a)
				d.mu.Lock()
				d.sent[a.Seq] = time.Now()
				d.mu.Unlock()
				client.Publish(d.topic, 1, false, a.AppendWire(nil))
				sent.Add(1)
				next = next.Add(per)
				now := time.Now()
				if s := next.Sub(now); s > 0 {
					time.Sleep(s)
				} else if s < -time.Second {
					next = now // behind by more than a second: no burst to catch up
				}
			}
		}()
	}
	take := func() sample {
		rss, thr := procStatus(t, p.cmd.Process.Pid)
		return sample{at: time.Since(start), sent: sent.Load(), receipted: receipted.Load(), rssKB: rss, threads: thr, gors: goroutines(httpAddr)}
	}
	var samples []sample
	ticker := time.NewTicker(time.Minute)
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-ticker.C:
			s := take()
			prev := sample{}
			if len(samples) > 0 {
				prev = samples[len(samples)-1]
			}
			samples = append(samples, s)
			secs := (s.at - prev.at).Seconds()
			t.Logf("%s: sent %d (%.0f/s), receipted %d (%.0f/s), window full %d times; collector RSS %d kB, threads %d, goroutines %d",
				s.at.Round(time.Second), s.sent, float64(s.sent-prev.sent)/secs, s.receipted, float64(s.receipted-prev.receipted)/secs,
				windowFull.Load(), s.rssKB, s.threads, s.gors)
		}
	}
	ticker.Stop()
	wg.Wait()
	end := take()
	inflight := end.sent - end.receipted
	// The receipts of what is in flight, for the latency of the last ones.
	for deadline := time.Now().Add(30 * time.Second); receipted.Load() < end.sent && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	latMu.Lock()
	slices.Sort(lat)
	var p50, p99, pmax time.Duration
	if len(lat) > 0 {
		p50, p99, pmax = lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
	}
	latMu.Unlock()
	if len(samples) == 0 {
		t.Fatal("no minute sampled")
	}
	first := samples[0]
	steady := float64(end.receipted-first.receipted) / (end.at - first.at).Seconds()
	t.Logf("SOAK: device client connections %d; %d in flight at the end, %d not receipted 30 s later", reconnects.Load(), inflight, end.sent-receipted.Load())
	t.Logf("SOAK: target %d/s from %d devices (window %d), %v; sent %.0f/s, receipted %.0f/s over the run, %.0f/s sustained from minute 1 to the end (target reached: %v)",
		rate, ndev, window, dur, float64(end.sent)/end.at.Seconds(), float64(end.receipted)/end.at.Seconds(), steady, steady >= 0.98*float64(rate))
	t.Logf("SOAK: receipt latency p50 %v, p99 %v, max %v over %d receipts", p50.Round(time.Millisecond), p99.Round(time.Millisecond), pmax.Round(time.Millisecond), len(lat))
	t.Logf("SOAK: collector RSS %d -> %d kB, threads %d -> %d, goroutines %d -> %d (minute 1 -> end)",
		first.rssKB, end.rssKB, first.threads, end.threads, first.gors, end.gors)
	if end.rssKB > first.rssKB*3/2 {
		t.Errorf("collector RSS grew from %d kB to %d kB", first.rssKB, end.rssKB)
	}
	if first.gors < 0 || end.gors < 0 || end.gors > first.gors+20 {
		t.Errorf("collector goroutines %d at minute 1, %d at the end", first.gors, end.gors)
	}
	for i := 1; i < len(samples); i++ {
		if samples[i].receipted == samples[i-1].receipted {
			t.Errorf("no receipt between %v and %v", samples[i-1].at.Round(time.Second), samples[i].at.Round(time.Second))
		}
	}
}
