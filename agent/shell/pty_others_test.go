//go:build !linux

package shell

import (
	"os"
	"runtime"
	"testing"
)

func openPTY(t testing.TB) (*os.File, string) {
	t.Skipf("the pty tests open /dev/ptmx with Linux ioctls; not on %s", runtime.GOOS)
	return nil, ""
}
