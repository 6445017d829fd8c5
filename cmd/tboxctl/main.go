// Command tboxctl is the T-Box agent's offline tool: device keys, candump
// decoding, replaying a log through the agent's own attestation code, and
// verifying attestation chains.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/csop/tbox/cmd/internal/buildinfo"
)

var (
	version   = "dev"
	buildTime = "0" // unix seconds, stamped by the Makefile
)

// usageError marks bad usage or bad configuration: exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// errCheckFailed is returned when a check ran and found problems: exit 1.
var errCheckFailed = errors.New("check failed")

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error
}

var commands = []command{
	{"keygen", "keygen --key FILE: new device key (mode 0600), prints the address", runKeygen},
	{"address", "address --key FILE: prints the device address", runAddress},
	{"provision", "provision --key FILE --tls-key FILE --csr FILE: device key (if new), P-256 TLS key and CSR with CN = the device address", runProvision},
	{"decode", "decode --profile FILE [--log FILE]: candump log to JSON lines", runDecode},
	{"dbc", "dbc FILE: a DBC as the agent reads it, one JSON line per message", runDbc},
	{"replay", "replay --profile FILE --key FILE [--log FILE] [--chain-id N] [--state DIR]: signed attestations", runReplay},
	{"outbox", "outbox --state DIR: prints the attestations held in a state directory", runOutbox},
	{"unlock", "unlock --service-key FILE --challenge TOKEN [--device ADDR]: answers the shell's service-mode challenge", runUnlock},
	{"link", "link --iface IFACE [--bitrate N [--restart-ms MS]] [--restart]: a CAN controller's bit rate and restart-ms over netlink, link up; prints its state", runLink},
	{"verify", "verify [--chain-id N] [--device ADDR] [--partial] [FILE]: checks attestation JSON lines", runVerify},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "version" || args[0] == "--version" {
		fmt.Fprintln(stdout, buildinfo.Line("tboxctl", version, buildTime))
		return 0
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], stdin, stdout, stderr)
		return exitCode(stderr, c.name, err)
	}
	fmt.Fprintf(stderr, "tboxctl: unknown command %q\n", args[0])
	printUsage(stderr)
	return 2
}

func exitCode(stderr io.Writer, name string, err error) int {
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errCheckFailed):
		return 1
	case errors.As(err, new(shownError)):
		return 2 // the flag package printed it with the usage
	case errors.As(err, &ue) || isConfigError(err):
		fmt.Fprintf(stderr, "tboxctl %s: %v\n", name, err)
		return 2
	default:
		fmt.Fprintf(stderr, "tboxctl %s: %v\n", name, err)
		return 1
	}
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: tboxctl COMMAND [flags]")
	fmt.Fprintln(w)
	for _, c := range commands {
		fmt.Fprintf(w, "  %s\n", c.summary)
	}
	fmt.Fprintln(w, "\nExit status: 0 success, 1 a failed check or runtime error, 2 bad usage or configuration.")
}

// newFlagSet returns a flag set that reports errors instead of exiting.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("tboxctl "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// shownError is a usage error that the flag package has already printed,
// with the command's usage: exit status 2 and no second copy.
type shownError struct{ err error }

func (e shownError) Error() string { return e.err.Error() }
func (e shownError) Unwrap() error { return e.err }

// parseFlags parses args and maps a parse error to a usage error. Positional
// arguments beyond maxArgs are refused.
func parseFlags(fs *flag.FlagSet, args []string, maxArgs int) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return shownError{err}
	}
	if fs.NArg() > maxArgs {
		return usagef("unexpected argument %q", fs.Arg(maxArgs))
	}
	return nil
}
