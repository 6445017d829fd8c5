package main

import (
	"context"
	"fmt"
	"io"

	"github.com/csop/tbox/can/socketcan"
)

// runLink sets up a CAN controller over rtnetlink (the bit rate and
// restart-ms that `ip link set IFACE type can bitrate N restart-ms M`
// sets, which busybox ip cannot) and brings it up, or restarts a bus-off
// controller, then prints the link: state, bit rate, restart-ms and error
// counters, as one line of key=value pairs.
func runLink(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fl := newFlagSet("link", stderr)
	iface := fl.String("iface", "", "CAN interface (can0)")
	bitrate := fl.Uint("bitrate", 0, "bit rate in bit/s: set it (with --restart-ms) and bring the link up")
	restartMS := fl.Uint("restart-ms", 100, "with --bitrate: restart this many ms after bus-off (0: stay bus-off until --restart)")
	restart := fl.Bool("restart", false, "restart a bus-off controller now")
	if err := parseFlags(fl, args, 0); err != nil {
		return err
	}
	switch {
	case *iface == "":
		return usagef("--iface is required")
	case *bitrate > 1_000_000:
		return usagef("--bitrate %d: classical CAN runs at most 1000000 bit/s", *bitrate)
	case *restartMS > 60_000:
		return usagef("--restart-ms %d: at most 60000", *restartMS)
	case *restart && *bitrate != 0:
		return usagef("--restart and --bitrate: one at a time")
	}
	if *bitrate != 0 {
		if err := socketcan.SetLink(*iface, socketcan.LinkConfig{Bitrate: uint32(*bitrate), RestartMS: uint32(*restartMS)}); err != nil {
			return err
		}
	}
	if *restart {
		if err := socketcan.Restart(*iface); err != nil {
			return err
		}
	}
	l, err := socketcan.Link(*iface)
	if err != nil {
		return err
	}
	if !l.HasCAN {
		fmt.Fprintf(stdout, "%s: kind=%s up=%v (no bit rate: not a CAN controller)\n", *iface, l.Kind, l.Up)
		return nil
	}
	fmt.Fprintf(stdout, "%s: kind=%s up=%v state=%s bitrate=%d restart-ms=%d txerr=%d rxerr=%d\n",
		*iface, l.Kind, l.Up, l.StateName(), l.Bitrate, l.RestartMS, l.TxErr, l.RxErr)
	return nil
}
