package cli

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/cmd/collector/internal/collect"
	"github.com/csop/tbox/cmd/collector/internal/draw"
	"github.com/csop/tbox/signer/sigcache"
)

// ErrConfig: a configuration file that cannot be used; the message names
// the file and the field.
var ErrConfig = errors.New("bad configuration")

// ConfigError is a problem with one field of the configuration file.
type ConfigError struct {
	File  string
	Field string // empty for a problem with the whole file
	Msg   string // what was expected and what was found
}

func (e *ConfigError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s: field %q: %s", e.File, e.Field, e.Msg)
}

// Unwrap returns ErrConfig.
func (e *ConfigError) Unwrap() error { return ErrConfig }

// Config is the collector's configuration file (TOML). Paths are relative
// to the file's directory.
//
//	broker        = "tcp://127.0.0.1:1883"  # or ssl://host:8883
//	client_id     = "collector-1"           # optional; unique per collector
//	ca            = "ca.crt"                # optional: broker CA
//	cert          = "collector.crt"         # optional: client certificate (mTLS)
//	key           = "collector.key"         # with cert
//	chain_id      = 20220807
//	registry      = "devices.txt"           # allowlist: one address per line
//	db            = "collector.db"          # the embedded ledger (one process), or:
//	database_url  = "postgres://collector@db.example/ledger"  # the shared PostgreSQL ledger of a fleet
//	share_group   = "collectors"            # optional: $share/<group>/csop/v1/+/att
//	registry_refresh = "10s"                # optional: how often the ledger's registry is re-read
//	seed          = "0x<64 hex>"            # public random value of the draw
//	winners       = 100                     # optional
//	max_speed_kmh = 300                     # optional
//	grace         = "1h"                    # optional: draw a batch this long after its end
//	draw_every    = "1m"                    # optional
//	gap_timeout   = "1h"                    # optional: held seqs wait this long for missing ones
//	log_level     = "info"                  # optional: debug, info, warn, error
//	signing_key   = "collector.key"         # run: the receipts' signer (a tboxctl keygen key file)
//	http          = "127.0.0.1:8080"        # optional: the status page and /metrics (web.go)
//	http_public   = false                   # optional: allow a non-loopback http address
//	key_cache     = 1000000                 # optional: devices whose public keys are kept for the signature check (about 144 B each)
//	table_cache   = 10000                   # optional: devices that also get a precomputed table (about 2.9 KB each)
type Config struct {
	File string `toml:"-"`

	Broker      string `toml:"broker"`
	ClientID    string `toml:"client_id"`
	CA          string `toml:"ca"`
	Cert        string `toml:"cert"`
	Key         string `toml:"key"`
	ChainID     uint64 `toml:"-"`        // RawChainID, range-checked
	RawChainID  int64  `toml:"chain_id"` // TOML integers are signed: -1 must not become 2^64-1
	Registry    string `toml:"registry"`
	DB          string `toml:"db"`
	DatabaseURL string `toml:"database_url"`
	ShareGroup  string `toml:"share_group"`
	RegRefresh  string `toml:"registry_refresh"`
	Seed        string `toml:"seed"`
	Winners     int64  `toml:"winners"`
	MaxSpeedKmh int64  `toml:"max_speed_kmh"`
	Grace       string `toml:"grace"`
	DrawEvery   string `toml:"draw_every"`
	GapTimeout  string `toml:"gap_timeout"`
	LogLevel    string `toml:"log_level"`
	SigningKey  string `toml:"signing_key"`
	HTTP        string `toml:"http"`
	HTTPPublic  bool   `toml:"http_public"`
	KeyCache    int64  `toml:"key_cache"`
	TableCache  int64  `toml:"table_cache"`

	seed       draw.Seed
	grace      time.Duration
	drawEvery  time.Duration
	gapTimeout time.Duration
	regRefresh time.Duration
}

// MaxKeyCache and MaxTableCache bound key_cache and table_cache: 100 M
// devices' keys are about 14 GB, 1 M devices' tables about 2.9 GB.
const (
	MaxKeyCache   = 100_000_000
	MaxTableCache = 1_000_000
)

// MaxConfigSize bounds a configuration file (a real one is a few KiB).
const MaxConfigSize = 1 << 20

// LoadConfig reads and validates the configuration file at path. Errors
// are *ConfigError (ErrConfig) except when the file cannot be read. Only a
// regular file of at most MaxConfigSize bytes is read: a named pipe, a
// device or a directory is refused at once.
func LoadConfig(path string) (*Config, error) {
	data, err := profile.ReadFileLimit(path, MaxConfigSize)
	if err != nil {
		return nil, &ConfigError{File: path, Msg: err.Error()}
	}
	return ParseConfig(path, data)
}

// ParseConfig parses and validates a configuration; path names it in
// errors and anchors relative paths.
func ParseConfig(path string, data []byte) (*Config, error) {
	c := &Config{File: path}
	md, err := toml.Decode(string(data), c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &ConfigError{File: path, Msg: fmt.Sprintf("line %d: %s", pe.Position.Line, pe.Message)}
		}
		return nil, &ConfigError{File: path, Msg: err.Error()}
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, &ConfigError{File: path, Field: und[0].String(), Msg: "unknown field; known: " + knownFields()}
	}
	bad := func(field, format string, args ...any) error {
		return &ConfigError{File: path, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	if c.RawChainID <= 0 {
		return nil, bad("chain_id", "missing or not positive (%d); expected the chain ID of the deployment (e.g. 20220807)", c.RawChainID)
	}
	c.ChainID = uint64(c.RawChainID)
	switch {
	case c.DB == "" && c.DatabaseURL == "":
		return nil, bad("db", "missing; expected the path of the collector database (or database_url for a shared PostgreSQL ledger)")
	case c.DB != "" && c.DatabaseURL != "":
		return nil, bad("database_url", "set together with db; expected one ledger: db (embedded, one process) or database_url (PostgreSQL)")
	case c.DatabaseURL != "" && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://"):
		return nil, bad("database_url", "expected postgres://user@host:port/database, found a value of another scheme")
	}
	if c.ShareGroup == "" {
		c.ShareGroup = collect.DefaultShareGroup
	}
	if err := collect.ValidShareGroup(c.ShareGroup); err != nil {
		return nil, bad("share_group", "%v", err)
	}
	if c.regRefresh, err = duration(c.RegRefresh, 10*time.Second, time.Second); err != nil {
		return nil, bad("registry_refresh", "%v", err)
	}
	if c.Seed == "" {
		return nil, bad("seed", "missing; expected 0x and 64 hex digits")
	}
	if c.seed, err = draw.ParseSeed(c.Seed); err != nil {
		return nil, bad("seed", "%v", err)
	}
	switch {
	case c.Winners == 0:
		c.Winners = collect.DefaultWinners
	case c.Winners < 0 || c.Winners > 1_000_000:
		return nil, bad("winners", "expected 1 to 1000000, found %d", c.Winners)
	}
	switch {
	case c.MaxSpeedKmh == 0:
		c.MaxSpeedKmh = collect.DefaultMaxSpeedKmh
	case c.MaxSpeedKmh < 0 || c.MaxSpeedKmh > 10_000:
		return nil, bad("max_speed_kmh", "expected 1 to 10000, found %d", c.MaxSpeedKmh)
	}
	if c.grace, err = duration(c.Grace, collect.DefaultGrace, 0); err != nil {
		return nil, bad("grace", "%v", err)
	}
	if c.drawEvery, err = duration(c.DrawEvery, collect.DefaultDrawEvery, time.Second); err != nil {
		return nil, bad("draw_every", "%v", err)
	}
	if c.gapTimeout, err = duration(c.GapTimeout, collect.DefaultGapTimeout, time.Second); err != nil {
		return nil, bad("gap_timeout", "%v", err)
	}
	switch {
	case c.KeyCache == 0:
		c.KeyCache = sigcache.DefaultKeys
	case c.KeyCache < 0 || c.KeyCache > MaxKeyCache:
		return nil, bad("key_cache", "expected 1 to %d devices (about %d bytes each), found %d", MaxKeyCache, sigcache.KeyBytes, c.KeyCache)
	}
	switch {
	case c.TableCache == 0:
		c.TableCache = sigcache.DefaultSize
	case c.TableCache < 0 || c.TableCache > MaxTableCache:
		return nil, bad("table_cache", "expected 1 to %d devices (about %d bytes each), found %d", MaxTableCache, sigcache.EntryBytes, c.TableCache)
	}
	if _, err := logLevel(c.LogLevel); err != nil {
		return nil, bad("log_level", "%v", err)
	}
	if err := checkHTTP(c.HTTP, c.HTTPPublic); err != nil {
		return nil, bad("http", "%v", err)
	}
	if (c.Cert == "") != (c.Key == "") {
		return nil, bad("cert", "cert and key go together for mutual TLS; found cert %q, key %q", c.Cert, c.Key)
	}
	dir := filepath.Dir(path)
	for _, p := range []*string{&c.CA, &c.Cert, &c.Key, &c.Registry, &c.DB, &c.SigningKey} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	return c, nil
}

// checkRun checks the fields only the run command needs.
func (c *Config) checkRun() error {
	bad := func(field, format string, args ...any) error {
		return &ConfigError{File: c.File, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	if c.Broker == "" {
		return bad("broker", "missing; expected tcp://host:port or ssl://host:port")
	}
	scheme, _, ok := strings.Cut(c.Broker, "://")
	switch {
	case !ok:
		return bad("broker", "expected tcp://host:port or ssl://host:port, found %q", c.Broker)
	case scheme == "tcp" || scheme == "mqtt":
		if c.CA != "" || c.Cert != "" {
			return bad("broker", "%q is not TLS, but ca or cert is set; expected ssl://", c.Broker)
		}
	case scheme == "ssl" || scheme == "tls" || scheme == "mqtts":
	default:
		return bad("broker", "scheme %q, expected tcp, ssl, tls or mqtts", scheme)
	}
	if c.SigningKey == "" {
		return bad("signing_key", "missing; expected the key file that signs every ack and nack (make one with tboxctl keygen; its address goes into the agents' mqtt.collector_addresses)")
	}
	return nil
}

func duration(s string, def, min time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < min {
		return 0, fmt.Errorf("expected a duration of at least %s such as \"30m\", found %q", min, s)
	}
	return d, nil
}

func knownFields() string {
	names := []string{"broker", "client_id", "ca", "cert", "key", "chain_id", "registry", "db", "database_url", "share_group", "registry_refresh", "seed", "winners", "max_speed_kmh", "grace", "draw_every", "gap_timeout", "log_level", "signing_key", "http", "http_public", "key_cache", "table_cache"}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
