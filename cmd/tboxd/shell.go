package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"

	"github.com/csop/tbox/agent"
	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/agent/shell"
	"github.com/csop/tbox/agent/uplink"
	"github.com/csop/tbox/can/socketcan"
	"github.com/csop/tbox/signer"
	"github.com/csop/tbox/store"
)

// shellParts are the running parts of tboxd that the diagnostic shell
// reads and acts on. attach the agent once agent.New has made it; until
// then status shows no engine counters and no open span.
type shellParts struct {
	Key     signer.Signer
	Store   *store.Store
	Uplink  *uplink.Uplink // nil without a broker
	Sources []agent.Source
	Profile *profile.Profile
	Logs    *shell.LogRing // nil: no log command
	Logger  *slog.Logger
	Poller  *poller // nil: the odometer is broadcast (or a log replay)

	agent atomic.Pointer[agent.Agent]
}

func (p *shellParts) attach(a *agent.Agent) { p.agent.Store(a) }

// Errors of the shell's service actions.
var (
	// errNoUplink: reconnect or retry-nacked without a broker.
	errNoUplink = errors.New("no uplink: mqtt.broker is not configured")
	// errNoCANSocket: reopen can on a tboxd that reads a candump log.
	errNoCANSocket = errors.New("no CAN socket to reopen: the input is a log replay")
	// errNoSuchBus: reopen can of a bus tboxd does not read.
	errNoSuchBus = errors.New("no such bus")
)

// reopenCAN reopens the SocketCAN socket of bus, or of every bus for "".
// The socket's reader carries on on the new socket; frames sent while it
// is closed are lost (the odometer is absolute: no distance is).
func (p *shellParts) reopenCAN(bus string) error {
	var names []string
	var errs []error
	found := false
	for _, s := range p.Sources {
		c, ok := s.Rx.(*socketcan.Conn)
		if !ok {
			continue
		}
		names = append(names, s.Name)
		if bus != "" && bus != s.Name && bus != c.Interface() {
			continue
		}
		found = true
		if err := c.Reopen(); err != nil {
			errs = appendErr(errs, err)
			continue
		}
		p.logger().Info("CAN socket reopened on request", "bus", s.Name)
	}
	switch {
	case len(names) == 0:
		return errNoCANSocket
	case !found:
		return errorf("%w %q: want one of %s", errNoSuchBus, bus, strings.Join(names, ", "))
	}
	return errors.Join(errs...)
}

func (p *shellParts) logger() *slog.Logger {
	if p.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Logger
}

// newShell returns the diagnostic shell service of cfg's [shell] section,
// or a nil Service when shell.device is empty. A malformed
// shell.service_pubkey is a *ConfigError.
func newShell(cfg *Config, p *shellParts) (agent.Service, error) {
	if cfg.Shell.Device == "" {
		return nil, nil
	}
	log := p.logger()
	deps := shell.Deps{
		Device:      p.Key.Address(),
		Version:     version,
		ChainID:     cfg.ChainID,
		Status:      p.status,
		Outbox:      p.Store,
		Key:         p.Key,
		ConfigText:  func() string { return configText(cfg) },
		ProfileText: func() string { return profileText(p.Profile) },
		Flush:       p.Store.Flush,
		Reconnect: func() error {
			if p.Uplink == nil {
				return errNoUplink
			}
			p.Uplink.Reconnect()
			return nil
		},
		RetryNacked: func() error {
			if p.Uplink == nil {
				return errNoUplink
			}
			p.Uplink.RetryNacked()
			return nil
		},
		ReopenCAN: p.reopenCAN,
		Logger:    log.With("part", "shell"),
	}
	if p.Logs != nil {
		deps.Logs = p.Logs
	}
	if p.Uplink != nil {
		deps.UploadNow = p.Uplink.Notify
	}
	sh, err := shell.New(shell.Config{
		Device:      cfg.Shell.Device,
		Baud:        cfg.Shell.Baud,
		IdleTimeout: cfg.Shell.IdleTimeout.Duration,
		ServiceKey:  cfg.Shell.ServicePubKey,
		UnlockTTL:   cfg.Shell.UnlockTTL.Duration,
	}, deps)
	if err != nil {
		return nil, &ConfigError{File: cfg.file, Field: "shell.service_pubkey",
			Msg: "want a secp256k1 public key in hex (33 bytes compressed or 65 uncompressed) or a 0x address",
			Err: errorf("%w: %w", ErrConfig, err)}
	}
	return sh, nil
}

// status takes a snapshot of the agent: atomics and the parts' own
// mutex-guarded Stats, nothing that waits for the agent's loop.
func (p *shellParts) status() shell.Status {
	var st shell.Status
	if a := p.agent.Load(); a != nil {
		st.Started = a.C.Started
		st.ClockUntrusted = a.C.ClockBad.Load()
		st.Frames = a.C.Frames.Load()
		st.SourceErrors = a.C.SourceErrors.Load()
		if t := a.C.LastFrame.Load(); t != 0 {
			st.LastFrame = fromNanos(t)
		}
		if nr := a.NotReadings(); nr != nil {
			st.NotReadings = shell.NotReadingStatus{Known: true,
				OdometerNamed: nr.Named(profile.Odometer), OdometerUndecodable: nr.Undecodable(profile.Odometer),
				SpeedNamed: nr.Named(profile.Speed), SpeedUndecodable: nr.Undecodable(profile.Speed)}
		}
		if pr := a.Progress(); pr.Open {
			st.Batch = shell.BatchStatus{Known: true, Batch: pr.Batch, Batches: uint64(pr.Batches), Meters: pr.Meters, Flags: pr.Flags,
				Candidate: pr.Candidate}
		}
	}
	for _, s := range p.Sources {
		bs := shell.BusStatus{Name: s.Name, State: "open"}
		if c, ok := s.Rx.(*socketcan.Conn); ok {
			cs := c.Stats()
			bs.State = "up"
			if cs.Count(socketcan.Down) > cs.Count(socketcan.Up) {
				bs.State = "down (reopening)"
			}
			bs.Frames, bs.Dropped, bs.ErrorFrames, bs.Reopens = cs.Frames, cs.Dropped, cs.ErrorFrames, cs.Reopens
			bs.BusOff, bs.ErrorPassive = cs.Count(socketcan.BusOff), cs.Count(socketcan.ErrorPassive)
			bs.Controller = controller(c.Interface())
		} else if s.LogTime {
			// A log has one source: the agent's count is its frames.
			bs.State, bs.Frames = "log replay", st.Frames
		}
		st.Buses = append(st.Buses, bs)
	}
	if p.Poller != nil {
		st.Poll = p.Poller.status()
	}
	if p.Store != nil {
		o := p.Store.Stats()
		st.Outbox = shell.OutboxStatus{
			Head: o.Head, AckedThrough: o.AckedThrough, Depth: o.Depth, Bytes: o.Bytes, MaxBytes: o.MaxBytes,
			Oldest: o.Oldest, Full: o.Full, Nacks: o.Nacks, LastNack: o.LastNack, Lost: o.Lost,
		}
	}
	if p.Uplink != nil {
		u := p.Uplink.Stats()
		st.Uplink = shell.UplinkStatus{
			Enabled: true, Connected: u.Connected, ConnectedSince: u.ConnectedSince, Reconnects: u.Reconnects,
			LastErrorAt: u.LastConnectAt, InFlight: u.InFlight, Publishes: u.Publishes, LastAcked: u.LastAcked,
			Nacks: u.Nacks, LastNackSeq: u.LastNackSeq, LastNackReason: u.LastNackReason,
			Ignored: u.Ignored, LastIgnored: u.LastIgnored,
		}
		if u.LastConnectError != nil {
			st.Uplink.LastError = u.LastConnectError.Error()
		}
	}
	return st
}

// configText renders the configuration for the shell's config command,
// section by section from the struct's TOML keys, so a key added later
// shows up too. It names files but never reads them; the password of a URL
// and any key that sounds secret are redacted.
func configText(c *Config) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n", c.file)
	var sections []reflect.Value
	var names []string
	v := reflect.ValueOf(*c)
	for i := range v.NumField() {
		f := v.Type().Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if !f.IsExported() || tag == "" {
			continue
		}
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[duration]() {
			sections, names = append(sections, v.Field(i)), append(names, tag)
			continue
		}
		writeKey(&b, tag, v.Field(i))
	}
	for i, sec := range sections {
		fmt.Fprintf(&b, "[%s]\n", names[i])
		for j := range sec.NumField() {
			f := sec.Type().Field(j)
			if tag, _, _ := strings.Cut(f.Tag.Get("toml"), ","); f.IsExported() && tag != "" {
				writeKey(&b, tag, sec.Field(j))
			}
		}
	}
	return b.String()
}

func writeKey(b *strings.Builder, key string, v reflect.Value) {
	if d, ok := v.Interface().(duration); ok {
		if d.Duration == 0 {
			fmt.Fprintf(b, "%s = (default)\n", key)
		} else {
			fmt.Fprintf(b, "%s = %q\n", key, d.String())
		}
		return
	}
	if v.Kind() != reflect.String {
		fmt.Fprintf(b, "%s = %v\n", key, v.Interface())
		return
	}
	s := v.String()
	switch {
	case strings.Contains(key, "password") || strings.Contains(key, "secret") || strings.Contains(key, "token"):
		if s != "" {
			s = "REDACTED"
		}
	case strings.Contains(s, "://"):
		s = redactURL(s)
	}
	fmt.Fprintf(b, "%s = %q\n", key, s)
}

// redactURL hides the password of a URL's user info.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if strings.Contains(s, "@") {
			return "REDACTED"
		}
		return s
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "REDACTED")
		}
	}
	return u.String()
}

// profileText renders the vehicle profile for the shell's profile command:
// what is read, from which bus, and what is blocked.
func profileText(p *profile.Profile) string {
	if p == nil {
		return "no profile"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "profile %s\ndbc %s\nmax speed %.0f km/h\n", p.File(), p.DBCFile(), p.MaxSpeedKmh())
	for _, k := range []profile.Kind{profile.Odometer, profile.DriveMode, profile.Speed} {
		si, ok := p.Signal(k)
		if !ok {
			fmt.Fprintf(&b, "%-10s (not configured)\n", k)
			continue
		}
		fmt.Fprintf(&b, "%-10s %s.%s, id %s, bus %s, unit %s\n", k, si.Message, si.Signal, si.Key, busName(si.Bus), orNone(si.Unit))
	}
	if po, ok := p.Poll(); ok {
		fmt.Fprintf(&b, "asks       %s request % X to id %s, answer from id %s, every %v, bus %s; the only frames written\n",
			po.Source, po.Payload(), po.Request, po.Response, po.Period, busName(po.Bus))
	}
	if names := p.ModeNames(); len(names) > 0 {
		fmt.Fprintf(&b, "modes      %s\n", strings.Join(names, ", "))
	}
	for _, bus := range p.Buses() {
		var ids []string
		for _, k := range p.Filter(bus).Keys() {
			ids = append(ids, k.String())
		}
		fmt.Fprintf(&b, "filter     bus %s receives only %s\n", busName(bus), strings.Join(ids, ", "))
	}
	var bio []string
	for _, k := range p.BiometricKeys() {
		bio = append(bio, k.String())
	}
	fmt.Fprintf(&b, "blocked    %d biometric messages never received: %s\n", len(bio), orNone(strings.Join(bio, ", ")))
	return b.String()
}

func busName(b string) string {
	if b == "" {
		return "default"
	}
	return b
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// controller is a real CAN controller's link state for the shell and the
// health report: "" for vcan or when the kernel does not answer.
func controller(iface string) string {
	l, err := socketcan.Link(iface)
	if err != nil || !l.HasCAN {
		return ""
	}
	return fmt.Sprintf("%s, %d bit/s, restart-ms %d, tx errors %d, rx errors %d", l.StateName(), l.Bitrate, l.RestartMS, l.TxErr, l.RxErr)
}
