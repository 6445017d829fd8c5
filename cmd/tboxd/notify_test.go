package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/csop/tbox/agent"
	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/hil/vehicle"
	"github.com/csop/tbox/signer"
	"github.com/csop/tbox/store"
)

// notifySocket is systemd's side of sd_notify: a real unixgram socket whose
// datagrams are kept with the time they arrived.
type notifySocket struct {
	path string
	conn *net.UnixConn
	mu   sync.Mutex
	msgs []notifyMsg
	done chan struct{}
}

type notifyMsg struct {
	at   time.Time
	text string
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	dir, err := os.MkdirTemp("", "notify-") // short: a socket path has 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	n := &notifySocket{path: filepath.Join(dir, "notify.sock"), done: make(chan struct{})}
	n.conn, err = net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(n.done)
		buf := make([]byte, 4096)
		for {
			k, err := n.conn.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, notifyMsg{time.Now(), string(buf[:k])})
			n.mu.Unlock()
		}
	}()
	t.Cleanup(func() { n.conn.Close(); <-n.done })
	return n
}

func (n *notifySocket) all() []notifyMsg {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]notifyMsg(nil), n.msgs...)
}

// pings returns the times of the WATCHDOG=1 datagrams in [from, to).
func (n *notifySocket) pings(from, to time.Time) []time.Time {
	var out []time.Time
	for _, m := range n.all() {
		if m.text == "WATCHDOG=1" && !m.at.Before(from) && m.at.Before(to) {
			out = append(out, m.at)
		}
	}
	return out
}

// waitFor waits for a datagram holding state, and returns when it came.
func (n *notifySocket) waitFor(t *testing.T, state string, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, m := range n.all() {
			for _, l := range strings.Split(m.text, "\n") {
				if l == state {
					return m.at
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no %s within %v; got %v", state, timeout, n.all())
	return time.Time{}
}

// gatedOutbox is the real store, whose Stats (which the agent's loop calls
// at every tick) waits while the gate is closed: a stuck outbox.
type gatedOutbox struct {
	*store.Store
	mu   sync.Mutex
	open *sync.Cond
	shut bool
}

func (g *gatedOutbox) setShut(shut bool) {
	g.mu.Lock()
	g.shut = shut
	g.mu.Unlock()
	g.open.Broadcast()
}

func (g *gatedOutbox) Stats() store.Stats {
	g.mu.Lock()
	for g.shut {
		g.open.Wait()
	}
	g.mu.Unlock()
	return g.Store.Stats()
}

// TestWatchdogStopsWhileLoopStuck: on a real notify socket, READY=1, then
// WATCHDOG=1 at half of WATCHDOG_USEC while the agent's loop ticks; none
// while the loop is stuck on its outbox; pings again once it is free; and
// STOPPING=1 when the stop is asked.
func TestWatchdogStopsWhileLoopStuck(t *testing.T) {
	ns := listenNotify(t)
	t.Setenv("NOTIFY_SOCKET", ns.path)
	// WATCHDOG_USEC 1 s, pings every 500 ms: a shared test machine that
	// stalls a goroutine for 150 ms must not fail the test, a loop stuck
	// for seconds must.
	t.Setenv("WATCHDOG_USEC", "1000000")

	p, err := profile.Load(evProfile(t))
	if err != nil {
		t.Fatal(err)
	}
	kp := filepath.Join(t.TempDir(), "k")
	if _, err := signer.GenerateKeyFile(kp); err != nil {
		t.Fatal(err)
	}
	fk, err := signer.LoadKeyFile(kp)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ob := &gatedOutbox{Store: st}
	ob.open = sync.NewCond(&ob.mu)
	att, err := agent.NewAttester(agent.AttesterConfig{ChainID: 1, Profile: p}, fk, ob)
	if err != nil {
		t.Fatal(err)
	}
	a := agent.New(att, agent.Options{Tick: 50 * time.Millisecond})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sup, err := startSupervisor(ctx, WatchdogConfig{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if sup.sdEvery != 500*time.Millisecond {
		t.Fatalf("ping interval %v, want 500ms (half of WATCHDOG_USEC)", sup.sdEvery)
	}
	ran := make(chan error, 1)
	go func() { ran <- a.Run(ctx) }()
	const stale = 1200 * time.Millisecond
	live := &liveness{
		beat:  func() time.Time { return time.Unix(0, a.C.LoopBeat.Load()) },
		probe: func() { st.Stats() },
		stale: stale,
	}
	start := time.Now()
	sup.Ready(live.check)
	ready := ns.waitFor(t, "READY=1", 2*time.Second)

	time.Sleep(3 * time.Second)
	stuck := time.Now()
	ob.setShut(true)
	time.Sleep(3 * time.Second)
	freed := time.Now()
	ob.setShut(false)
	time.Sleep(2 * time.Second)

	cancel()
	stopping := ns.waitFor(t, "STOPPING=1", 2*time.Second)
	sup.Close()
	if err := <-ran; err != nil {
		t.Fatalf("agent: %v", err)
	}

	if ready.Before(start) {
		t.Fatal("READY=1 before Ready")
	}
	// Alive: a ping every 500 ms (6 in 3 s; a busy machine may skip one).
	alive := ns.pings(start, stuck)
	if len(alive) < 4 || len(alive) > 8 {
		t.Errorf("%d pings in the 3 s alive, want about 6 (every 500 ms): %v", len(alive), alive)
	}
	// What systemd holds it to: never WATCHDOG_USEC without a ping. (A
	// single gap may be short: a ticker catches up after a late tick.)
	for i := 1; i < len(alive); i++ {
		if d := alive[i].Sub(alive[i-1]); d >= time.Second {
			t.Errorf("pings %v apart while alive: systemd would have killed tboxd (WATCHDOG_USEC 1 s)", d)
		}
	}
	// Stuck: after stale (plus a ping interval), not one ping.
	if got := ns.pings(stuck.Add(stale+500*time.Millisecond), freed); len(got) != 0 {
		t.Errorf("%d pings while the loop was stuck (from %v after): %v", len(got), stale+500*time.Millisecond, got)
	}
	// Free again: the pings resume.
	if got := ns.pings(freed, stopping); len(got) < 2 {
		t.Errorf("%d pings in the 2 s after the loop was freed, want them resumed", len(got))
	}
	if after := ns.pings(stopping.Add(50*time.Millisecond), time.Now().Add(time.Hour)); len(after) != 0 {
		t.Errorf("%d pings after STOPPING=1", len(after))
	}
}

// TestWatchdogStopsWhileOutboxStuck: the outbox probe alone withholds the
// pings when the store does not answer.
func TestWatchdogStopsWhileOutboxStuck(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	l := &liveness{
		beat:  func() time.Time { return time.Now() },
		probe: func() { mu.Lock(); defer mu.Unlock() },
		stale: 100 * time.Millisecond,
	}
	if err := l.check(now); err != nil {
		t.Fatalf("fresh liveness: %v", err)
	}
	for l.inflight.Load() { // let the first probe finish
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	l.check(time.Now()) // starts a probe that blocks
	time.Sleep(200 * time.Millisecond)
	err := l.check(time.Now())
	mu.Unlock()
	if err == nil || !strings.Contains(err.Error(), "outbox") {
		t.Fatalf("liveness with a stuck outbox: %v, want an outbox error", err)
	}
	time.Sleep(20 * time.Millisecond)
	if err := l.check(time.Now()); err != nil {
		t.Fatalf("liveness once the outbox answers: %v", err)
	}
}

// TestNotifyReload: a reload is RELOADING=1 (with MONOTONIC_USEC) then
// READY=1; a failed one is READY=1 with the error in STATUS. A reload
// before tboxd is ready (SIGHUP during the start) runs and says nothing:
// its READY=1 would come before the key, outbox and buses are up.
func TestNotifyReload(t *testing.T) {
	ns := listenNotify(t)
	t.Setenv("NOTIFY_SOCKET", ns.path)
	log := slog.New(slog.DiscardHandler)
	early := false
	if err := notifyReload(log, false, func() error { early = true; return nil }); err != nil || !early {
		t.Fatalf("notifyReload before ready: %v, ran %v", err, early)
	}
	ran := false
	if err := notifyReload(log, true, func() error { ran = true; return nil }); err != nil || !ran {
		t.Fatalf("notifyReload: %v, ran %v", err, ran)
	}
	bad := errors.New("log.level: want debug, info, warn or error,\nfound \"loud\"")
	if err := notifyReload(log, true, func() error { return bad }); !errors.Is(err, bad) {
		t.Fatalf("notifyReload of a failing reload: %v", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for len(ns.all()) < 4 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	m := ns.all()
	if len(m) != 4 {
		t.Fatalf("datagrams %v, want 4", m)
	}
	if !strings.HasPrefix(m[0].text, "RELOADING=1\nMONOTONIC_USEC=") || m[1].text != "READY=1\nSTATUS=attesting" {
		t.Errorf("reload datagrams %v", m[:2])
	}
	if !strings.HasPrefix(m[2].text, "RELOADING=1\n") || !strings.HasPrefix(m[3].text, "READY=1\nSTATUS=reload failed: log.level") ||
		strings.Count(m[3].text, "\n") != 1 {
		t.Errorf("failed reload datagrams %v", m[2:])
	}
}

// TestHardwareWatchdog: the device is pet every interval while alive, not
// while stuck, and disarmed with the magic 'V' at a clean stop. A regular
// file stands in for /dev/watchdog (no timeout ioctl).
func TestHardwareWatchdog(t *testing.T) {
	dev := filepath.Join(t.TempDir(), "watchdog")
	if err := os.WriteFile(dev, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NOTIFY_SOCKET", "")
	var stuck sync.Mutex
	isStuck := false
	alive := func(time.Time) error {
		stuck.Lock()
		defer stuck.Unlock()
		if isStuck {
			return errors.New("stuck")
		}
		return nil
	}
	sup, err := startSupervisor(context.Background(), WatchdogConfig{Device: dev, Interval: duration{50 * time.Millisecond}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	size := func() int64 {
		fi, err := os.Stat(dev)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	sup.Ready(alive)
	time.Sleep(500 * time.Millisecond)
	if n := size(); n < 5 || n > 12 {
		t.Errorf("%d pets in 500 ms at 50 ms, want about 10", n)
	}
	stuck.Lock()
	isStuck = true
	stuck.Unlock()
	time.Sleep(60 * time.Millisecond)
	before := size()
	time.Sleep(300 * time.Millisecond)
	if n := size(); n != before {
		t.Errorf("%d pets while stuck", n-before)
	}
	sup.Close()
	b, _ := os.ReadFile(dev)
	if len(b) == 0 || b[len(b)-1] != 'V' {
		t.Errorf("last byte written %q, want the magic close 'V'", b[len(b)-1:])
	}
}

// TestSdNotifyTboxd: the tboxd binary under a notify socket: READY=1 once
// up, WATCHDOG=1 at the rate WATCHDOG_USEC asks, RELOADING=1 then READY=1
// at SIGHUP with the pings going on, STOPPING=1 at SIGTERM, then a clean
// exit.
func TestSdNotifyTboxd(t *testing.T) {
	r := newRig(t)
	sc := vehicle.Scenario{Seed: 7, Start: pastStart(time.Hour), Duration: time.Hour, OdometerHz: 10, SpeedHz: 5, ModeHz: 2}
	log, _ := writeDrive(t, r.dir, sc)
	cfg := r.writeConfig(agentConf{Replay: log, Pace: 200, NoBroker: true, Grace: time.Second}) // 1 h in 18 s
	ns := listenNotify(t)
	t.Setenv("NOTIFY_SOCKET", ns.path)
	t.Setenv("WATCHDOG_USEC", "1000000")
	start := time.Now()
	a := r.startAgent(cfg)
	ready := ns.waitFor(t, "READY=1", 10*time.Second)
	time.Sleep(3 * time.Second)
	// systemctl reload: RELOADING=1, then READY=1 again, and tboxd goes on
	// (pinging) until SIGTERM.
	hup := time.Now()
	a.signal(syscall.SIGHUP)
	reloading := ns.waitFor(t, "RELOADING=1", 5*time.Second)
	var reloaded time.Time
	for deadline := time.Now().Add(5 * time.Second); reloaded.IsZero() && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, m := range ns.all() {
			if m.at.After(reloading) && strings.HasPrefix(m.text, "READY=1\n") {
				reloaded = m.at
				break
			}
		}
	}
	if reloading.Before(hup) || reloaded.IsZero() {
		t.Fatalf("after SIGHUP: RELOADING=1 at %v (SIGHUP at %v), then READY=1 at %v; datagrams %v", reloading.Sub(start), hup.Sub(start), reloaded, ns.all())
	}
	time.Sleep(1500 * time.Millisecond)
	if got := ns.pings(reloaded, time.Now()); len(got) < 2 {
		t.Errorf("%d pings in the 1.5 s after the reload, want tboxd still alive and pinging", len(got))
	}
	term := time.Now()
	a.signal(syscall.SIGTERM)
	stopping := ns.waitFor(t, "STOPPING=1", 5*time.Second)
	if code := a.wait(10 * time.Second); code != 0 {
		t.Fatalf("tboxd exit status %d after SIGTERM", code)
	}
	if ready.Before(start) || stopping.Before(term) {
		t.Fatalf("READY at %v, STOPPING at %v, SIGTERM at %v", ready.Sub(start), stopping.Sub(start), term.Sub(start))
	}
	if got := ns.pings(ready, hup); len(got) < 4 || len(got) > 8 {
		t.Errorf("%d pings in the %v between READY and SIGHUP, want one every 500 ms", len(got), hup.Sub(ready).Round(time.Millisecond))
	}
	if strings.Contains(a.stderr(), "not alive") {
		t.Errorf("tboxd withheld a ping while alive:\n%s", tail(a.stderr(), 10))
	}
	if m := ns.all(); m[0].text != "READY=1\nSTATUS=attesting" {
		t.Errorf("first datagram %q, want READY=1", m[0].text)
	}
}

func (m notifyMsg) String() string { return m.text }
