// Package shell is the T-Box agent's diagnostic shell, served on a serial
// port for a technician with a serial terminal.
package shell

import _ "go.bug.st/serial" // the serial port driver (kept in go.mod until wired)
