package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/agent/uplink"
	"github.com/csop/tbox/signer"
)

// deployDefaults fills the [watchdog] and [tpm] defaults.
func (c *Config) deployDefaults() {
	c.Watchdog.defaults()
	if c.TPM.Device == "" {
		c.TPM.Device = tpmDefaultDevice
	}
}

// deployProblems lists what is wrong with the [watchdog] and [tpm] tables.
func (c *Config) deployProblems() []error {
	errs := c.Watchdog.problems(c)
	if _, tpm := c.keyPath(); tpm && c.Key == tpmKeyPrefix {
		errs = appendErr(errs, c.fail("key", "want tpm:FILE, the sealed key file (tboxctl keygen --tpm)"))
	}
	return errs
}

// checkConfig checks a configuration as tboxd would start on it, without
// starting: the file's keys and values, then every file it names (the
// profile, the device key, the TLS files, the replay log), the state
// directory and the shell's device. It returns every problem found, each
// naming the file and the field; none means tboxd would start.
func checkConfig(path string) []error {
	data, err := profile.ReadFileLimit(path, MaxConfigSize)
	if err != nil {
		return []error{&ConfigError{File: path, Msg: "cannot read", Err: err}}
	}
	var errs []error
	// Every unknown key, not only the first.
	var probe Config
	if md, err := toml.Decode(string(data), &probe); err == nil {
		for _, k := range md.Undecoded() {
			errs = appendErr(errs, &ConfigError{File: path, Field: k.String(), Msg: "unknown key", Err: ErrConfig})
		}
	}
	cfg, err := parseConfig(path, data)
	if err != nil {
		if ce, ok := errors.AsType[*ConfigError](err); ok && ce.Msg == "unknown key" {
			// Listed above; check the rest with the unknown keys left out.
			cfg = &probe
			cfg.file = path
			cfg.defaults()
			cfg.deployDefaults()
			if verr := cfg.validate(); verr != nil {
				errs = append(errs, flatten(verr)...)
			}
			errs = append(errs, cfg.deployProblems()...)
		} else {
			errs = append(errs, flatten(err)...)
			if cfg == nil {
				if isA[toml.ParseError](err) {
					return errs // not TOML: nothing more can be read
				}
				cfg = &probe
				cfg.file = path
				cfg.defaults()
				cfg.deployDefaults()
				errs = append(errs, cfg.deployProblems()...)
			}
		}
	}
	return append(errs, cfg.checkFiles()...)
}

// flatten lists the errors an errors.Join holds.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// checkFiles checks what the configuration names on the file system.
func (c *Config) checkFiles() []error {
	var errs []error
	if c.Profile != "" {
		if _, err := profile.Load(c.path(c.Profile)); err != nil {
			errs = appendErr(errs, c.wrap("profile", err))
		}
	}
	if c.Key != "" {
		path, tpm := c.keyPath()
		if tpm {
			if err := checkTPMKey(path); err != nil {
				errs = appendErr(errs, c.wrap("key", err))
			}
			if _, err := os.Stat(c.TPM.Device); err != nil {
				errs = appendErr(errs, c.wrap("tpm.device", errorf("the TPM: %w", err)))
			}
		} else if _, err := signer.LoadKeyFile(path); err != nil {
			errs = appendErr(errs, c.wrap("key", err))
		}
	}
	if c.StateDir != "" {
		if err := checkStateDir(c.path(c.StateDir)); err != nil {
			errs = appendErr(errs, c.wrap("state_dir", err))
		}
	}
	if c.MQTT.Broker != "" {
		uc := uplink.Config{
			Broker: c.MQTT.Broker, Device: "0x0000000000000000000000000000000000000000",
			CAFile: c.path(c.MQTT.CAFile), CertFile: c.path(c.MQTT.CertFile), KeyFile: c.path(c.MQTT.KeyFile),
			AllowInsecure: c.MQTT.AllowInsecure, Window: c.MQTT.Window,
		}
		if err := uc.Validate(); err != nil {
			errs = appendErr(errs, c.wrap("mqtt", err))
		} else {
			for _, f := range [...]struct{ field, p string }{{"mqtt.ca_file", c.MQTT.CAFile}, {"mqtt.cert_file", c.MQTT.CertFile}, {"mqtt.key_file", c.MQTT.KeyFile}} {
				field, p := f.field, f.p
				if p == "" {
					continue
				}
				if f, err := os.Open(c.path(p)); err != nil {
					errs = appendErr(errs, c.wrap(field, err))
				} else {
					f.Close()
				}
			}
		}
	}
	if c.CAN.Replay != "" {
		if f, err := os.Open(c.path(c.CAN.Replay)); err != nil {
			errs = appendErr(errs, c.wrap("can.replay", err))
		} else {
			f.Close()
		}
	}
	if c.Shell.Device != "" {
		if _, err := os.Stat(c.Shell.Device); err != nil {
			errs = appendErr(errs, c.wrap("shell.device", err))
		}
	}
	if c.Watchdog.Device != "" {
		if _, err := os.Stat(c.Watchdog.Device); err != nil {
			errs = appendErr(errs, c.wrap("watchdog.device", err))
		}
	}
	return errs
}

// wrap names the field of a problem that its error does not name.
func (c *Config) wrap(field string, err error) error {
	if ce, ok := errors.AsType[*ConfigError](err); ok && ce.File != "" {
		return err
	}
	return &ConfigError{File: c.file, Field: field, Msg: err.Error(), Err: err}
}

// checkStateDir checks that dir exists and is writable, or can be created.
func checkStateDir(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		parent := filepath.Dir(dir)
		if pfi, perr := os.Stat(parent); perr != nil || !pfi.IsDir() {
			return errorf("does not exist, nor does its parent %s", parent)
		}
		dir = parent
	} else if err != nil {
		return err
	} else if !fi.IsDir() {
		return errors.New("not a directory")
	}
	// A new file of a name of its own (os.CreateTemp's retries would link
	// 1 KiB more into tboxd for this one check).
	name := filepath.Join(dir, ".check-config-"+strconv.Itoa(os.Getpid())+"-"+strconv.FormatInt(nanos(time.Now()), 36))
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return errorf("not writable: %w", err)
	}
	f.Close()
	return os.Remove(name)
}

// runCheckConfig prints every problem of the configuration at path, one a
// line, and returns tboxd's exit status: 0 when there is none, 2 otherwise.
func runCheckConfig(path string, stdout, stderr io.Writer) int {
	errs := checkConfig(path)
	for _, err := range errs {
		fmt.Fprintln(stderr, err)
	}
	if len(errs) > 0 {
		fmt.Fprintf(stderr, "tboxd: %s: %d problem(s)\n", path, len(errs))
		return 2
	}
	fmt.Fprintf(stdout, "%s: OK\n", path)
	return 0
}
