package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/csop/tbox/signer"
)

// Config is tboxd's configuration file (TOML). Paths are relative to the
// file. See tboxd.example.toml for every key, documented.
type Config struct {
	Profile  string `toml:"profile"`
	Key      string `toml:"key"`
	StateDir string `toml:"state_dir"`
	ChainID  uint64 `toml:"chain_id"`

	CAN    CANConfig    `toml:"can"`
	Outbox OutboxConfig `toml:"outbox"`
	MQTT   MQTTConfig   `toml:"mqtt"`
	Shell  ShellConfig  `toml:"shell"`
	Log    LogConfig    `toml:"log"`

	Shutdown duration `toml:"shutdown_grace"`

	file string
}

// CANConfig selects the CAN source.
type CANConfig struct {
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
	// remove attestations (SPEC.md §2 rev 2); required with a broker.
	CollectorAddresses []string `toml:"collector_addresses"`
	// ResumeFromReceipt (default true): a start with no chain in the
	// outbox first reads the retained receipt on a connection of its own
	// (reflash.go).
	ResumeFromReceipt *bool `toml:"resume_from_receipt"`

	collectors []signer.Address
}

// ShellConfig is the diagnostic shell on a serial port; an empty device
// disables it.
type ShellConfig struct {
	Device        string   `toml:"device"`
	Baud          int      `toml:"baud"`
	IdleTimeout   duration `toml:"idle_timeout"`
	ServicePubKey string   `toml:"service_pubkey"`
	UnlockTTL     duration `toml:"unlock_ttl"`
}

// LogConfig selects the log level and format.
type LogConfig struct {
	Level  string `toml:"level"`  // debug, info, warn, error
	Format string `toml:"format"` // text or json
}

// duration is a time.Duration spelled "1m30s" in TOML.
type duration struct{ time.Duration }

func (d *duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("want a duration such as \"30s\" or \"5m\", found %q", b)
	}
	if v < 0 {
		return fmt.Errorf("want a positive duration, found %q", b)
	}
	d.Duration = v
	return nil
}

// ConfigError is a bad configuration: exit status 2. It names the file and
// the field (or line).
type ConfigError struct {
	File  string
	Line  int
	Field string
	Msg   string
	Err   error
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Field != "" {
		b.WriteString(": ")
		b.WriteString(e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	if e.Err != nil && !strings.Contains(e.Msg, e.Err.Error()) {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *ConfigError) Unwrap() error { return e.Err }

// ErrConfig is the sentinel of every configuration error.
var ErrConfig = errors.New("bad configuration")

// LoadConfig reads, defaults and validates a configuration file.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{File: path, Msg: "cannot read", Err: err}
	}
	return parseConfig(path, data)
}

func parseConfig(path string, data []byte) (*Config, error) {
	c := &Config{file: path}
	md, err := toml.Decode(string(data), c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
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
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// defaultCoalesce is can.coalesce when not set: a car's 65 frames a second
// arrive in about one batch per interval instead of one wake-up each, and
// a span's distance, counted from kernel receive times, does not change.
const defaultCoalesce = 20 * time.Millisecond

func (c *Config) defaults() {
	if c.ChainID == 0 {
		c.ChainID = 20220807
	}
	if c.CAN.Interface == "" {
		c.CAN.Interface = "can0"
	}
	if c.Shell.Baud == 0 {
		c.Shell.Baud = 115200
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

func (c *Config) fail(field, format string, a ...any) error {
	return &ConfigError{File: c.file, Field: field, Msg: fmt.Sprintf(format, a...), Err: ErrConfig}
}

func (c *Config) validate() error {
	switch {
	case c.Profile == "":
		return c.fail("profile", "required: the vehicle profile (TOML)")
	case c.Key == "":
		return c.fail("key", "required: the device key file")
	case c.StateDir == "":
		return c.fail("state_dir", "required: the directory of the outbox and state")
	case c.CAN.ReplayPace < 0:
		return c.fail("can.replay_pace", "want 0 (as fast as possible) or a positive speed-up, found %v", c.CAN.ReplayPace)
	case c.CAN.TimeScale != 0 && c.CAN.TimeScale < 1:
		return c.fail("can.time_scale", "want 0 (real time) or a speed-up >= 1, found %v", c.CAN.TimeScale)
	case c.CAN.ReceiveBuffer < 0:
		return c.fail("can.receive_buffer", "want bytes >= 0, found %d", c.CAN.ReceiveBuffer)
	case c.CAN.Coalesce.Duration < 0 || c.CAN.Coalesce.Duration > time.Second:
		return c.fail("can.coalesce", "want 0 (off) up to 1s, found %v", c.CAN.Coalesce.Duration)
	case c.Outbox.MaxBytes < 0 || (c.Outbox.MaxBytes > 0 && c.Outbox.MaxBytes < 64<<10):
		return c.fail("outbox.max_bytes", "want at least 65536 bytes (or 0 for the default), found %d", c.Outbox.MaxBytes)
	case c.MQTT.Window < 0:
		return c.fail("mqtt.window", "want a positive number, found %d", c.MQTT.Window)
	case c.MQTT.Broker != "" && len(c.MQTT.CollectorAddresses) == 0:
		return c.fail("mqtt.collector_addresses", "required with mqtt.broker: the address(es) of the collector key(s) that sign receipts, e.g. [\"0x...\"]")
	case len(c.MQTT.CollectorAddresses) > 16:
		return c.fail("mqtt.collector_addresses", "want at most 16 addresses, found %d", len(c.MQTT.CollectorAddresses))
	case c.Shell.Baud < 0:
		return c.fail("shell.baud", "want a positive baud rate, found %d", c.Shell.Baud)
	}
	c.MQTT.collectors = c.MQTT.collectors[:0]
	for i, a := range c.MQTT.CollectorAddresses {
		addr, err := signer.ParseAddress(a)
		if err != nil {
			return c.fail(fmt.Sprintf("mqtt.collector_addresses[%d]", i), "want 0x and 40 hex digits (a collector key's address), found %q", a)
		}
		c.MQTT.collectors = append(c.MQTT.collectors, addr)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return c.fail("log.level", "want debug, info, warn or error, found %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return c.fail("log.format", "want text or json, found %q", c.Log.Format)
	}
	return nil
}

// path resolves p relative to the configuration file.
func (c *Config) path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(c.file), p)
}
