package rig

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/csop/tbox/can"
	"github.com/csop/tbox/hil"
	"github.com/csop/tbox/signer"
)

// cutPace is the pace of the power-cut drive (vsim's frames, replayed by
// canplayer, and tboxd's can.time_scale).
const cutPace = 240

// The moments of a power cut.
const (
	cutBoot     = "boot"     // a delay after qemu starts: kernel boot, module load, the mount of /data, tboxd opening its store
	cutStarted  = "started"  // just after tboxd logs "tboxd started": the uplink connecting, the first frames
	cutPlay     = "play"     // a random moment of the drive
	cutAttested = "attested" // just after the n-th new attestation of the boot: durable, its upload in flight
	cutAcked    = "acked"    // just after the collector's n-th new ack: the outbox trimming
)

type cutPlan struct {
	kind  string
	n     int
	delay time.Duration
}

func (c cutPlan) String() string {
	switch c.kind {
	case cutAttested, cutAcked:
		return fmt.Sprintf("%s #%d +%v", c.kind, c.n, c.delay.Round(time.Millisecond))
	}
	return fmt.Sprintf("%s +%v", c.kind, c.delay.Round(time.Millisecond))
}

// planPowerCuts returns 20 cuts, the same for a seed: the first after the
// collector acked the first attestation (so that the chain's first
// odometer reading is on the T-Box's flash), the others shuffled.
func planPowerCuts(rng *rand.Rand) []cutPlan {
	dur := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(rng.Int64N(int64(hi-lo))) }
	var plan []cutPlan
	for range 4 {
		plan = append(plan, cutPlan{kind: cutBoot, delay: dur(300*time.Millisecond, 5*time.Second)})
	}
	for range 4 {
		plan = append(plan, cutPlan{kind: cutStarted, delay: dur(0, 400*time.Millisecond)})
	}
	for range 4 {
		plan = append(plan, cutPlan{kind: cutPlay, delay: dur(200*time.Millisecond, 3*time.Second)})
	}
	for range 4 {
		plan = append(plan, cutPlan{kind: cutAttested, n: 1 + rng.IntN(2), delay: dur(0, 30*time.Millisecond)})
	}
	for range 3 {
		plan = append(plan, cutPlan{kind: cutAcked, n: 1 + rng.IntN(2), delay: dur(0, 50*time.Millisecond)})
	}
	rng.Shuffle(len(plan), func(i, j int) { plan[i], plan[j] = plan[j], plan[i] })
	return append([]cutPlan{{kind: cutAcked, n: 1, delay: dur(0, 200*time.Millisecond)}}, plan...)
}

// bootFigure is one boot of the power-cut drive.
type bootFigure struct {
	cut      string
	clock    time.Time     // the guest's clock at boot
	alive    time.Duration // qemu's start to the cut
	started  bool          // tboxd logged "tboxd started"
	played   time.Duration // of driving played before the cut (estimated)
	attested int
	resumed  string // tboxd's "resumed" head, "-" for a fresh start
	outcome  string
}

// TestPowerCuts is scenario 2: 20 power cuts (SIGKILL of qemu) at seeded
// moments during a drive, tboxd live on vcan0 with its state_dir on the
// virtio disk (cache=writethrough), uploading to mosquitto and the
// collector on the host; then a last boot drives on to the end and stops
// tboxd cleanly.
//
// The drive: vsim cannot start mid-drive (a seed makes a whole drive from
// its start), so the host generates the seeded drive's frames once and
// each boot gets, as a candump log, the next 30 minutes from where the
// previous boot's player was when the power went (estimated from the
// console: the time since "RIG-PLAY-START" times the pace); canplayer
// (can-utils) plays it onto vcan0 at cutPace (the log's times are
// compressed on the host) while tboxd runs with can.time_scale = cutPace.
// The frames played after a cut and before the estimate are lost with the
// power, as a car drives on while its T-Box is dead.
//
// The clock: each boot's guest clock is set past the compressed time the
// previous boot can have reached (its "tboxd started" time plus the wall
// time since, times the pace), so that tboxd's time never runs backwards
// across a cut, as a T-Box with a real-time clock would see it; clocksync
// marks it synchronized.
//
// Checked at the end: every boot but the last was cut; nothing is lost or
// duplicated: the collector's store holds seq 1..N chained, no fork, each
// stored attestation byte-identical to what the MQTT capture carried, each
// seq first published in order and acked; `collector audit` and `tboxctl
// verify` agree; the last tboxd stops with an empty outbox; and the meters
// sum to the truth of what was played: distance derives from the absolute
// odometer, so the total is floor(last reading) - floor(first reading),
// whatever the cuts lost of the frames between.
//
// HIL_POWERCUT_SEED changes the seed of the cut plan (default 1).
func TestPowerCuts(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	t0 := time.Now()
	seed := uint64(1)
	if s := os.Getenv("HIL_POWERCUT_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("HIL_POWERCUT_SEED=%q: want an unsigned integer", s)
		}
		seed = v
	}
	rng := rand.New(rand.NewPCG(seed, 0xc07))
	plan := planPowerCuts(rng)

	// The drive: one trip, no parked periods, 2 odometer and speed frames
	// and 1 drive-mode frame a second.
	drive := Drive{Seed: 12, Start: time.Date(2026, 2, 2, 7, 0, 0, 0, time.UTC), Duration: 10 * time.Hour,
		NoParking: true, OdometerHz: 2, SpeedHz: 2, ModeHz: 1}
	var frames []can.Frame
	if _, err := drive.Scenario().Frames(r.Profile, func(f *can.Frame) error {
		frames = append(frames, *f)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	const part = 30 * time.Minute
	partFrom := func(i int, d time.Duration) int {
		end := frames[i].Time.Add(d)
		return i + sort.Search(len(frames)-i, func(k int) bool { return !frames[i+k].Time.Before(end) })
	}

	broker, err := r.StartBroker(ctx)
	if err != nil {
		t.Fatal(err)
	}
	capt, err := r.CaptureMQTT(broker, "mqtt.jsonl", nil)
	if err != nil {
		t.Fatal(err)
	}
	coll, err := r.StartCollector(ctx, broker, CollectorOptions{Grace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	disk := r.Path("disk.img")
	if err := hil.MakeDisk(disk, 64); err != nil {
		t.Fatal(err)
	}
	conf := &Tboxd{StateDir: hil.DataDir + "/tbox", TimeScale: cutPace, Upload: true, ShutdownGrace: 30 * time.Second}
	script := func(final bool) string {
		s := ScriptClockSync + ScriptStartTboxd + `echo "RIG-PLAY-START"
taskset 2 canplayer -I /drive/part.log vcan0=` + Bus + `
echo "RIG-PLAY-EXIT $?"
`
		if !final {
			return s + "sleep 600\n"
		}
		return s + ScriptStopTboxd + `tboxctl outbox --state ` + conf.StateDir + ` > /tmp/outbox.jsonl
echo "RIG-OUTBOX-EXIT $? $(wc -l < /tmp/outbox.jsonl)"
`
	}

	var (
		figs     []bootFigure
		cuts     int
		pos      int // the next frame to play
		firstPos = -1
		lastPos  int
		clock    = time.Now().Add(-30 * time.Hour).Truncate(time.Second)
	)
	for bootN := 1; bootN <= len(plan)+1; bootN++ {
		final := bootN == len(plan)+1
		if pos >= len(frames) {
			t.Fatalf("boot %d: the drive is over: make it longer", bootN)
		}
		end := partFrom(pos, part)
		if final {
			end = partFrom(pos, 40*time.Minute)
		}
		partLog := r.Path(fmt.Sprintf("part-%02d.log", bootN))
		if err := WriteLog(partLog, frames[pos:end], cutPace); err != nil {
			t.Fatal(err)
		}
		var (
			mu              sync.Mutex
			hStarted, hPlay time.Time
			started         time.Time                                               // guest time of "tboxd started"
			published       = uint64(len(Analyze(capt.Messages(), r.Device).Order)) // an ack beyond it is for this boot
			bootStart       = time.Now()
			seenAttested    int
			resumed         = "-"
		)
		onLine := func(l string) {
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			switch {
			case l == "RIG-PLAY-START":
				hPlay = now
			case strings.HasPrefix(l, "time="):
				kv := LogFields(l)
				switch kv["msg"] {
				case "tboxd started":
					hStarted = now
					started, _ = time.Parse(time.RFC3339Nano, kv["time"])
				case "attested":
					seenAttested++
				case "resumed":
					resumed = kv["head"]
				}
			}
			if interesting(l) && !strings.HasPrefix(l, "[") {
				t.Logf("guest %d: %s", bootN, l)
			}
		}
		g, err := r.Boot(ctx, GuestOptions{
			Script: script(final), Tboxd: conf, Files: map[string]string{"/drive/part.log": partLog},
			Broker: broker, Disk: disk, Clock: clock, Timeout: 3 * time.Minute, OnLine: onLine,
		})
		if err != nil {
			t.Fatal(err)
		}
		ended := make(chan struct{})
		var (
			res  *hil.Result
			werr error
		)
		go func() { res, werr = g.Wait(); close(ended) }()

		fig := bootFigure{clock: clock}
		if final {
			fig.cut = "none (final)"
			<-ended
		} else {
			cut := plan[bootN-1]
			fig.cut = cut.String()
			wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			var trig error
			isLog := func(msg string) func(string) bool {
				return func(l string) bool { return strings.HasPrefix(l, "time=") && LogFields(l)["msg"] == msg }
			}
			switch cut.kind {
			case cutBoot:
			case cutStarted:
				_, trig = g.WaitLine(wctx, 0, 1, isLog("tboxd started"))
			case cutPlay:
				_, trig = g.WaitLine(wctx, 0, 1, func(l string) bool { return l == "RIG-PLAY-START" })
			case cutAttested:
				_, trig = g.WaitLine(wctx, 0, cut.n, isLog("attested"))
			case cutAcked:
				if !capt.Wait(wctx, time.Minute, func(msgs []Message) bool {
					return Analyze(msgs, r.Device).AckedThrough >= published+uint64(cut.n)
				}) {
					trig = fmt.Errorf("no new ack within a minute")
				}
			}
			cancel()
			if trig == nil {
				select {
				case <-time.After(cut.delay):
				case <-ended:
				}
			}
			g.Kill()
			<-ended
			switch {
			case errors.Is(werr, hil.ErrNoExit):
				cuts++
				fig.outcome = "cut"
			case werr == nil:
				fig.outcome = "ended before the cut"
			default:
				t.Fatalf("boot %d (%s): %v", bootN, cut, werr)
			}
			if trig != nil && !errors.Is(trig, ErrEnded) {
				t.Errorf("boot %d (%s): waiting for the moment of the cut: %v", bootN, cut, trig)
			}
		}
		hKill := time.Now()
		fig.alive = hKill.Sub(bootStart)

		// Where the drive and tboxd's time got to.
		mu.Lock()
		fig.started = !hStarted.IsZero()
		fig.attested = seenAttested
		fig.resumed = resumed
		next := clock.Add(hKill.Sub(bootStart) + time.Minute)
		if fig.started {
			reach := started.Add(time.Duration(float64(hKill.Sub(hStarted)) * cutPace)).Add(2 * time.Minute)
			next = maxTime(next, reach)
		}
		if !hPlay.IsZero() {
			if firstPos < 0 {
				firstPos = pos
			}
			fig.played = time.Duration(float64(hKill.Sub(hPlay)) * cutPace)
			playedEnd := min(end, partFrom(pos, fig.played+time.Second))
			lastPos = playedEnd - 1
			pos = playedEnd
		}
		mu.Unlock()
		clock = next.Truncate(time.Second).Add(time.Second)
		figs = append(figs, fig)
		if final {
			if werr != nil {
				t.Fatalf("final boot: %v", werr)
			}
			f := ParseConsole(g.Lines())
			if f.TboxdExit != 0 || f.Depth != 0 {
				t.Errorf("final boot: tboxd exit %d, outbox depth %d at its stop; want 0 and 0", f.TboxdExit, f.Depth)
			}
			if !containsLine(res.Console, "RIG-PLAY-EXIT 0") || !containsLine(res.Console, "RIG-OUTBOX-EXIT 0 0") {
				t.Errorf("final boot: want canplayer to exit 0 and `tboxctl outbox` to list nothing")
			}
			lastPos = end - 1
			if fig.resumed == "-" {
				t.Error(`final boot: tboxd did not log "resumed": it started afresh`)
			}
		}
	}

	capt.Wait(ctx, 20*time.Second, func(msgs []Message) bool {
		tr := Analyze(msgs, r.Device)
		return len(tr.Order) > 0 && tr.AckedThrough >= uint64(len(tr.Order))
	})
	if err := coll.Stop(10 * time.Second); err != nil {
		t.Errorf("collector: %v", err)
	}
	capt.Close()
	tr := Analyze(capt.Messages(), r.Device)
	checkDelivery(t, ctx, r, tr)

	// The truth: the readings telescope from the first frame the first
	// boot played to the last of the final boot.
	if firstPos < 0 {
		t.Fatal("no boot played the drive")
	}
	led := NewLedger(r.Profile)
	for i := firstPos; i <= lastPos; i++ {
		led.Frame(&frames[i])
	}
	want := int64(math.Floor(led.Last)) - int64(math.Floor(led.First))
	meters, _ := tr.Meters()
	if meters != want {
		t.Errorf("the chain credits %d m; floor(last reading %.0f m) - floor(first reading %.0f m) = %d m", meters, led.Last, led.First, want)
	}
	clockFlags := 0
	for _, a := range tr.Atts {
		if a.Flags&signer.FlagClock != 0 {
			clockFlags++
		}
	}
	if clockFlags > 0 {
		t.Errorf("%d attestations carry CLOCK: tboxd's time ran backwards across a cut", clockFlags)
	}
	for i, f := range figs {
		t.Logf("boot %2d: %-22s clock %s alive %6v started=%-5v resumed at head %-2s played %8v attested %d  %s", i+1, f.cut, f.clock.UTC().Format("01-02 15:04:05"),
			f.alive.Round(10*time.Millisecond), f.started, f.resumed, f.played.Round(time.Second), f.attested, f.outcome)
	}
	copies := 0
	for _, c := range tr.Copies {
		copies += c - 1
	}
	t.Logf("power cuts: %d in %d boots (seed %d); %d attestations stored, %d re-published copies; %d m = floor(last) - floor(first reading) over %v of drive played (%d frames from the first played to the last); flags: %s; whole test %v",
		cuts, len(figs), seed, len(tr.Order), copies, meters, frames[lastPos].Time.Sub(frames[firstPos].Time).Round(time.Second),
		lastPos-firstPos+1, flagCounts(tr.Atts), since(t0))
	if cuts != len(plan) {
		t.Errorf("%d power cuts landed, want %d (the other boots ended first)", cuts, len(plan))
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func containsLine(console, line string) bool {
	for _, l := range strings.Split(console, "\n") {
		if strings.TrimRight(l, "\r") == line {
			return true
		}
	}
	return false
}
