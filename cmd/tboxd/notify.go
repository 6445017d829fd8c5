package main

// The service manager's side of tboxd: systemd's readiness and watchdog
// protocol (sd_notify on $NOTIFY_SOCKET) and, for a T-Box without systemd,
// a hardware watchdog device (/dev/watchdog).
//
//   - READY=1 once the key, the outbox and the CAN sources are up
//     (supervisor.Ready, called just before the agent runs).
//   - WATCHDOG=1 every half of $WATCHDOG_USEC, only while the agent's loop
//     ticks and the outbox answers (liveness): a stuck loop or a stuck
//     durable write stops the pings, and systemd restarts tboxd.
//   - STOPPING=1 as soon as a stop is asked (SIGTERM, SIGINT).
//   - RELOADING=1 ... READY=1 around a reload (notifyReload, for SIGHUP).

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"

	"github.com/csop/tbox/agent"
	"github.com/csop/tbox/store"
)

// WatchdogConfig is the [watchdog] table: a hardware watchdog device that
// tboxd pets while it is alive, for a T-Box without systemd. Under systemd
// leave it empty and set WatchdogSec= in the unit instead.
type WatchdogConfig struct {
	_ [0]func() // not comparable: no generated equality function (tboxd size)

	// Device is the watchdog device, such as "/dev/watchdog"; empty: none.
	Device string `toml:"device"`
	// Interval is how often it is pet while alive; default 5s.
	Interval duration `toml:"interval"`
	// Timeout, when set, is programmed into the device (WDIOC_SETTIMEOUT):
	// the board resets that long after the last pet. Default: the
	// driver's own timeout.
	Timeout duration `toml:"timeout"`
}

func (w *WatchdogConfig) defaults() {
	if w.Device != "" && w.Interval.Duration == 0 {
		w.Interval.Duration = 5 * time.Second
	}
}

// problems lists what is wrong with the [watchdog] table.
func (w *WatchdogConfig) problems(c *Config) []error {
	var out []error
	if w.Device == "" {
		if w.Interval.Duration != 0 || w.Timeout.Duration != 0 {
			out = appendErr(out, c.fail("watchdog.device", "required when watchdog.interval or watchdog.timeout is set"))
		}
		return out
	}
	if w.Interval.Duration < 100*time.Millisecond || w.Interval.Duration > time.Minute {
		out = appendErr(out, c.fail("watchdog.interval", "want 100ms up to 1m, found %v", w.Interval.Duration))
	}
	if t := w.Timeout.Duration; t != 0 {
		if t%time.Second != 0 || t < time.Second || t > time.Hour {
			out = appendErr(out, c.fail("watchdog.timeout", "want whole seconds from 1s up to 1h, found %v", t))
		} else if t < 2*w.Interval.Duration {
			out = appendErr(out, c.fail("watchdog.timeout", "want at least twice watchdog.interval (%v), found %v", w.Interval.Duration, t))
		}
	}
	return out
}

// livenessStale is how long the agent's loop may go without a tick (it
// ticks every second) before tboxd counts as stuck.
const livenessStale = 5 * time.Second

// liveness reports whether the agent is alive: its loop ticked within
// stale, and the outbox answered a probe within stale. The probe runs in
// its own goroutine, one at a time, so a stuck outbox is seen as stuck
// and never stacks up goroutines.
type liveness struct {
	beat  func() time.Time // the loop's last tick
	probe func()           // returns when the outbox answers
	stale time.Duration

	inflight atomic.Bool
	answered atomic.Int64 // unix nanos of the last probe answered
}

func newLiveness(a *agent.Agent, st *store.Store, stale time.Duration) *liveness {
	created := time.Now()
	return &liveness{
		beat: func() time.Time {
			if b := a.C.LoopBeat.Load(); b != 0 {
				return fromNanos(b)
			}
			return created // the loop has not started yet: it has stale to do so
		},
		probe: func() { st.Stats() }, // takes the outbox's lock, held by a write
		stale: stale,
	}
}

// check returns nil while alive, or what is stuck.
func (l *liveness) check(now time.Time) error {
	if l.answered.Load() == 0 {
		l.answered.Store(nanos(now))
	}
	if l.inflight.CompareAndSwap(false, true) {
		go func() {
			l.probe()
			l.answered.Store(nanos(time.Now()))
			l.inflight.Store(false)
		}()
	}
	if age := now.Sub(l.beat()); age > l.stale {
		return errorf("agent loop: no tick for %v", age.Round(time.Millisecond))
	}
	if age := now.Sub(fromNanos(l.answered.Load())); age > l.stale {
		return errorf("outbox: no answer for %v", age.Round(time.Millisecond))
	}
	return nil
}

// supervisor speaks to the service manager and pets the watchdogs.
type supervisor struct {
	log     *slog.Logger
	systemd bool          // $NOTIFY_SOCKET is set
	sdEvery time.Duration // WATCHDOG=1 interval; 0: systemd's watchdog is off
	hw      *os.File      // the hardware watchdog, or nil
	hwEvery time.Duration

	alive  func(time.Time) error
	ctx    context.Context // done at a stop or Close
	stop   context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool
}

// startSupervisor opens the hardware watchdog (if configured) and starts
// the goroutines that notify STOPPING=1 when ctx is done and, once Ready is
// called, ping the watchdogs while alive returns nil.
func startSupervisor(ctx context.Context, wc WatchdogConfig, log *slog.Logger) (*supervisor, error) {
	s := &supervisor{log: log.With("part", "supervisor"), systemd: os.Getenv("NOTIFY_SOCKET") != ""}
	if s.systemd {
		d, err := daemon.SdWatchdogEnabled(false)
		if err != nil {
			return nil, errorf("systemd watchdog: %w", err)
		}
		s.sdEvery = d / 2
	}
	if wc.Device != "" {
		f, err := openHardwareWatchdog(wc)
		if err != nil {
			return nil, err
		}
		s.hw, s.hwEvery = f, wc.Interval.Duration
	}
	s.ctx, s.stop = context.WithCancel(ctx)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		<-s.ctx.Done()
		if !s.closed.Load() {
			s.notify(daemon.SdNotifyStopping, "STATUS=stopping")
		}
	}()
	return s, nil
}

// openHardwareWatchdog opens a watchdog device; opening it arms it.
func openHardwareWatchdog(wc WatchdogConfig) (*os.File, error) {
	f, err := os.OpenFile(wc.Device, os.O_WRONLY, 0)
	if err != nil {
		return nil, errorf("watchdog device: %w", err)
	}
	if t := wc.Timeout.Duration; t > 0 {
		if err := unix.IoctlSetPointerInt(int(f.Fd()), unix.WDIOC_SETTIMEOUT, int(t/time.Second)); err != nil {
			disarm(f)
			return nil, errorf("watchdog device %s: set timeout %v: %w", wc.Device, t, err)
		}
	}
	return f, nil
}

// disarm writes the magic 'V' before closing, so that a driver without
// nowayout stops counting: tboxd stopped on purpose.
func disarm(f *os.File) {
	f.Write([]byte("V"))
	f.Close()
}

// notify sends states to systemd; without $NOTIFY_SOCKET it does nothing.
func (s *supervisor) notify(states ...string) {
	if !s.systemd {
		return
	}
	msg := ""
	for i, st := range states {
		if i > 0 {
			msg += "\n"
		}
		msg += st
	}
	if _, err := daemon.SdNotify(false, msg); err != nil {
		s.log.Warn("sd_notify", "err", err)
	}
}

// Ready tells systemd that tboxd is up and starts the watchdog pings,
// which go on while alive returns nil.
func (s *supervisor) Ready(alive func(time.Time) error) {
	s.alive = alive
	s.notify(daemon.SdNotifyReady, "STATUS=attesting")
	if s.sdEvery > 0 {
		s.wg.Add(1)
		go s.pinger(s.ctx, s.sdEvery, "systemd", func() error {
			_, err := daemon.SdNotify(false, daemon.SdNotifyWatchdog)
			return err
		})
	}
	if s.hw != nil {
		s.wg.Add(1)
		go s.pinger(s.ctx, s.hwEvery, "hardware", func() error {
			_, err := s.hw.Write([]byte{0})
			return err
		})
	}
}

// pinger pets one watchdog every interval while tboxd is alive, and logs
// when it stops and resumes doing so.
func (s *supervisor) pinger(ctx context.Context, every time.Duration, which string, pet func() error) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	stuck := false
	for {
		if err := s.alive(time.Now()); err != nil {
			if !stuck {
				s.log.Error("not alive: watchdog pings withheld", "watchdog", which, "why", err)
				stuck = true
			}
		} else {
			if stuck {
				s.log.Warn("alive again: watchdog pings resumed", "watchdog", which)
				stuck = false
			}
			if err := pet(); err != nil {
				s.log.Warn("watchdog ping", "watchdog", which, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Close stops the pings and disarms the hardware watchdog: tboxd is
// stopping on purpose. A crash leaves the hardware watchdog armed.
func (s *supervisor) Close() {
	if !s.closed.CompareAndSwap(false, true) {
		return
	}
	s.stop()
	s.wg.Wait()
	if s.hw != nil {
		disarm(s.hw)
	}
}

// notifyReload wraps a reload (SIGHUP) in RELOADING=1 ... READY=1, so that
// `systemctl reload tboxd` waits for it. A reload that fails is reported
// in STATUS and returned; tboxd keeps running either way. Without
// $NOTIFY_SOCKET, or before tboxd is ready (ready false: a SIGHUP during
// the start), it only runs reload: a READY=1 then would tell systemd that
// tboxd is up before its key, outbox and buses are.
func notifyReload(log *slog.Logger, ready bool, reload func() error) error {
	systemd := ready && os.Getenv("NOTIFY_SOCKET") != ""
	send := func(state string) {
		if !systemd {
			return
		}
		if _, err := daemon.SdNotify(false, state); err != nil {
			log.Warn("sd_notify", "err", err)
		}
	}
	send(daemon.SdNotifyReloading + "\n" + daemon.SdNotifyMonotonicUsec())
	err := reload()
	if err != nil {
		send(daemon.SdNotifyReady + "\nSTATUS=reload failed: " + oneLine(err.Error()))
		return errorf("reload: %w", err)
	}
	send(daemon.SdNotifyReady + "\nSTATUS=attesting")
	return nil
}

// oneLine keeps an error on the single line a STATUS= may take.
func oneLine(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '\n' || c == '\r' {
			b[i] = ' '
		}
	}
	return string(b)
}
