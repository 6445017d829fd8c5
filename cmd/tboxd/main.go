// Command tboxd is the T-Box mileage agent: it reads the odometer and
// drive-mode frames off the CAN bus, makes signed per-batch mileage
// attestations, keeps them in a durable outbox and uploads them over MQTT.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

var (
	version   = "dev"
	buildTime = "0" // unix seconds, stamped by the Makefile
)

func main() {
	fs := flag.NewFlagSet("tboxd", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "configuration file (TOML)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	checkOnly := fs.Bool("check-config", false, "check the configuration and the files it names, list every problem, exit 0 (fine) or 2")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if *showVersion {
		fmt.Println("tboxd", version)
		return
	}
	if *cfgPath == "" || fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: tboxd --config FILE")
		os.Exit(2)
	}
	if *checkOnly {
		os.Exit(runCheckConfig(*cfgPath, os.Stdout, os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, *cfgPath)
	stop()
	os.Exit(exitCode(err))
}
