// Command tboxd is the T-Box mileage agent: it reads the odometer and
// drive-mode frames off the CAN bus, makes signed per-batch mileage
// attestations, keeps them in a durable outbox and uploads them over MQTT.
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

func main() {
	os.Exit(mainArgs(os.Args[1:], os.Stdout, os.Stderr))
}

// mainArgs parses the command line, runs the daemon and returns the exit
// status: 0 success (and -h, --version), 1 a runtime error, 2 bad usage or
// configuration.
func mainArgs(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tboxd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file (TOML)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	checkOnly := fs.Bool("check-config", false, "check the configuration and the files it names, list every problem, exit 0 (fine) or 2")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: tboxd --config FILE\n\nThe T-Box mileage agent. SIGTERM or SIGINT stops it (the open span is attested\nand uploaded within shutdown_grace); SIGHUP re-reads log.level.\nExit status: 0 success, 1 a runtime error, 2 bad usage or configuration.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2 // the flag package printed the error and the usage
	}
	if *showVersion {
		fmt.Fprintln(stdout, buildinfo.Line("tboxd", version, buildTime))
		return 0
	}
	if *cfgPath == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: tboxd --config FILE")
		return 2
	}
	if *checkOnly {
		return runCheckConfig(*cfgPath, stdout, stderr)
	}
	// SIGHUP (logrotate, systemctl reload) must never stop the daemon.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	// SIGINT and SIGTERM cancel ctx (signal.NotifyContext's effect; its
	// context type would add 3 KiB to tboxd).
	term := make(chan os.Signal, 1)
	signal.Notify(term, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(term)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-term:
			cancel()
		case <-ctx.Done():
		}
	}()
	return exitCode(stderr, run(ctx, *cfgPath, hup))
}
