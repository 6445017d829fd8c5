package rig

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/csop/tbox/agent"
	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/can"
	"github.com/csop/tbox/signer"
	"github.com/csop/tbox/store"
)

// backlogSpans is the backlog's size in attestations by default: about
// 1,700 hours of driving that never reached the backend, a T-Box offline
// for a year or two of a commuter's use (4.6 MB of records, a 10 MB
// outbox.db). TBOX_BACKLOG sets another.
const backlogSpans = 10000

// backlogSize is backlogSpans or TBOX_BACKLOG.
func backlogSize(t *testing.T) int {
	v := os.Getenv("TBOX_BACKLOG")
	if v == "" {
		return backlogSpans
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("TBOX_BACKLOG=%q: want a number of attestations >= 1", v)
	}
	return n
}

// reBacklogMetric reads the guest's measurement line.
var reBacklogMetric = regexp.MustCompile(`^HIL-METRIC backlog_tboxd_vmhwm_kb=(\d+) backlog_tboxd_cpu_ticks=(\d+) backlog_load_s=(\d+) bus_frames=(\d+)$`)

// makeBacklog drives the rig's device for spans ten-minute batches on the
// host, through the same Attester and store tboxd runs, into dir: an
// outbox of at least spans attestations, the last ending a day before
// now. It returns the odometer's high-water mark.
func makeBacklog(t *testing.T, r *Rig, dir string, spans int) (odometer float64) {
	t.Helper()
	key, err := signer.LoadKeyFile(r.Key)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(dir, &store.Options{NoSync: true}) // a test's setup: no power cut here
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	att, err := agent.NewAttester(agent.AttesterConfig{ChainID: ChainID, Profile: r.Profile}, key, st)
	if err != nil {
		t.Fatal(err)
	}
	dur := time.Duration(spans) * 10 * time.Minute
	start := time.Now().UTC().Add(-24*time.Hour - dur).Truncate(10 * time.Minute)
	d := Drive{Seed: 77, Start: start, Duration: dur, NoParking: true, OdometerHz: 1, SpeedHz: 0.2, ModeHz: 0.1}
	truth, err := d.Scenario().Frames(r.Profile, func(f *can.Frame) error { return att.Frame(f) })
	if err != nil {
		t.Fatal(err)
	}
	if err := att.Stop(start.Add(dur)); err != nil {
		t.Fatal(err)
	}
	if got := st.Stats().Depth; got < spans {
		t.Fatalf("backlog of %d attestations, want %d", got, spans)
	}
	return truth.HighWater
}

// TestBacklogDrainUnderLoad measures the benchmark table's "peak RSS at
// full bus load with a backlog draining" (make bench shows its HIL-METRIC
// line) and checks what the owner relies on while it happens.
//
// The backlog: 10,000 attestations made on the host by the same Attester
// and store tboxd runs (makeBacklog), the state directory copied into the
// guest's /tmp/tbox. The load: three cangen processes flooding vcan0 on
// IDs outside the profile as fast as the guest lets them (hundreds of
// times what a physical bus carries; the kernel filter drops them), and
// two more sending the profile's odometer and speed frames every 0.5 ms
// each, up to 4,000 frames/s: a 500 kbit/s bus saturated with nothing but
// the frames tboxd must read. tboxd starts into that with the broker and
// collector up, drains the backlog, and is stopped after the load's fixed
// window, its VmHWM and CPU read from /proc first.
//
// Checked: every attestation reached the collector in order, verified and
// acked, none refused, the backlog's all before the load ended (the span
// tboxd closes at its stop goes after); the socket dropped no frame
// (tboxd's CAN counters at its stop); and tboxd's peak RSS is within the
// 16 MiB budget of issue 8.
func TestBacklogDrainUnderLoad(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	t0 := time.Now()

	spans := backlogSize(t)
	seed := r.Path("backlog")
	odo := makeBacklog(t, r, seed, spans)
	files := map[string]string{}
	ents, err := os.ReadDir(seed)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		files["/seed/"+e.Name()] = filepath.Join(seed, e.Name())
	}
	t.Logf("backlog of %d attestations made on the host in %v (%d files)", spans, since(t0), len(files))

	// The profile's frames at a standstill 1 km past the backlog's
	// odometer: a day later, the car parked since.
	odoFrame, err := r.Profile.Encode(profile.Odometer, odo+1000)
	if err != nil {
		t.Fatal(err)
	}
	spdFrame, err := r.Profile.Encode(profile.Speed, 0)
	if err != nil {
		t.Fatal(err)
	}
	hexID := func(f can.Frame) string { return strconv.FormatUint(uint64(f.ID), 16) }
	hexData := func(f can.Frame) string { return fmt.Sprintf("%X", f.Data[:f.Len]) }

	broker, err := r.StartBroker(ctx)
	if err != nil {
		t.Fatal(err)
	}
	capt, err := r.CaptureMQTT(broker, "mqtt.jsonl", nil)
	if err != nil {
		t.Fatal(err)
	}
	coll, err := r.StartCollector(ctx, broker, CollectorOptions{Quiet: true})
	if err != nil {
		t.Fatal(err)
	}

	// Seconds of load; the drain must end inside it. 10,000 took 17 s over
	// plaintext MQTT and 81 s over the shipped broker's mTLS (tboxd at 79 s
	// of CPU in the 80 s window: the emulated ARM core does TLS and the
	// receipts' signature checks in software), so the window is 2.4x that.
	window := 30 + spans/60
	conf := Tboxd{StateDir: "/tmp/tbox", Upload: true, ShutdownGrace: 5 * time.Second}
	script := ScriptClockSync + `mkdir -p /tmp/tbox && cp /seed/* /tmp/tbox/ && chmod 600 /tmp/tbox/*
tx0=$(cat /sys/class/net/vcan0/statistics/tx_packets)
cangen vcan0 -g 0 -i -I 540 -L 8 -D r &
n1=$!
cangen vcan0 -g 0 -i -e -I 541 -L 8 -D r &
n2=$!
cangen vcan0 -g 0 -i -R -I 220 -L 0 &
n3=$!
renice -n 19 -p $n1 $n2 $n3 > /dev/null
cangen vcan0 -g 0.5 -I ` + hexID(odoFrame) + ` -L 8 -D ` + hexData(odoFrame) + ` &
p1=$!
cangen vcan0 -g 0.5 -I ` + hexID(spdFrame) + ` -L 8 -D ` + hexData(spdFrame) + ` &
p2=$!
echo RIG-LOAD-START
` + ScriptStartTboxd + `c0=$(awk '{print $14+$15}' /proc/$tpid/stat)
sleep ` + strconv.Itoa(window) + `
hwm=$(awk '/^VmHWM/ {print $2}' /proc/$tpid/status)
echo "RIG-RSS $(grep -E '^(VmRSS|RssAnon|RssFile)' /proc/$tpid/status | tr -s ' \t' ' ' | tr '\n' ' ')"
c1=$(awk '{print $14+$15}' /proc/$tpid/stat)
tx1=$(cat /sys/class/net/vcan0/statistics/tx_packets)
echo RIG-LOAD-END
kill $n1 $n2 $n3 $p1 $p2
wait $n1 $n2 $n3 $p1 $p2 2>/dev/null
echo "HIL-METRIC backlog_tboxd_vmhwm_kb=$hwm backlog_tboxd_cpu_ticks=$((c1-c0)) backlog_load_s=` + strconv.Itoa(window) + ` bus_frames=$((tx1-tx0))"
` + ScriptStopTboxd

	var mu sync.Mutex
	var loadEnd time.Time
	keep := func(l string) bool {
		kv := LogFields(l)
		return interesting(l) && !strings.HasPrefix(l, "[") && kv["msg"] != "attested"
	}
	logLine := lineLogger(t, "guest: ", keep)
	g, err := r.Boot(ctx, GuestOptions{Script: script, Tboxd: &conf, Files: files, Broker: broker, CPUs: 2,
		Timeout: 5 * time.Minute, OnLine: func(l string) {
			if l == "RIG-LOAD-END" {
				mu.Lock()
				loadEnd = time.Now()
				mu.Unlock()
			}
			logLine(l)
		}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Wait(); err != nil {
		t.Fatalf("guest: %v", err)
	}
	f := ParseConsole(g.Lines())
	if f.TboxdExit != 0 {
		t.Errorf("tboxd exit %d, want 0", f.TboxdExit)
	}
	total := spans + max(f.Made, 0)
	capt.Wait(ctx, 20*time.Second, func(msgs []Message) bool {
		return Analyze(msgs, r.Device).AckedThrough >= uint64(total)
	})
	if err := coll.Stop(10 * time.Second); err != nil {
		t.Errorf("collector: %v", err)
	}
	capt.Close()
	tr := Analyze(capt.Messages(), r.Device)
	checkDelivery(t, ctx, r, tr)
	if len(tr.Order) != total {
		t.Errorf("%d attestations in the backlog and %d made during the load, the broker carried %d", spans, max(f.Made, 0), len(tr.Order))
	}

	// The drain happened under the load: the backlog's last ack (the
	// span closed at tboxd's stop goes after it) before the load's end.
	var first, lastAck time.Time
	for _, m := range capt.Messages() {
		switch {
		case strings.HasSuffix(m.Topic, "/att") && first.IsZero():
			first = m.Time
		case strings.HasSuffix(m.Topic, "/ack") && lastAck.IsZero():
			var a struct{ Seq uint64 }
			if json.Unmarshal(m.Bytes(), &a) == nil && a.Seq >= uint64(spans) {
				lastAck = m.Time
			}
		}
	}
	mu.Lock()
	end := loadEnd
	mu.Unlock()
	if end.IsZero() || lastAck.IsZero() || !lastAck.Before(end) {
		t.Errorf("backlog acked through %d at %v, the load ended at %v: want the backlog drained under the load", spans, lastAck, end)
	}

	var metric []string
	for _, l := range g.Lines() {
		if m := reBacklogMetric.FindStringSubmatch(l); m != nil {
			metric = m
		}
	}
	if metric == nil {
		t.Fatal("no HIL-METRIC line from the guest")
	}
	hwm, _ := strconv.ParseInt(metric[1], 10, 64)
	if hwm<<10 > 16<<20 {
		t.Errorf("tboxd's peak RSS %d KiB at full bus load with the backlog draining, budget 16 MiB", hwm)
	}
	var frames, dropped int64 = -1, -1
	for _, l := range g.Lines() {
		if kv := LogFields(l); kv["msg"] == "CAN counters" {
			frames, _ = strconv.ParseInt(kv["frames"], 10, 64)
			dropped, _ = strconv.ParseInt(kv["dropped"], 10, 64)
		}
	}
	if frames <= 0 || dropped != 0 {
		t.Errorf("tboxd's CAN counters: %d frames, %d dropped; want frames and no drop", frames, dropped)
	}
	fmt.Printf("HIL-METRIC backlog=%d drain_s=%.2f tboxd_vmhwm_kb=%d tboxd_cpu_s=%.2f profile_frames=%s bus_frames=%s window_s=%d\n",
		total, lastAck.Sub(first).Seconds(), hwm, mustFloat(metric[2])/100, strconv.FormatInt(frames, 10), metric[4], window)
	t.Logf("backlog of %d drained in %v under a full bus (%s frames in %d s, %d of them the profile's, none dropped); tboxd peak RSS %d KiB; whole test %v",
		total, lastAck.Sub(first).Round(time.Millisecond), metric[4], window, frames, hwm, since(t0))
}

func mustFloat(s string) float64 {
	v, _ := strconv.ParseFloat(s, 64)
	return v
}
