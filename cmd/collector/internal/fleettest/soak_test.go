//go:build soak

package fleettest

import (
	"context"
	"fmt"
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

// TestSoak (make soak; build tag soak): one collector process on a real
// PostgreSQL behind mosquitto on loopback, devices attesting at
// SOAK_RATE attestations/s (default 17,000: 10x the 1 M-car rate of
// 6 attestations an hour) for SOAK_DURATION (default 10m), signed as they
// go by SOAK_DEVICES devices (default 2,000). It reports the rate reached,
// the p50/p99 receipt latency, and the collector's RSS and threads at the
// first and the last minute, and fails when the RSS grew by more than
// half or the receipts fell behind by more than a minute's worth.
func TestSoak(t *testing.T) {
	mqtttest.Require(t)
	pgBin := pgtest.Require(t)
	rate, _ := strconv.Atoi(envOr("SOAK_RATE", "17000"))
	dur, err := time.ParseDuration(envOr("SOAK_DURATION", "10m"))
	if err != nil {
		t.Fatal(err)
	}
	ndev, _ := strconv.Atoi(envOr("SOAK_DEVICES", "2000"))
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
	cfg := filepath.Join(dir, "c.toml")
	conf := fmt.Sprintf("broker = %q\nclient_id = \"collector-1\"\nsigning_key = %q\nchain_id = %d\ndatabase_url = %q\nseed = \"0x00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"\nlog_level = \"warn\"\n",
		broker.URL(), keyPath, chainID, url)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	type dev struct {
		key  *signer.MemKey
		seq  uint64
		prev [32]byte
		sent sync.Map // seq -> time sent
	}
	devs := make([]*dev, ndev)
	args := []string{"registry", "add", "--config", cfg}
	for i := range devs {
		priv, _ := signer.GenerateScalar()
		k, err := signer.NewMemKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		devs[i] = &dev{key: k}
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
		d := byAddr[parts[2]]
		if d == nil || m.Retained() {
			return
		}
		r, err := signer.ParseReceipt(d.key.Address(), m.Payload())
		if err != nil {
			return
		}
		now := time.Now()
		d.sent.Range(func(k, v any) bool {
			if k.(uint64) <= r.Seq {
				latMu.Lock()
				lat = append(lat, now.Sub(v.(time.Time)))
				latMu.Unlock()
				receipted.Add(1)
				d.sent.Delete(k)
			}
			return true
		})
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

	batch0 := uint64(time.Now().Unix())/600 - 1
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var sent atomic.Int64
	workers := runtime.NumCPU()
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			per := time.Duration(float64(time.Second) * float64(workers) / float64(rate))
			next := time.Now()
			for i := w; ctx.Err() == nil; i += workers {
				d := devs[i%ndev]
				a := &signer.Attestation{V: signer.Version, Device: d.key.Address(), Seq: d.seq + 1, Batch: batch0, Batches: 1, Meters: 0, Prev: d.prev}
				if err := signer.Sign(d.key, chainID, a); err != nil {
					t.Error(err)
					return
				}
				d.seq, d.prev = a.Seq, signer.Digest(chainID, a)
				d.sent.Store(a.Seq, time.Now())
				client.Publish("csop/v1/"+d.key.Address().String()+"/att", 1, false, a.AppendWire(nil))
				sent.Add(1)
				next = next.Add(per)
				if s := time.Until(next); s > 0 {
					time.Sleep(s)
				}
			}
		}()
	}
	// Devices are split between workers by index, so one device's seqs
	// come from one goroutine, in order.
	rss0, thr0 := 0, 0
	ticker := time.NewTicker(time.Minute)
	for first := true; ctx.Err() == nil; {
		select {
		case <-ctx.Done():
		case <-ticker.C:
			rss, thr := procStatus(t, p.cmd.Process.Pid)
			if first {
				rss0, thr0, first = rss, thr, false
			}
			t.Logf("%s: sent %d, receipted %d, collector RSS %d kB, threads %d", time.Since(start).Round(time.Second), sent.Load(), receipted.Load(), rss, thr)
		}
	}
	ticker.Stop()
	wg.Wait()
	rss1, thr1 := procStatus(t, p.cmd.Process.Pid)
	time.Sleep(5 * time.Second)
	elapsed := time.Since(start).Seconds()
	latMu.Lock()
	slices.Sort(lat)
	var p50, p99 time.Duration
	if len(lat) > 0 {
		p50, p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	}
	latMu.Unlock()
	t.Logf("SOAK: device client connections %d", reconnects.Load())
	t.Logf("SOAK: target %d/s, sent %.0f/s, receipted %.0f/s; receipt latency p50 %v, p99 %v; collector RSS %d -> %d kB, threads %d -> %d",
		rate, float64(sent.Load())/elapsed, float64(receipted.Load())/elapsed, p50, p99, rss0, rss1, thr0, thr1)
	if rss0 > 0 && rss1 > rss0*3/2 {
		t.Errorf("collector RSS grew from %d kB to %d kB", rss0, rss1)
	}
	if behind := sent.Load() - receipted.Load(); behind > int64(rate)*60 {
		t.Errorf("%d attestations not receipted at the end: more than a minute behind", behind)
	}
}
