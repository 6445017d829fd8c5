package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/csop/tbox/agent"
	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/agent/shell"
	"github.com/csop/tbox/agent/uplink"
	"github.com/csop/tbox/can"
	"github.com/csop/tbox/can/socketcan"
	"github.com/csop/tbox/signer"
	"github.com/csop/tbox/store"
)

// exitCode maps an error to tboxd's exit status: 2 for bad configuration,
// 1 for a runtime error.
func exitCode(stderr io.Writer, err error) int {
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "tboxd:", err)
	if isA[*ConfigError](err) || isA[*profile.ConfigError](err) || isA[*uplink.ConfigError](err) ||
		errors.Is(err, signer.ErrBadKey) || errors.Is(err, signer.ErrKeyPermissions) ||
		(isA[*signer.KeyFileError](err) && errors.Is(err, fs.ErrNotExist)) || isProvisioningError(err) {
		return 2
	}
	return 1
}

// newLogger returns the daemon's logger and the level it filters at, which
// SIGHUP may change.
func newLogger(c LogConfig, w io.Writer) (*slog.Logger, *slog.LevelVar) {
	lv := new(slog.LevelVar)
	lv.UnmarshalText([]byte(c.Level)) // validated
	opts := &slog.HandlerOptions{Level: lv}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), lv
	}
	return slog.New(slog.NewTextHandler(w, opts)), lv
}

// run runs the daemon until ctx is done. hup delivers SIGHUP: each one
// re-reads the configuration and applies what can change safely while
// running (log.level); a configuration that no longer loads is logged and
// changes nothing.
func run(ctx context.Context, cfgPath string, hup <-chan os.Signal) error {
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		return err
	}
	// The shell's `log` command shows recent lines; they hold no key, raw
	// frame or biometric byte, since tboxd never logs those.
	ring := shell.NewLogRing(200)
	log, level := newLogger(cfg.Log, os.Stderr)
	log = slog.New(ring.Handler(log.Handler(), slog.LevelInfo))
	hupDone := make(chan struct{})
	defer close(hupDone)
	var ready atomic.Bool // READY=1 sent: a reload may say READY=1 again
	go func() {
		for {
			select {
			case <-hupDone:
				return
			case <-hup:
				reload(cfgPath, level, log, ready.Load())
			}
		}
	}()
	p, err := profile.Load(cfg.path(cfg.Profile))
	if err != nil {
		return err
	}
	for _, w := range p.Warnings() {
		log.Warn("profile", "warning", w)
	}
	key, err := loadDeviceKey(cfg, log)
	if err != nil {
		return err
	}
	defer key.Close() // zeroes a TPM-unsealed key
	device := key.Address().String()
	log = log.With("device", device)

	if err := os.MkdirAll(cfg.path(cfg.StateDir), 0o700); err != nil {
		return errorf("state_dir: %w", err)
	}
	st, err := store.Open(cfg.path(cfg.StateDir), &store.Options{
		MaxBytes:        cfg.Outbox.MaxBytes,
		CheckpointEvery: cfg.Outbox.Checkpoint.Duration,
		Logger:          log.With("part", "outbox"),
	})
	if errors.Is(err, store.ErrHeadLost) {
		return errorf("outbox: %w; to recover with the collector up, move %s aside (keep the device key) and start tboxd again: "+
			"it resumes after the collector's retained receipt (README \"A car is never stranded\")", err, cfg.path(cfg.StateDir))
	}
	if err != nil {
		return errorf("outbox: %w", err)
	}
	defer st.Close()
	if rec := st.Stats().Recovery; rec.Repaired() {
		log.Error("outbox was damaged and repaired", "recovery", fmt.Sprintf("%+v", rec))
	}
	logLost(log, st.Stats().Lost)

	// The health report reads the agent's parts once they exist.
	var sp atomic.Pointer[shellParts]
	var up *uplink.Uplink
	if cfg.MQTT.Broker != "" {
		ucfg := uplink.Config{
			Broker:         cfg.MQTT.Broker,
			Device:         device,
			CAFile:         cfg.path(cfg.MQTT.CAFile),
			CertFile:       cfg.path(cfg.MQTT.CertFile),
			KeyFile:        cfg.path(cfg.MQTT.KeyFile),
			AllowInsecure:  cfg.MQTT.AllowInsecure,
			KeepAlive:      cfg.MQTT.KeepAlive.Duration,
			BackoffMin:     cfg.MQTT.BackoffMin.Duration,
			BackoffMax:     cfg.MQTT.BackoffMax.Duration,
			Window:         cfg.MQTT.Window,
			NackRetry:      cfg.MQTT.NackRetry.Duration,
			AckTimeout:     cfg.MQTT.AckTimeout.Duration,
			HealthInterval: cfg.MQTT.HealthInterval.Duration,
			ChainID:        cfg.ChainID,
			Collectors:     cfg.MQTT.collectors,
			Logger:         log.With("part", "uplink"),
			Health:         func() any { return health(st, sp.Load()) },
			AckedThrough:   st.Stats().AckedThrough,
		}
		up, err = uplink.New(ucfg, outbox{st})
		if ue, ok := errors.AsType[*uplink.ConfigError](err); ok {
			// Name the key as the operator wrote it: mqtt.key_file.
			msg := ue.Msg
			if ue.Value != "" {
				msg = fmt.Sprintf("%q: %s", ue.Value, ue.Msg)
			}
			if ue.Cause != nil {
				msg += ": " + ue.Cause.Error()
			}
			return &ConfigError{File: cfg.file, Field: "mqtt." + ue.Field, Msg: msg, Err: ue}
		}
		if err != nil {
			return err
		}
		if r := cfg.MQTT.ResumeFromReceipt; r == nil || *r {
			resumeFromReceipt(ctx, ucfg, st, log)
		}
	} else {
		log.Warn("no mqtt.broker configured: attestations stay in the outbox")
	}

	bt, _ := strconv.ParseInt(buildTime, 10, 64)
	acfg := agent.AttesterConfig{
		ChainID: cfg.ChainID,
		Profile: p,
		MinTime: time.Unix(bt, 0),
		Logger:  log.With("part", "attester"),
		// The engine's real-time tolerances compress with the frame times.
		TimeScale: cfg.CAN.TimeScale,
	}
	if bt == 0 || cfg.CAN.Replay != "" {
		// A replay trusts its log's timestamps (as tboxctl replay does): a
		// log recorded before this build is not an unset clock.
		acfg.MinTime = time.Time{}
	}
	if up != nil {
		acfg.OnDurable = func(store.Record, *signer.Attestation) { up.Notify() }
	}
	att, err := agent.NewAttester(acfg, key, st)
	if err != nil {
		return err
	}
	if att.Restarted() {
		log.Info("resumed", "head", st.Stats().Head, "pending", st.Stats().Depth)
	}

	sources, err := openSources(ctx, cfg, p, log)
	if err != nil {
		return err
	}
	pl, err := openPoller(cfg, p, log.With("part", "poll"))
	if err != nil {
		for _, s := range sources {
			s.Close()
		}
		return err
	}
	opts := agent.Options{
		Sources:   sources,
		Clock:     &agent.ClockCheck{Build: acfg.MinTime},
		Grace:     cfg.Shutdown.Duration,
		Logger:    log.With("part", "agent"),
		Drained:   func() bool { return st.Stats().Depth == 0 },
		TimeScale: cfg.CAN.TimeScale,
	}
	if cfg.CAN.Replay == "" {
		// A coalescing socket hands frames over up to that late.
		opts.ReadLag = 2 * cfg.CAN.Coalesce.Duration
	} else {
		opts.Clock = nil // the log's timestamps are the clock, not the wall's
	}
	if cfg.CAN.TimeScale > 1 {
		log.Warn("time compressed for a bench: not for a vehicle", "time_scale", cfg.CAN.TimeScale)
	}
	if up != nil {
		opts.Uplink = up
	}
	parts := &shellParts{Key: key, Store: st, Uplink: up, Sources: sources, Profile: p, Logs: ring, Logger: log, Poller: pl}
	svc, err := newShell(cfg, parts)
	if err != nil {
		for _, s := range sources {
			s.Close()
		}
		if pl != nil {
			pl.close()
		}
		return err
	}
	opts.Shell = svc
	sup, err := startSupervisor(ctx, cfg.Watchdog, log)
	if err != nil {
		for _, s := range sources {
			s.Close()
		}
		if pl != nil {
			pl.close()
		}
		return err
	}
	defer sup.Close()
	a := agent.New(att, opts)
	parts.attach(a)
	sp.Store(parts)
	sup.Ready(newLiveness(a, st, livenessStale).check) // READY=1: key, outbox and buses are up
	ready.Store(true)
	log.Info("tboxd started", "version", version, "sources", len(sources), "chain_id", cfg.ChainID)
	stopPoll := func() {}
	if pl != nil {
		stopPoll = pl.start(ctx)
	}
	err = a.Run(ctx)
	stopPoll()
	for _, s := range sources {
		if c, ok := s.Rx.(*socketcan.Conn); ok {
			cs := c.Stats()
			log.Info("CAN counters", "bus", s.Name, "frames", cs.Frames, "reads", cs.Reads, "dropped", cs.Dropped,
				"error_frames", cs.ErrorFrames, "malformed", cs.Malformed, "reopens", cs.Reopens)
		}
	}
	log.Info("tboxd stopped", "frames", a.C.Frames.Load(), "attestations_made", att.Made(), "outbox_depth", st.Stats().Depth, "err", err)
	return err
}

// reload applies SIGHUP: it re-reads the configuration file and sets the
// log level from it. Everything else takes effect at the next start; the
// log line says so.
// Under systemd, RELOADING=1 ... READY=1 frame it (notifyReload).
func reload(cfgPath string, level *slog.LevelVar, log *slog.Logger, ready bool) {
	err := notifyReload(log, ready, func() error {
		cfg, err := LoadConfig(cfgPath)
		if err != nil {
			return err
		}
		old := level.Level()
		level.UnmarshalText([]byte(cfg.Log.Level)) // validated
		log.Warn("SIGHUP: configuration reloaded", "log.level", level.Level().String(), "was", old.String(),
			"note", "other settings take effect at the next start")
		return nil
	})
	if err != nil {
		log.Error("SIGHUP: configuration not reloaded, nothing changed", "err", err)
	}
}

// health is the agent's part of the retained health report: the outbox
// (from the store, so it is right after a restart), and once the agent
// runs, its CAN buses (state, frames, drops, error frames, bus-off,
// reopens), the age of the last frame and the clock's trust.
func health(st *store.Store, parts *shellParts) any {
	s := st.Stats()
	h := map[string]any{
		"version":      version,
		"outbox_depth": s.Depth,
		"head":         s.Head,
		"acked":        s.AckedThrough,
		"outbox_full":  s.Full,
	}
	if !s.Oldest.IsZero() {
		h["oldest_pending_s"] = int64(time.Since(s.Oldest).Seconds())
	}
	if l := s.Lost; !l.Empty() {
		h["maybe_lost"] = lostReport{From: l.From, To: l.To, At: l.At.Unix()}
	}
	if parts == nil {
		return h
	}
	ss := parts.status()
	buses := make([]map[string]any, 0, len(ss.Buses))
	for _, b := range ss.Buses {
		bm := map[string]any{
			"bus": b.Name, "state": b.State, "frames": b.Frames, "dropped": b.Dropped,
			"error_frames": b.ErrorFrames, "bus_off": b.BusOff, "error_passive": b.ErrorPassive, "reopens": b.Reopens,
		}
		if b.Controller != "" {
			bm["controller"] = b.Controller // a real controller's state, bit rate, error counters
		}
		buses = append(buses, bm)
	}
	h["can"] = buses
	h["frames"] = ss.Frames
	if !ss.LastFrame.IsZero() {
		h["last_frame_age_s"] = int64(time.Since(ss.LastFrame).Seconds())
	}
	h["clock_trusted"] = !ss.ClockUntrusted
	if pp := ss.Poll; pp.Known {
		h["poll"] = map[string]any{"source": pp.Source, "transport": pp.Transport, "requests": pp.Requests, "answers": pp.Answers,
			"timeouts": pp.Timeouts, "negative": pp.Negative, "pending": pp.Pending, "silent": pp.Silent}
	}
	return h
}

// outbox adapts the store to the uplink.
type outbox struct{ st *store.Store }

func (o outbox) Pending(after uint64, limit int) ([]uplink.Message, error) {
	recs, err := o.st.Pending(after, limit)
	if err != nil {
		return nil, err
	}
	msgs := make([]uplink.Message, len(recs))
	for i, r := range recs {
		msgs[i] = uplink.Message{Seq: r.Seq, Digest: r.Digest, Wire: r.Wire}
	}
	return msgs, nil
}

func (o outbox) Ack(r signer.Receipt) error {
	_, err := o.st.AckReceipt(r.Seq, r.AppendWire(nil))
	return err
}

func (o outbox) Nack(seq uint64, reason string) error { return o.st.Nack(seq, reason) }

// openSources opens the CAN inputs: a candump log, or one SocketCAN socket
// per bus the profile reads, each with the kernel filter of exactly that
// bus's profile messages.
func openSources(ctx context.Context, cfg *Config, p *profile.Profile, log *slog.Logger) ([]agent.Source, error) {
	if cfg.CAN.Replay != "" {
		f, err := os.Open(cfg.path(cfg.CAN.Replay))
		if err != nil {
			return nil, &ConfigError{File: cfg.file, Field: "can.replay", Msg: "cannot open the log", Err: err}
		}
		var keys []can.Key
		for _, bus := range p.Buses() {
			keys = append(keys, p.Filter(bus).Keys()...)
		}
		opts := []can.ReaderOption{can.WithFilter(can.NewFilter(keys...)), can.WithContext(ctx)}
		if cfg.CAN.ReplayPace > 0 {
			opts = append(opts, can.WithPace(scaledClock{start: time.Now(), speed: cfg.CAN.ReplayPace}))
		}
		return []agent.Source{{Name: cfg.CAN.Replay, Rx: can.NewReader(f, opts...), Close: f.Close, LogTime: true}}, nil
	}
	var out []agent.Source
	for _, bus := range p.Buses() {
		iface := bus
		if iface == "" {
			iface = cfg.CAN.Interface
		}
		reopenMax := cfg.CAN.ReopenMax.Duration
		if reopenMax == 0 {
			reopenMax = 2 * time.Second
		}
		opts := rawOptions(p.Filter(bus), reopenMax, log.With("bus", iface))
		if cfg.CAN.ReceiveBuffer > 0 {
			opts = append(opts, socketcan.WithReceiveBuffer(cfg.CAN.ReceiveBuffer))
		}
		if cfg.CAN.Coalesce.Duration > 0 {
			opts = append(opts, socketcan.WithCoalesce(cfg.CAN.Coalesce.Duration))
		}
		// CAN FD frames only where the profile's messages are FD: the
		// socket then reads canfd_frame, and Open checks the MTU.
		fd := p.FD(bus)
		if fd {
			opts = append(opts, socketcan.WithFD(true))
		}
		conn, err := socketcan.Open(iface, opts...)
		if err != nil {
			for _, s := range out {
				s.Close()
			}
			if fd {
				return nil, errorf("CAN interface %s (the profile reads CAN FD frames on it: bring it up with `ip link set %s up type can bitrate 500000 dbitrate 2000000 fd on`): %w", iface, iface, err)
			}
			return nil, errorf("CAN interface %s (bring it up with `ip link set %s up type can bitrate 500000`): %w", iface, iface, err)
		}
		if fd {
			log.Info("CAN FD frames enabled", "bus", iface)
		}
		go logEvents(conn, log.With("bus", iface))
		out = append(out, agent.Source{Name: iface, Rx: conn, Close: conn.Close})
	}
	return out, nil
}

// rawOptions are a raw socket's options: the kernel filter, the reopen
// delays and the logger. One copy, not inlined: each of the two sockets'
// calls (the buses, the userspace ISO-TP) would otherwise carry its own
// copies of the options' closures.
//
//go:noinline
func rawOptions(f *can.Filter, reopenMax time.Duration, log *slog.Logger) []socketcan.Option {
	return []socketcan.Option{socketcan.WithFilter(f), socketcan.WithReopen(50*time.Millisecond, reopenMax), socketcan.WithLogger(log)}
}

// logEvents logs the bus's error and link events until the socket closes.
func logEvents(conn *socketcan.Conn, log *slog.Logger) {
	for ev := range conn.Events() {
		switch ev.Kind {
		case socketcan.BusOff, socketcan.ErrorPassive, socketcan.Down:
			log.Warn("CAN event", "kind", ev.Kind.String(), "err", ev.Err)
		default:
			log.Info("CAN event", "kind", ev.Kind.String())
		}
	}
}

// scaledClock runs speed times faster than the wall clock, for a paced log
// replay.
type scaledClock struct {
	_ [0]func() // not comparable: no generated equality function (tboxd size)

	start time.Time
	speed float64
}

func (c scaledClock) Now() time.Time {
	return c.start.Add(time.Duration(float64(time.Since(c.start)) * c.speed))
}

func (c scaledClock) After(d time.Duration) <-chan time.Time {
	return time.After(time.Duration(float64(d) / c.speed))
}

// isA reports whether err's chain holds an E: errors.As without its
// reflection, which tboxd links nowhere else.
func isA[E error](err error) bool {
	_, ok := errors.AsType[E](err)
	return ok
}
