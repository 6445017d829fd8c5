// Command vsim plays a seeded simulated drive for a vehicle profile: CAN frames to a candump log or a CAN interface, and the mileage ground truth as JSON.
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
)

var (
	version   = "dev"
	buildTime = "0" // unix seconds, stamped by the Makefile
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := exitCode(os.Stderr, run(ctx, os.Args[1:], os.Stdout, os.Stderr))
	stop()
	os.Exit(code)
}

// exitCode prints err (unless the flag package already did) and maps it to
// the exit status: 0 success and -h, 1 a runtime error, 2 bad usage.
func exitCode(stderr io.Writer, err error) int {
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		if !ue.shown {
			fmt.Fprintln(stderr, "vsim:", err)
		}
		return 2
	default:
		fmt.Fprintln(stderr, "vsim:", err)
		return 1
	}
}
