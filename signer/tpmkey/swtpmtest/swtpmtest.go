// Package swtpmtest starts a real software TPM 2.0 (swtpm) for tests, on a
// unix socket in a temporary directory.
package swtpmtest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TPM is a running swtpm.
type TPM struct {
	Socket string // the TPM command socket (go-tpm's linuxudstpm)
	State  string // its state directory
	cmd    *exec.Cmd
	out    *bytes.Buffer
}

// Start starts a fresh swtpm (a new TPM with its own seeds) and stops it
// at the end of the test. It skips the test when swtpm is not installed
// (hil/scripts/install.sh installs it).
func Start(t testing.TB) *TPM {
	t.Helper()
	bin, err := exec.LookPath("swtpm")
	if err != nil {
		t.Skip("swtpm not installed (apt-get install swtpm swtpm-tools, or make deps): ", err)
	}
	// A short path: a unix socket's path is limited to 108 bytes.
	dir, err := os.MkdirTemp("", "swtpm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	tp := &TPM{Socket: filepath.Join(dir, "tpm.sock"), State: dir, out: &bytes.Buffer{}}
	tp.cmd = exec.Command(bin, "socket", "--tpm2",
		"--tpmstate", "dir="+dir,
		"--server", "type=unixio,path="+tp.Socket,
		"--ctrl", "type=unixio,path="+filepath.Join(dir, "ctrl.sock"),
		"--flags", "not-need-init,startup-clear")
	tp.cmd.Stdout, tp.cmd.Stderr = tp.out, tp.out
	tp.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := tp.cmd.Start(); err != nil {
		t.Fatalf("start swtpm: %v", err)
	}
	t.Cleanup(func() {
		tp.cmd.Process.Kill()
		tp.cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if fi, err := os.Stat(tp.Socket); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return tp
		}
		if time.Now().After(deadline) {
			t.Fatalf("swtpm did not create %s within 10 s; its output:\n%s", tp.Socket, tp.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
