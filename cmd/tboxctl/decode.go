package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/can"
	"github.com/csop/tbox/signer"
	"github.com/csop/tbox/store"
)

func runDecode(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fl := newFlagSet("decode", stderr)
	profPath := fl.String("profile", "", "vehicle profile (TOML)")
	logPath := fl.String("log", "", "candump -l log (stdin when absent)")
	if err := parseFlags(fl, args, 0); err != nil {
		return err
	}
	if *profPath == "" {
		return usagef("--profile is required")
	}
	p, err := profile.Load(*profPath)
	if err != nil {
		return err
	}
	in, name, closeIn, err := openLog(*logPath, stdin)
	if err != nil {
		return err
	}
	defer closeIn()
	out := bufio.NewWriterSize(stdout, 64<<10)
	r := can.NewReader(in, can.WithFilter(allowlist(p)), can.WithContext(ctx))
	dec := p.NewDecoder()
	var readings []profile.Reading
	var line []byte
	for r.Receive() {
		readings = dec.Decode(r.Frame(), readings[:0])
		for i := range readings {
			line = appendReading(line[:0], &readings[i])
			if _, err := out.Write(line); err != nil {
				return err
			}
		}
	}
	// What was decoded before a bad line is printed before the error.
	ferr := out.Flush()
	if err := r.Err(); err != nil {
		if err := logError(name, err, stderr); err != nil {
			return err
		}
	}
	return ferr
}

// appendReading formats one reading as tboxctl decode's JSON line:
// {"t":<unix seconds>,"kind":"odometer"|"drive_mode"|"speed","value":...}.
func appendReading(b []byte, r *profile.Reading) []byte {
	b = append(b, `{"t":`...)
	us := r.Time.UnixMicro()
	b = strconv.AppendInt(b, us/1e6, 10)
	b = append(b, '.')
	frac := us % 1e6
	if frac < 0 {
		frac = -frac
	}
	b = append(b, "000000"[len(strconv.FormatInt(frac, 10)):]...)
	b = strconv.AppendInt(b, frac, 10)
	b = append(b, `,"kind":"`...)
	b = append(b, r.Kind.String()...)
	b = append(b, `","value":`...)
	if r.Kind == profile.DriveMode {
		b = strconv.AppendQuote(b, r.Mode)
	} else {
		b = strconv.AppendFloat(b, r.Value, 'f', -1, 64)
	}
	return append(b, "}\n"...)
}

// allowlist is the user-space receive filter of a log replay: the messages
// of the profile's signals, whatever their bus (the decoder sorts buses).
func allowlist(p *profile.Profile) *can.Filter {
	var keys []can.Key
	for _, bus := range p.Buses() {
		keys = append(keys, p.Filter(bus).Keys()...)
	}
	return can.NewFilter(keys...)
}

func openLog(path string, stdin io.Reader) (io.Reader, string, func(), error) {
	if path == "" {
		return stdin, "stdin", func() {}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, "", nil, usageError{err}
	}
	return f, path, func() { f.Close() }, nil
}

// logError names the log in a reader error; a bad line is bad input (exit
// 2). A cut last line (candump killed mid-line) is a warning on stderr, and
// nil: every frame before it was read.
func logError(name string, err error, stderr io.Writer) error {
	var le *can.LineError
	if errors.Is(err, can.ErrTruncated) {
		fmt.Fprintf(stderr, "tboxctl: warning: %s: %v (the log ends in a cut line; everything before it was read)\n", name, err)
		return nil
	}
	if errors.As(err, &le) {
		return usagef("%s: %w", name, err)
	}
	return err
}

// isConfigError reports errors that mean bad configuration: exit status 2.
func isConfigError(err error) bool {
	var ce *profile.ConfigError
	var le *can.LineError
	return errors.As(err, &ce) || errors.As(err, &le) ||
		errors.Is(err, signer.ErrBadKey) || errors.Is(err, signer.ErrKeyPermissions) ||
		errors.Is(err, store.ErrLocked)
}
