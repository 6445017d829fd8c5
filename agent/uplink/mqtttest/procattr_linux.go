package mqtttest

import (
	"os/exec"
	"syscall"
)

// setProcAttr makes the kernel kill mosquitto if the test binary dies
// before its cleanup runs, so no broker outlives a crashed test.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
