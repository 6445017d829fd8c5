// Command clocksync marks the emulated T-Box's clock synchronized, as an NTP daemon does once it has set the time (guest-only helper of the field rig).
//
// The rig's guest gets its wall clock from the host at boot (hil.time=),
// but its kernel, with no NTP daemon, reports the clock unsynchronized
// (adjtimex STA_UNSYNC), which tboxd rightly flags as CLOCK on every
// attestation. clocksync does what ntpd or chronyd do after a successful
// sync: it clears STA_UNSYNC and sets the error estimates to zero, then reads
// the status back to check. The kernel sets STA_UNSYNC again by itself once
// the maximum error grows past 16 s, about 9 hours later.
package main

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "clocksync:", err)
		os.Exit(1)
	}
}

func run() error {
	var cur unix.Timex
	if _, err := unix.Adjtimex(&cur); err != nil {
		return fmt.Errorf("adjtimex read: %w", err)
	}
	tx := unix.Timex{
		Modes:  unix.ADJ_STATUS | unix.ADJ_MAXERROR | unix.ADJ_ESTERROR,
		Status: cur.Status &^ unix.STA_UNSYNC,
	}
	if _, err := unix.Adjtimex(&tx); err != nil {
		return fmt.Errorf("adjtimex clear STA_UNSYNC: %w", err)
	}
	var after unix.Timex
	if _, err := unix.Adjtimex(&after); err != nil {
		return fmt.Errorf("adjtimex read back: %w", err)
	}
	if after.Status&unix.STA_UNSYNC != 0 {
		return fmt.Errorf("status %#x after the write: STA_UNSYNC still set", after.Status)
	}
	fmt.Printf("clocksync: clock marked synchronized (STA_UNSYNC cleared; status %#x -> %#x)\n", cur.Status, after.Status)
	return nil
}
