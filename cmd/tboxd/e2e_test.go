package main

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/csop/tbox/agent/uplink"
	"github.com/csop/tbox/hil/vehicle"
	"github.com/csop/tbox/store"
)

// outboxStats opens the agent's state directory (the agent must have
// exited) and returns the outbox's counters.
func outboxStats(t *testing.T, dir string) store.Stats {
	t.Helper()
	st, err := store.Open(dir, nil)
	if err != nil {
		t.Fatalf("open the agent's outbox: %v", err)
	}
	defer st.Close()
	return st.Stats()
}

// truthModes adds up the truth's per-batch modes.
func truthModes(tr vehicle.Truth) map[string]uint64 {
	m := map[string]uint64{}
	for _, b := range tr.Batches {
		for _, mm := range b.Modes {
			m[mm.Mode] += uint64(mm.Meters)
		}
	}
	return m
}

// truthBatches is the truth's meters per batch.
func truthBatches(tr vehicle.Truth) map[int64]int64 {
	m := map[int64]int64{}
	for _, b := range tr.Batches {
		m[b.Batch] = b.Meters
	}
	return m
}

// storedChain checks that the collector stored seqs 1..head exactly once
// each, in order, and returns the meters it stored per batch.
func storedChain(t *testing.T, ev []colEvent, head uint64) map[int64]int64 {
	t.Helper()
	perBatch := map[int64]int64{}
	next := uint64(1)
	for _, e := range ev {
		if e.kind != "stored" {
			continue
		}
		if e.seq != next {
			t.Errorf("collector stored seq %d, want %d (stored order must be 1, 2, 3, ... once each)", e.seq, next)
		}
		next = e.seq + 1
		perBatch[e.batch] += e.meters
	}
	if next-1 != head {
		t.Errorf("collector stored up to seq %d, the agent made %d", next-1, head)
	}
	return perBatch
}

// checkLedger checks the collector's ledger against the agent's head and
// the simulator's truth.
func checkLedger(t *testing.T, col *collector, device string, head uint64, tr vehicle.Truth, modes bool) {
	t.Helper()
	s := col.stats()
	if len(s.Devices) != 1 || s.Devices[0].Device != device {
		t.Fatalf("collector devices %+v, want only %s", s.Devices, device)
	}
	d := s.Devices[0]
	if d.Attestations != head {
		t.Errorf("collector stored %d attestations, the agent made %d", d.Attestations, head)
	}
	if d.Meters != uint64(tr.Meters) {
		t.Errorf("collector meters %d, simulator truth %d (difference %d)", d.Meters, tr.Meters, int64(d.Meters)-tr.Meters)
	}
	if want := truthModes(tr); modes && !maps.Equal(d.Modes, want) {
		t.Errorf("collector meters per mode %v, truth %v", d.Modes, want)
	}
	if s.Forks != 0 {
		t.Errorf("collector recorded %d forks", s.Forks)
	}
	col.audit()
}

var reStopped = regexp.MustCompile(`msg="tboxd stopped"`)

// TestDriveToCollector: a simulated drive of a few hours, replayed from a
// candump log by the real tboxd, reaches the real collector through a real
// mosquitto: every attestation is stored once and acked, the stored meters
// are the simulator's truth to the meter, and the outbox is empty.
func TestDriveToCollector(t *testing.T) {
	r := newRig(t)
	sc := vehicle.Scenario{
		Seed: 6, Start: pastStart(3 * time.Hour), Duration: 3 * time.Hour,
		Parking: true, ModeChanges: true, StopAndGo: true, Noise: 3, SpeedHz: 10,
	}
	log, truth := writeDrive(t, r.dir, sc)
	r.col.start()

	a := r.startAgent(r.writeConfig(agentConf{Replay: log}))
	if code := a.wait(60 * time.Second); code != 0 {
		t.Fatalf("tboxd exit status %d, want 0", code)
	}
	ob := outboxStats(t, r.stateDir())
	if ob.Head == 0 {
		t.Fatal("the agent made no attestation")
	}
	if ob.Depth != 0 || ob.AckedThrough != ob.Head {
		t.Errorf("outbox depth %d, acked through %d of %d: want every attestation acked and removed", ob.Depth, ob.AckedThrough, ob.Head)
	}
	perBatch := storedChain(t, r.col.events(), ob.Head)
	if want := truthBatches(truth); !maps.Equal(perBatch, want) {
		keys := slices.Sorted(maps.Keys(want))
		for _, b := range keys {
			if perBatch[b] != want[b] {
				t.Errorf("batch %d: collector meters %d, truth %d", b, perBatch[b], want[b])
			}
		}
		for b := range perBatch {
			if _, ok := want[b]; !ok {
				t.Errorf("batch %d: collector meters %d, truth none", b, perBatch[b])
			}
		}
	}
	checkLedger(t, r.col, r.device, ob.Head, truth, true)
	t.Logf("%d attestations, %d m over %d batches", ob.Head, truth.Meters, len(truth.Batches))
}

var (
	reConnected = regexp.MustCompile(`msg="mqtt connected"`)
	reLost      = regexp.MustCompile(`msg="mqtt connection lost"`)
	reAttested  = regexp.MustCompile(`msg=attested .*seq=(\d+) .*meters=(\d+)`)
	reStopSpan  = regexp.MustCompile(`msg="open span closed at stop" .*made=(\d+)`)
	reStored    = regexp.MustCompile(`msg="attestation stored"`)
)

// attested returns the seqs and meters of the agent's "attested" lines
// read at or after since.
func attested(p *proc, since time.Time) (seqs []uint64, meters []int64) {
	for _, l := range p.snapshot() {
		if l.at.Before(since) {
			continue
		}
		if m := reAttested.FindStringSubmatch(l.text); m != nil {
			s, _ := strconv.ParseUint(m[1], 10, 64)
			v, _ := strconv.ParseInt(m[2], 10, 64)
			seqs, meters = append(seqs, s), append(meters, v)
		}
	}
	return seqs, meters
}

// checkBatches compares the collector's stored meters per batch with the
// truth's.
func checkBatches(t *testing.T, got map[int64]int64, tr vehicle.Truth) {
	t.Helper()
	want := truthBatches(tr)
	for _, b := range slices.Sorted(maps.Keys(want)) {
		if got[b] != want[b] {
			t.Errorf("batch %d: collector meters %d, truth %d", b, got[b], want[b])
		}
	}
	for b := range got {
		if _, ok := want[b]; !ok && got[b] != 0 {
			t.Errorf("batch %d: collector meters %d, truth none", b, got[b])
		}
	}
}

// TestBrokerCrash: mosquitto is killed (SIGKILL) in the middle of a paced
// drive and comes back 3 s later. Nothing is lost and nothing is stored
// twice; the agent is back on the broker within 2 s of its return.
func TestBrokerCrash(t *testing.T) {
	r := newRig(t)
	sc := vehicle.Scenario{
		Seed: 21, Start: pastStart(2 * time.Hour), Duration: 2 * time.Hour,
		ModeChanges: true, StopAndGo: true, OdometerHz: 10, SpeedHz: 5, ModeHz: 2,
	}
	log, truth := writeDrive(t, r.dir, sc)
	r.col.start()
	start := time.Now()
	a := r.startAgent(r.writeConfig(agentConf{Replay: log, Pace: 720})) // 2 h in 10 s
	if _, ok := a.waitLine(reConnected, start, 10*time.Second); !ok {
		t.Fatal("the agent did not connect to the broker")
	}
	time.Sleep(time.Until(start.Add(3 * time.Second)))

	kill := time.Now()
	r.broker.Stop()
	if _, ok := a.waitLine(reLost, kill, 5*time.Second); !ok {
		t.Error("the agent did not notice the broker's crash within 5 s")
	}
	time.Sleep(3 * time.Second)
	r.broker.Restart()
	up := time.Now()
	l, ok := a.waitLine(reConnected, kill, 10*time.Second)
	if !ok {
		t.Fatal("the agent did not reconnect within 10 s of the broker's return")
	}
	resume := max(l.at.Sub(up), 0)
	t.Logf("resume latency after the broker came back: %v (target < 2s)", resume.Round(time.Millisecond))
	if resume >= 2*time.Second {
		t.Errorf("resume latency %v, want < 2s", resume)
	}

	// Data flows again once the collector has resubscribed too and the
	// agent has published what was lost with the old connection.
	if l, ok := r.col.runs[0].waitLine(reStored, up, 30*time.Second); ok {
		t.Logf("first attestation stored %v after the broker came back (ack_timeout 2s)", l.at.Sub(up).Round(time.Millisecond))
	}

	if code := a.wait(60 * time.Second); code != 0 {
		t.Fatalf("tboxd exit status %d, want 0", code)
	}
	before, _ := attested(a, time.Time{})
	after, _ := attested(a, up)
	if len(after) == 0 || len(after) == len(before) {
		t.Fatalf("%d attestations in all, %d after the broker's return: the crash was not mid-stream", len(before), len(after))
	}
	ob := outboxStats(t, r.stateDir())
	if ob.Depth != 0 || ob.AckedThrough != ob.Head {
		t.Errorf("outbox depth %d, acked through %d of %d: want every attestation acked", ob.Depth, ob.AckedThrough, ob.Head)
	}
	ev := r.col.events()
	checkBatches(t, storedChain(t, ev, ob.Head), truth)
	dups := 0
	for _, e := range ev {
		switch e.kind {
		case "duplicate":
			dups++
		case "refused":
			t.Logf("refused (re-sent later): seq %d: %s", e.seq, e.reason)
		}
	}
	checkLedger(t, r.col, r.device, ob.Head, truth, true)
	t.Logf("%d attestations, %d duplicate deliveries acked again and not stored", ob.Head, dups)
}

// healthReport is the part of the agent's retained health report the
// tests read.
type healthReport struct {
	Status string `json:"status"`
	Agent  struct {
		OutboxDepth int    `json:"outbox_depth"`
		Head        uint64 `json:"head"`
		Acked       uint64 `json:"acked"`
		Frames      uint64 `json:"frames"`
		CAN         []struct {
			Bus    string `json:"bus"`
			State  string `json:"state"`
			Frames uint64 `json:"frames"`
		} `json:"can"`
		LastFrameAge *int64 `json:"last_frame_age_s"`
		MaybeLost    *struct {
			From, To uint64
		} `json:"maybe_lost"`
	} `json:"agent"`
}

// healthWatch records the health reports of one device.
type healthWatch struct {
	mu      sync.Mutex
	reports []healthReport
	grew    chan struct{}
}

// watchHealth subscribes to the device's health topic until the test ends.
func watchHealth(t *testing.T, broker, device string) *healthWatch {
	t.Helper()
	w := &healthWatch{grew: make(chan struct{}, 1)}
	_, _, _, topic := uplink.Topics(device)
	o := mqtt.NewClientOptions().AddBroker(broker).SetClientID("e2e-health-watch").
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("health watcher: connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	tok := c.Subscribe(topic, 0, func(_ mqtt.Client, m mqtt.Message) {
		var h healthReport
		if err := json.Unmarshal(m.Payload(), &h); err != nil {
			t.Errorf("health report %q: %v", m.Payload(), err)
			return
		}
		w.mu.Lock()
		w.reports = append(w.reports, h)
		w.mu.Unlock()
		select {
		case w.grew <- struct{}{}:
		default:
		}
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("health watcher: subscribe %s: %v", topic, tok.Error())
	}
	return w
}

func (w *healthWatch) all() []healthReport {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]healthReport(nil), w.reports...)
}

// waitFor waits for a report that satisfies ok.
func (w *healthWatch) waitFor(ok func(healthReport) bool, timeout time.Duration) (healthReport, bool) {
	deadline := time.After(timeout)
	for {
		for _, h := range w.all() {
			if ok(h) {
				return h, true
			}
		}
		select {
		case <-w.grew:
		case <-deadline:
			return healthReport{}, false
		}
	}
}

// TestCollectorDown: the collector is down during the whole drive. The
// outbox grows (the agent's health reports say so) and keeps everything;
// when the collector comes back, the outbox drains in seq order, every
// attestation is acked and the outbox ends empty.
func TestCollectorDown(t *testing.T) {
	r := newRig(t)
	sc := vehicle.Scenario{
		Seed: 31, Start: pastStart(time.Hour), Duration: time.Hour,
		ModeChanges: true, OdometerHz: 10, SpeedHz: 5, ModeHz: 2,
	}
	log, truth := writeDrive(t, r.dir, sc)
	health := watchHealth(t, r.broker.URL(), r.device)
	start := time.Now()
	a := r.startAgent(r.writeConfig(agentConf{Replay: log, Pace: 900, Grace: 60 * time.Second})) // 1 h in 4 s
	l, ok := a.waitLine(reStopSpan, start, 30*time.Second)
	if !ok {
		t.Fatal("the replay did not end within 30 s")
	}
	made, _ := strconv.ParseUint(reStopSpan.FindStringSubmatch(l.text)[1], 10, 64)
	if _, ok := health.waitFor(func(h healthReport) bool { return h.Agent.OutboxDepth == int(made) }, 5*time.Second); !ok {
		t.Fatalf("no health report with outbox_depth %d (every attestation made) within 5 s: %+v", made, health.all())
	}
	var depths []int
	for _, h := range health.all() {
		if h.Status != "online" {
			continue
		}
		if h.Agent.Acked != 0 {
			t.Errorf("health report acked %d with no collector", h.Agent.Acked)
		}
		if n := len(depths); n == 0 || depths[n-1] != h.Agent.OutboxDepth {
			depths = append(depths, h.Agent.OutboxDepth)
		}
	}
	if !slices.IsSorted(depths) || len(depths) < 3 {
		t.Errorf("outbox depth in the health reports %v: want it to grow while the collector is down", depths)
	}
	t.Logf("outbox depth while the collector was down: %v", depths)
	// The health report carries the CAN side too: the log's frames, their
	// source, and how long ago the last one came.
	last := health.all()[len(health.all())-1]
	if last.Agent.Frames == 0 || len(last.Agent.CAN) != 1 || last.Agent.CAN[0].State != "log replay" ||
		last.Agent.CAN[0].Frames != last.Agent.Frames || last.Agent.LastFrameAge == nil {
		t.Errorf("health report's CAN part: %+v; want the replay's frames, its state and the last frame's age", last.Agent)
	}

	r.col.start()
	back := time.Now()
	if code := a.wait(60 * time.Second); code != 0 {
		t.Fatalf("tboxd exit status %d, want 0", code)
	}
	t.Logf("drained %d attestations %v after the collector came back", made, time.Since(back).Round(time.Millisecond))
	ob := outboxStats(t, r.stateDir())
	if ob.Head != made || ob.Depth != 0 || ob.AckedThrough != made {
		t.Errorf("outbox head %d, depth %d, acked through %d: want %d made, all acked, none left", ob.Head, ob.Depth, ob.AckedThrough, made)
	}
	ev := r.col.events()
	var order []uint64
	for i, e := range ev {
		if e.kind == "refused" {
			t.Errorf("collector refused seq %d: %s", e.seq, e.reason)
		}
		if i < int(made) {
			order = append(order, e.seq)
		}
	}
	if want := seqRange(1, made); !slices.Equal(order, want) {
		t.Errorf("collector received seqs %v first, want %v in order", order, want)
	}
	checkBatches(t, storedChain(t, ev, made), truth)
	checkLedger(t, r.col, r.device, made, truth, true)
}

func seqRange(from, to uint64) []uint64 {
	var s []uint64
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

// TestSigtermMidDrive: SIGTERM in the middle of a drive closes the open
// span, which is attested and acked within shutdown_grace; the agent
// restarted on the log continues the chain (no gap, no duplicate) and the
// totals are the simulator's truth.
func TestSigtermMidDrive(t *testing.T) {
	r := newRig(t)
	sc := vehicle.Scenario{
		Seed: 41, Start: pastStart(time.Hour), Duration: time.Hour,
		ModeChanges: true, OdometerHz: 10, SpeedHz: 5, ModeHz: 2,
	}
	log, truth := writeDrive(t, r.dir, sc)
	r.col.start()
	const grace = 5 * time.Second
	cfg := r.writeConfig(agentConf{Replay: log, Pace: 450, Grace: grace}) // 1 h in 8 s
	start := time.Now()
	a := r.startAgent(cfg)
	if _, ok := a.waitLine(reConnected, start, 10*time.Second); !ok {
		t.Fatal("the agent did not connect to the broker")
	}
	time.Sleep(time.Until(start.Add(4 * time.Second)))
	term := time.Now()
	a.signal(syscall.SIGTERM)
	code := a.wait(grace + 5*time.Second)
	took := time.Since(term)
	if code != 0 {
		t.Fatalf("tboxd exit status %d after SIGTERM, want 0", code)
	}
	if took > grace+time.Second {
		t.Errorf("tboxd took %v to stop, shutdown_grace is %v", took, grace)
	}
	if _, ok := a.waitLine(reStopSpan, term, 0); !ok {
		t.Error(`no "open span closed at stop" after SIGTERM`)
	}
	seqs, meters := attested(a, term)
	if len(seqs) == 0 || meters[len(meters)-1] == 0 {
		t.Fatalf("attestations after SIGTERM %v with meters %v: want the open span attested", seqs, meters)
	}
	first := outboxStats(t, r.stateDir())
	if first.Depth != 0 || first.AckedThrough != first.Head || first.Head != seqs[len(seqs)-1] {
		t.Errorf("after SIGTERM: outbox head %d, depth %d, acked through %d: want the last span (seq %d) uploaded and acked within the grace",
			first.Head, first.Depth, first.AckedThrough, seqs[len(seqs)-1])
	}
	if _, ok := a.waitLine(regexp.MustCompile(`stopping with attestations not yet acked`), term, 0); ok {
		t.Error("the grace ran out with attestations not acked")
	}
	t.Logf("stopped %v after SIGTERM with %d attestations, the last (seq %d, %d m) closing the open span",
		took.Round(time.Millisecond), first.Head, seqs[len(seqs)-1], meters[len(meters)-1])

	// The rest of the drive: the same log, replayed at full speed; the
	// agent skips what it has accounted for.
	b := r.startAgent(r.writeConfig(agentConf{Replay: log, Grace: grace}))
	if code := b.wait(30 * time.Second); code != 0 {
		t.Fatalf("restarted tboxd exit status %d, want 0", code)
	}
	ob := outboxStats(t, r.stateDir())
	if ob.Head <= first.Head || ob.Depth != 0 || ob.AckedThrough != ob.Head {
		t.Errorf("after the restart: outbox head %d (was %d), depth %d, acked through %d: want more attestations, all acked",
			ob.Head, first.Head, ob.Depth, ob.AckedThrough)
	}
	ev := r.col.events()
	for _, e := range ev {
		if e.kind == "refused" {
			t.Errorf("collector refused seq %d: %s", e.seq, e.reason)
		}
	}
	checkBatches(t, storedChain(t, ev, ob.Head), truth)
	checkLedger(t, r.col, r.device, ob.Head, truth, false)
}

// TestSighupReloads: SIGHUP (logrotate, systemctl reload) never stops the
// daemon. It re-reads the configuration and applies log.level, and says so;
// a configuration broken in the meantime is logged and changes nothing.
// The drive still ends with every attestation acked.
func TestSighupReloads(t *testing.T) {
	r := newRig(t)
	sc := vehicle.Scenario{Seed: 43, Start: pastStart(time.Hour), Duration: time.Hour, OdometerHz: 10, SpeedHz: 5, ModeHz: 2}
	log, _ := writeDrive(t, r.dir, sc)
	r.col.start()
	cfg := r.writeConfig(agentConf{Replay: log, Pace: 360}) // 1 h in 10 s
	start := time.Now()
	a := r.startAgent(cfg)
	if _, ok := a.waitLine(reConnected, start, 10*time.Second); !ok {
		t.Fatal("the agent did not connect to the broker")
	}
	orig, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, bytes.Replace(orig, []byte(`level = "info"`), []byte(`level = "debug"`), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	hup := time.Now()
	a.signal(syscall.SIGHUP)
	if _, ok := a.waitLine(regexp.MustCompile(`SIGHUP: configuration reloaded.*log.level=DEBUG`), hup, 5*time.Second); !ok {
		t.Fatalf("no reload line after SIGHUP:\n%s", a.stderr())
	}
	if err := os.WriteFile(cfg, []byte("this is not = = toml\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hup = time.Now()
	a.signal(syscall.SIGHUP)
	if _, ok := a.waitLine(regexp.MustCompile(`SIGHUP: configuration not reloaded, nothing changed`), hup, 5*time.Second); !ok {
		t.Fatalf("no refusal after SIGHUP with a broken file:\n%s", a.stderr())
	}
	if code := a.wait(40 * time.Second); code != 0 {
		t.Fatalf("tboxd exit status %d after two SIGHUPs and the end of the log, want 0:\n%s", code, a.stderr())
	}
	if n := strings.Count(a.stderr(), `msg="mqtt connected"`); n != 1 {
		t.Errorf("%d \"mqtt connected\" lines for one connection, want 1:\n%s", n, a.stderr())
	}
	ob := outboxStats(t, r.stateDir())
	if ob.Head == 0 || ob.Depth != 0 || ob.AckedThrough != ob.Head {
		t.Errorf("outbox head %d, depth %d, acked %d: want every attestation acked", ob.Head, ob.Depth, ob.AckedThrough)
	}
}
