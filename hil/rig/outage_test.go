package rig

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/can"
	"github.com/csop/tbox/hil"
	"github.com/csop/tbox/hil/vehicle"
)

// weekOfCommutes returns a week of a commuter's frames, mostly parked: two
// trips a day (leaving between 07:00 and 08:00 and between 17:00 and
// 18:30, 20 to 55 minutes each), one seeded vehicle.Scenario per trip, the
// odometer carried from one trip to the next plus 100 m (moved on a
// ferry, say: credited at the next trip's first reading).
func weekOfCommutes(p *profile.Profile, start time.Time, seed uint64) ([]can.Frame, error) {
	rng := rand.New(rand.NewPCG(seed, 0x3eec))
	var frames []can.Frame
	odo := 0.0
	for day := range 7 {
		for i, leave := range []time.Duration{7 * time.Hour, 17 * time.Hour} {
			at := start.Add(time.Duration(day)*24*time.Hour + leave + time.Duration(rng.Int64N(int64(60+30*i)))*time.Minute)
			d := Drive{Seed: int64(100 + 2*day + i), Start: at, Duration: time.Duration(20+rng.IntN(36)) * time.Minute,
				NoParking: true, OdometerHz: 1, SpeedHz: 1, ModeHz: 0.5}
			sc := d.Scenario()
			sc.StartOdometer = odo
			truth, err := sc.Frames(p, func(f *can.Frame) error {
				frames = append(frames, *f)
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("day %d trip %d: %w", day+1, i+1, err)
			}
			odo = truth.HighWater + 100
		}
	}
	return frames, nil
}

// TestBrokerOutageWeek is scenario 3: the backend unreachable for a
// simulated week, then everything arrives, in order.
//
// The week: a commuter's mostly parked week (weekOfCommutes), made on the
// host as a candump log that ends a day before the host's now, replayed by
// tboxd ([can] replay, replay_pace 0: as fast as the guest goes, the log's
// timestamps as its clock) with its state_dir on the virtio disk.
//
// The outage: the first boot has no network at all (qemu's guestfwd
// connects to the host's broker when qemu starts and refuses to start
// without one, so "broker down" is a boot without the link): tboxd
// attests the whole week into its outbox, cannot upload, and stops at the
// end of the log after its 2 s shutdown_grace; `tboxctl outbox` lists the
// week's attestations on the disk. Then the host starts mosquitto, the
// MQTT capture and the collector, and a second boot on the same disk
// restarts tboxd on the same configuration but a 2-minute shutdown_grace:
// it resumes (the replay skips the frames its state accounts for) and
// uploads the outbox, and stops as soon as it is empty.
//
// Checked: the capture shows every seq first published in order, 1..N,
// and acked through N; the collector stored all N, chained, byte-identical
// to the capture, with no fork (`collector audit`, `tboxctl verify`); the
// outbox is empty at the end; and the meters equal the truth of the
// week's frames (the README §C1 rule applied on the host), in total, per
// drive mode and per batch: a replay's clock is its log, so every frame
// counts in the batch of its own timestamp.
func TestBrokerOutageWeek(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	t0 := time.Now()
	start := time.Now().UTC().Add(-9 * 24 * time.Hour).Truncate(24 * time.Hour)
	frames, err := weekOfCommutes(r.Profile, start, 3)
	if err != nil {
		t.Fatal(err)
	}
	led := NewLedger(r.Profile)
	for i := range frames {
		led.Frame(&frames[i])
	}
	weekLog := r.Path("week.log")
	if err := WriteLog(weekLog, frames, 1); err != nil {
		t.Fatal(err)
	}
	wantMeters, wantModes := led.Meters()
	wantBatches := map[uint64]int64{}
	for _, c := range led.Credits {
		wantBatches[uint64(vehicle.BatchOf(c.Time))] += c.Meters
	}
	t.Logf("the week: %d frames from %s to %s, %d m in %d batches; made in %v",
		len(frames), frames[0].Time.Format(time.DateTime), frames[len(frames)-1].Time.Format(time.DateTime),
		wantMeters, len(wantBatches), since(t0))

	disk := r.Path("disk.img")
	if err := hil.MakeDisk(disk, 64); err != nil {
		t.Fatal(err)
	}
	conf := Tboxd{StateDir: hil.DataDir + "/tbox", Replay: "/drive/week.log", ReplayPace: 0, Upload: true, ShutdownGrace: 2 * time.Second}
	script := ScriptStartTboxd + ScriptWaitTboxd + `tboxctl outbox --state ` + conf.StateDir + ` > /tmp/outbox.jsonl
echo "RIG-OUTBOX-EXIT $? $(wc -l < /tmp/outbox.jsonl)"
`
	files := map[string]string{"/drive/week.log": weekLog}
	keep := func(l string) bool {
		kv := LogFields(l)
		return interesting(l) && !strings.HasPrefix(l, "[") && kv["msg"] != "attested" && kv["msg"] != "mqtt connect failed"
	}

	// The week without a backend.
	t1 := time.Now()
	g, err := r.Boot(ctx, GuestOptions{Script: script, Tboxd: &conf, Files: files, Disk: disk, Timeout: 4 * time.Minute,
		OnLine: lineLogger(t, "guest 1: ", keep)})
	if err != nil {
		t.Fatal(err)
	}
	res1, err := g.Wait()
	if err != nil {
		t.Fatalf("boot 1: %v", err)
	}
	f1 := ParseConsole(g.Lines())
	if f1.TboxdExit != 0 || f1.Made <= 0 || f1.Depth != f1.Made {
		t.Fatalf("boot 1: tboxd exit %d, made %d, outbox depth %d; want 0 and every attestation kept", f1.TboxdExit, f1.Made, f1.Depth)
	}
	if want := fmt.Sprintf("RIG-OUTBOX-EXIT 0 %d", f1.Made); !containsLine(res1.Console, want) {
		t.Errorf("boot 1: want %q: `tboxctl outbox` listing the week's attestations", want)
	}
	offline := time.Since(t1)

	// The backend comes back.
	broker, err := r.StartBroker(ctx)
	if err != nil {
		t.Fatal(err)
	}
	capt, err := r.CaptureMQTT(broker, "mqtt.jsonl", nil)
	if err != nil {
		t.Fatal(err)
	}
	coll, err := r.StartCollector(ctx, broker, CollectorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	conf.ShutdownGrace = 2 * time.Minute
	t2 := time.Now()
	g, err = r.Boot(ctx, GuestOptions{Script: script, Tboxd: &conf, Files: files, Disk: disk, Broker: broker, Timeout: 4 * time.Minute,
		OnLine: lineLogger(t, "guest 2: ", keep)})
	if err != nil {
		t.Fatal(err)
	}
	res2, err := g.Wait()
	if err != nil {
		t.Fatalf("boot 2: %v", err)
	}
	online := time.Since(t2)
	f2 := ParseConsole(g.Lines())
	if f2.TboxdExit != 0 || f2.Depth != 0 {
		t.Errorf("boot 2: tboxd exit %d, outbox depth %d at its stop; want 0 and 0", f2.TboxdExit, f2.Depth)
	}
	if !containsLine(res2.Console, "RIG-OUTBOX-EXIT 0 0") {
		t.Error("boot 2: `tboxctl outbox` still lists attestations")
	}
	total := f1.Made + max(f2.Made, 0)
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
		t.Errorf("tboxd made %d attestations (%d offline, %d after), the broker carried %d", total, f1.Made, f2.Made, len(tr.Order))
	}

	meters, modes := tr.Meters()
	if meters != wantMeters {
		t.Errorf("attested %d m, the week's truth %d m", meters, wantMeters)
	}
	for _, m := range keys(modes, wantModes) {
		if modes[m] != wantModes[m] {
			t.Errorf("drive mode %s: attested %d m, the truth %d m", m, modes[m], wantModes[m])
		}
	}
	got := map[uint64]int64{}
	catchup := 0
	for _, a := range tr.Atts {
		got[a.Batch] += int64(a.Meters)
		if a.Batches > 1 {
			catchup++
		}
	}
	var diff []string
	for b := range union64(got, nil) {
		if got[b] != wantBatches[b] {
			diff = append(diff, fmt.Sprintf("batch %d: %d m, truth %d m", b, got[b], wantBatches[b]))
		}
	}
	for b, m := range wantBatches {
		if _, ok := got[b]; !ok {
			diff = append(diff, fmt.Sprintf("batch %d: nothing attested, truth %d m", b, m))
		}
	}
	slices.Sort(diff)
	for _, d := range diff {
		t.Error(d)
	}
	var first, last time.Time
	for _, m := range capt.Messages() {
		if strings.HasSuffix(m.Topic, "/att") {
			if first.IsZero() {
				first = m.Time
			}
			last = m.Time
		}
	}
	copies := 0
	for _, c := range tr.Copies {
		copies += c - 1
	}
	t.Logf("outage of a week: offline boot %v (replay of %d frames, %d attestations kept, guest ready in %v); online boot %v (guest ready in %v, %d attestations made there), the %d uploaded in %v after the first publish, %d re-published copies, acked through %d; %d m = truth, %d batches, %d CATCHUP spans; flags: %s; whole test %v",
		offline.Round(100*time.Millisecond), len(frames), f1.Made, res1.BootTime.Round(time.Millisecond),
		online.Round(100*time.Millisecond), res2.BootTime.Round(time.Millisecond), max(f2.Made, 0),
		len(tr.Order), last.Sub(first).Round(time.Millisecond), copies, tr.AckedThrough, meters, len(got), catchup, flagCounts(tr.Atts), since(t0))
}
