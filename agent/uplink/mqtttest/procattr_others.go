//go:build !linux

package mqtttest

import "os/exec"

// setProcAttr does nothing where there is no parent-death signal; cleanup
// still kills the broker.
func setProcAttr(cmd *exec.Cmd) {}
