package profile

import (
	"errors"
	"strconv"
)

// Errors of Load. A *ConfigError wraps one of them; test with errors.Is.
var (
	// ErrSyntax: the profile is not valid TOML or the DBC cannot be parsed.
	ErrSyntax = errors.New("syntax error")
	// ErrUnknownKey: the profile has a key the format does not define.
	ErrUnknownKey = errors.New("unknown key")
	// ErrMissing: a required file, section or key is absent.
	ErrMissing = errors.New("missing")
	// ErrUnknownMessage: a message name is not in the DBC.
	ErrUnknownMessage = errors.New("unknown message")
	// ErrUnknownSignal: a signal name is not in the named message.
	ErrUnknownSignal = errors.New("unknown signal")
	// ErrUnit: a unit is absent or not one the signal's kind can use.
	ErrUnit = errors.New("unknown unit")
	// ErrBiometric: a referenced message is or carries a biometric channel.
	ErrBiometric = errors.New("biometric channel refused")
	// ErrSignal: a signal's layout cannot be decoded (length, float width,
	// position outside the message).
	ErrSignal = errors.New("unsupported signal")
	// ErrValue: a value is out of its range (max_speed_kmh, bus name, an
	// encoded physical value).
	ErrValue = errors.New("invalid value")
	// ErrTooLarge: a profile or DBC file is above its size limit
	// (MaxProfileSize, MaxDBCSize).
	ErrTooLarge = errors.New("file too large")
	// ErrNotRegular: a profile or DBC path is not a regular file.
	ErrNotRegular = errors.New("not a regular file")
)

// ConfigError is a problem in a profile or its DBC. It names the file, the
// line when known, and the profile field (such as "odometer.signal").
type ConfigError struct {
	File  string
	Line  int
	Field string
	Err   error
}

func (e *ConfigError) Error() string {
	s := e.File
	if e.Line > 0 {
		s += ":" + strconv.Itoa(e.Line)
	}
	if e.Field != "" {
		if s != "" {
			s += ": "
		}
		s += e.Field
	}
	if s == "" {
		return e.Err.Error()
	}
	return s + ": " + e.Err.Error()
}

func (e *ConfigError) Unwrap() error { return e.Err }
