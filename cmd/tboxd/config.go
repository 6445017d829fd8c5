package main

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/agent/uplink"
	"github.com/csop/tbox/signer"
)

// Config is tboxd's configuration file (TOML). Paths are relative to the
// file. See tboxd.example.toml for every key, documented.
type Config struct {
	Profile  string `toml:"profile"`
	Key      string `toml:"key"`
	StateDir string `toml:"state_dir"`
	// ChainID is the EIP-712 domain's chainId. TOML integers are signed:
	// the file's value is read into RawChainID and range-checked, so that
	// -1 is refused instead of becoming 2^64-1.
	ChainID    uint64 `toml:"-"`
	RawChainID int64  `toml:"chain_id"`

	CAN    CANConfig    `toml:"can"`
	Outbox OutboxConfig `toml:"outbox"`
	MQTT   MQTTConfig   `toml:"mqtt"`
	Shell  ShellConfig  `toml:"shell"`
	Log    LogConfig    `toml:"log"`
	// Watchdog and TPM: see notify.go and tpmkey.go.
	Watchdog WatchdogConfig `toml:"watchdog"`
	TPM      TPMConfig      `toml:"tpm"`

	Shutdown duration `toml:"shutdown_grace"`

	file string
}

// CANConfig selects the CAN source.
type CANConfig struct {
	_ [0]func() // not comparable: no generated equality function (tboxd size)

	Interface     string   `toml:"interface"`      // the default bus, "can0"
	Replay        string   `toml:"replay"`         // a candump log instead of SocketCAN
	ReplayPace    float64  `toml:"replay_pace"`    // 0: as fast as possible, 1: recorded pace
	ReceiveBuffer int      `toml:"receive_buffer"` // SO_RCVBUF bytes, 0 = kernel default
	ReopenMax     duration `toml:"reopen_max"`     // longest wait between reopen attempts
	// Coalesce lets frames gather in the socket for up to this long
	// between two receives (socketcan.WithCoalesce); 0 turns it off.
	Coalesce duration `toml:"coalesce"`
	// TimeScale compresses time for a bench or a demo (never on a car):
	// frame times count TimeScale times faster from the agent's start.
	TimeScale float64 `toml:"time_scale"`
	// ISOTP is the transport of the odometer request of a profile whose
	// odometer is asked for: "auto" (the default: the kernel's ISO-TP
	// socket where the kernel has it, else userspace), "kernel" or "user".
	ISOTP string `toml:"isotp"`
}

// OutboxConfig bounds the on-flash buffer.
type OutboxConfig struct {
	MaxBytes   int64    `toml:"max_bytes"`
	Checkpoint duration `toml:"checkpoint_interval"`
}

// MQTTConfig is the uplink; an empty broker disables it.
type MQTTConfig struct {
	Broker         string   `toml:"broker"`
	CAFile         string   `toml:"ca_file"`
	CertFile       string   `toml:"cert_file"`
	KeyFile        string   `toml:"key_file"`
	AllowInsecure  bool     `toml:"allow_insecure"`
	KeepAlive      duration `toml:"keepalive"`
	BackoffMin     duration `toml:"backoff_min"`
	BackoffMax     duration `toml:"backoff_max"`
	Window         int      `toml:"window"`
	NackRetry      duration `toml:"nack_retry"`
	AckTimeout     duration `toml:"ack_timeout"`
	HealthInterval duration `toml:"health_interval"`
	// CollectorAddresses are the collector keys whose signed receipts may
	// remove attestations (README §C2 rev 2); required with a broker.
	CollectorAddresses []string `toml:"collector_addresses"`
	// ResumeFromReceipt (default true): every start first reads the
	// retained receipt on a connection of its own, and an outbox with no
	// chain or a head below the receipt continues from it (reflash.go).
	ResumeFromReceipt *bool `toml:"resume_from_receipt"`

	collectors []signer.Address
}

// ShellConfig is the diagnostic shell on a serial port; an empty device
// disables it.
type ShellConfig struct {
	_ [0]func() // not comparable: no generated equality function (tboxd size)

	Device        string   `toml:"device"`
	Baud          int      `toml:"baud"`
	IdleTimeout   duration `toml:"idle_timeout"`
	ServicePubKey string   `toml:"service_pubkey"`
	UnlockTTL     duration `toml:"unlock_ttl"`
}

// LogConfig selects the log level and format.
type LogConfig struct {
	_ [0]func() // not comparable: no generated equality function (tboxd size)

	Level  string `toml:"level"`  // debug, info, warn, error
	Format string `toml:"format"` // text or json
}

// duration is a time.Duration spelled "1m30s" in TOML.
type duration struct{ time.Duration }

func (d *duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return errorf("want a duration such as \"30s\" or \"5m\", found %q", b)
	}
	if v < 0 {
		return errorf("want a positive duration, found %q", b)
	}
	d.Duration = v
	return nil
}

// ConfigError is a bad configuration: exit status 2. It names the file and
// the field (or line).
type ConfigError struct {
	_ [0]func() // not comparable: no generated equality function (tboxd size)

	File  string
	Line  int
	Field string
	Msg   string
	Err   error
}

func (e *ConfigError) Error() string {
	// Concatenation, not a strings.Builder, whose inlined writes cost tboxd
	// 2 KiB here.
	s := e.File
	if e.Line > 0 {
		s += ":" + strconv.Itoa(e.Line)
	}
	if e.Field != "" {
		s += ": " + e.Field
	}
	s += ": " + e.Msg
	if e.Err != nil && !strings.Contains(e.Msg, e.Err.Error()) && !isA[*uplink.ConfigError](e.Err) {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *ConfigError) Unwrap() error { return e.Err }

// ErrConfig is the sentinel of every configuration error.
var ErrConfig = errors.New("bad configuration")

// MaxConfigSize bounds a configuration file (a real one is a few KiB).
const MaxConfigSize = 1 << 20

// LoadConfig reads, defaults and validates a configuration file. It reads
// only a regular file of at most MaxConfigSize bytes: a named pipe, a
// device or a directory is refused at once (a FIFO would block the start
// for good, deaf to SIGTERM).
func LoadConfig(path string) (*Config, error) {
	data, err := profile.ReadFileLimit(path, MaxConfigSize)
	if err != nil {
		return nil, &ConfigError{File: path, Msg: "cannot read", Err: err}
	}
	return parseConfig(path, data)
}

func parseConfig(path string, data []byte) (*Config, error) {
	c := &Config{file: path}
	md, err := toml.Decode(string(data), c)
	if err != nil {
		if pe, ok := errors.AsType[toml.ParseError](err); ok {
			field := ""
			if len(md.Keys()) > 0 {
				// The TOML parsed and a value was refused (a bad
				// duration): name its key. A syntax error has only a line.
				field = pe.LastKey
			}
			return nil, &ConfigError{File: path, Line: pe.Position.Line, Field: field, Msg: pe.Message, Err: ErrConfig}
		}
		return nil, &ConfigError{File: path, Msg: err.Error(), Err: ErrConfig}
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, &ConfigError{File: path, Field: und[0].String(), Msg: "unknown key", Err: ErrConfig}
	}
	if !md.IsDefined("can", "coalesce") {
		c.CAN.Coalesce.Duration = defaultCoalesce
	}
	c.defaults()
	c.deployDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	if errs := c.deployProblems(); len(errs) > 0 {
		return nil, errs[0]
	}
	return c, nil
}

// defaultCoalesce is can.coalesce when not set: a car's 65 frames a second
// arrive in about one batch per interval instead of one wake-up each, and
// a span's distance, counted from kernel receive times, does not change.
const defaultCoalesce = 20 * time.Millisecond

func (c *Config) defaults() {
	if c.RawChainID == 0 {
		c.RawChainID = 20220807
	}
	if c.RawChainID > 0 {
		c.ChainID = uint64(c.RawChainID)
	}
	if c.CAN.Interface == "" {
		c.CAN.Interface = "can0"
	}
	if c.Shell.Baud == 0 {
		c.Shell.Baud = 115200
	}
	if c.CAN.ISOTP == "" {
		c.CAN.ISOTP = "auto"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.Shutdown.Duration == 0 {
		c.Shutdown.Duration = 5 * time.Second
	}
}

// Not inlined: an error path called from many places, kept as one copy.
//
//go:noinline
func (c *Config) fail(field, format string, a ...any) error {
	return &ConfigError{File: c.file, Field: field, Msg: fmt.Sprintf(format, a...), Err: ErrConfig}
}

// durationRange is the range of a duration key; 0 means "the default" for
// the keys where zero is allowed.
type durationRange struct {
	key      string
	v        time.Duration
	zeroOK   bool
	min, max time.Duration
}

// validate checks every field and returns every problem found (joined), so
// that a provisioning line sees them all at once. Each is a *ConfigError
// naming the file and the key.
func (c *Config) validate() error {
	pr := &problems{c: c}
	if c.Profile == "" {
		pr.add("profile", "required: the vehicle profile (TOML)")
	}
	if c.Key == "" {
		pr.add("key", "required: the device key file")
	}
	if c.StateDir == "" {
		pr.add("state_dir", "required: the directory of the outbox and state")
	}
	if c.RawChainID <= 0 {
		pr.add("chain_id", "want a chain ID from 1 to %d, found %d", int64(math.MaxInt64), c.RawChainID)
	}
	if p := c.CAN.ReplayPace; !(p >= 0 && p <= maxSpeedUp) {
		pr.add("can.replay_pace", "want 0 (as fast as possible) or a speed-up up to %g, found %v", float64(maxSpeedUp), p)
	}
	if ts := c.CAN.TimeScale; !(ts == 0 || (ts >= 1 && ts <= maxSpeedUp)) {
		pr.add("can.time_scale", "want 0 (real time) or a speed-up from 1 to %g, found %v", float64(maxSpeedUp), ts)
	}
	switch c.CAN.ISOTP {
	case "auto", "kernel", "user":
	default:
		pr.add("can.isotp", "want auto, kernel or user, found %q", c.CAN.ISOTP)
	}
	if b := c.CAN.ReceiveBuffer; b < 0 || b > 64<<20 {
		pr.add("can.receive_buffer", "want bytes from 0 (the kernel's default) to 67108864, found %d", b)
	}
	if b := c.Outbox.MaxBytes; b < 0 || (b > 0 && b < 64<<10) || b > 1<<40 {
		pr.add("outbox.max_bytes", "want 0 (the default) or 65536 to 1099511627776 bytes, found %d", b)
	}
	if w := c.MQTT.Window; w < 0 || w > 10000 {
		pr.add("mqtt.window", "want 0 (the default) to 10000 attestations in flight, found %d", w)
	}
	if b := c.Shell.Baud; b < 50 || b > 4000000 {
		pr.add("shell.baud", "want a baud rate from 50 to 4000000, found %d", b)
	}
	for _, d := range []durationRange{
		{"shutdown_grace", c.Shutdown.Duration, false, 100 * time.Millisecond, 10 * time.Minute},
		{"can.reopen_max", c.CAN.ReopenMax.Duration, true, 10 * time.Millisecond, time.Minute},
		{"can.coalesce", c.CAN.Coalesce.Duration, true, 0, time.Second},
		{"outbox.checkpoint_interval", c.Outbox.Checkpoint.Duration, true, time.Second, time.Hour},
		{"mqtt.keepalive", c.MQTT.KeepAlive.Duration, true, time.Second, time.Hour},
		{"mqtt.backoff_min", c.MQTT.BackoffMin.Duration, true, 10 * time.Millisecond, time.Minute},
		{"mqtt.backoff_max", c.MQTT.BackoffMax.Duration, true, 10 * time.Millisecond, time.Hour},
		{"mqtt.nack_retry", c.MQTT.NackRetry.Duration, true, time.Second, 24 * time.Hour},
		{"mqtt.ack_timeout", c.MQTT.AckTimeout.Duration, true, 100 * time.Millisecond, time.Hour},
		{"mqtt.health_interval", c.MQTT.HealthInterval.Duration, true, time.Second, 24 * time.Hour},
		{"shell.idle_timeout", c.Shell.IdleTimeout.Duration, true, 10 * time.Second, 24 * time.Hour},
		{"shell.unlock_ttl", c.Shell.UnlockTTL.Duration, true, 10 * time.Second, 24 * time.Hour},
	} {
		if d.v == 0 && d.zeroOK {
			continue
		}
		if d.v < d.min || d.v > d.max {
			zero := ""
			if d.zeroOK {
				zero = "unset (the default) or "
			}
			pr.add(d.key, "want %sa duration from %v to %v, found %v", zero, d.min, d.max, d.v)
		}
	}
	if lo, hi := c.MQTT.BackoffMin.Duration, c.MQTT.BackoffMax.Duration; lo > 0 && hi > 0 && lo > hi {
		pr.add("mqtt.backoff_max", "want at least mqtt.backoff_min (%v), found %v", lo, hi)
	}
	if c.MQTT.Broker != "" && len(c.MQTT.CollectorAddresses) == 0 {
		pr.add("mqtt.collector_addresses", "required with mqtt.broker: the address(es) of the collector key(s) that sign receipts, e.g. [\"0x...\"]")
	}
	if n := len(c.MQTT.CollectorAddresses); n > 16 {
		pr.add("mqtt.collector_addresses", "want at most 16 addresses, found %d", n)
	}
	c.MQTT.collectors = c.MQTT.collectors[:0]
	for i, a := range c.MQTT.CollectorAddresses {
		addr, err := signer.ParseAddress(a)
		if err != nil {
			pr.add(fmt.Sprintf("mqtt.collector_addresses[%d]", i), "want 0x and 40 hex digits (a collector key's address), found %q", a)
			continue
		}
		c.MQTT.collectors = append(c.MQTT.collectors, addr)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		pr.add("log.level", "want debug, info, warn or error, found %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		pr.add("log.format", "want text or json, found %q", c.Log.Format)
	}
	return errors.Join(pr.errs...)
}

// problems collects a validation's problems. Its add is one call, not a
// closure inlined at each of validate's checks.
type problems struct {
	c    *Config
	errs []error
}

//go:noinline
func (p *problems) add(field, format string, a ...any) {
	p.errs = append(p.errs, p.c.fail(field, format, a...))
}

// maxSpeedUp bounds can.replay_pace and can.time_scale: a week a second.
const maxSpeedUp = 1e6

// path resolves p relative to the configuration file.
func (c *Config) path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(c.file), p)
}
