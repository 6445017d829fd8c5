package agent

import "golang.org/x/sys/unix"

// kernelUnsynced reads the kernel's STA_UNSYNC status bit (adjtimex).
func kernelUnsynced() (bool, error) {
	var tx unix.Timex
	if _, err := unix.Adjtimex(&tx); err != nil {
		return false, err
	}
	return tx.Status&unix.STA_UNSYNC != 0, nil
}
