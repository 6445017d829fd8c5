// Command collector is the reference backend: it verifies mileage attestations from MQTT, stores them, acks them and runs the Stone draw.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/csop/tbox/cmd/collector/internal/cli"
	"github.com/csop/tbox/cmd/internal/buildinfo"
)

var (
	version   = "dev"
	buildTime = "0" // unix seconds, stamped by the Makefile
)

func main() {
	cli.Version = buildinfo.Line("collector", version, buildTime)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
