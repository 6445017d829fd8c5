//go:build unix

// Package profiletest holds what the tests of the programs that read files
// through profile.ReadFileLimit share: the paths such a read must refuse at
// once, and the check that it does.
package profiletest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/csop/tbox/agent/profile"
)

// RefusesNotAFile calls read on a named pipe, a character device, a
// directory and a regular file over limit bytes, and fails t unless each
// call returns at once (within 5 s: a named pipe opened blocking waits for
// a writer forever) with an error that names the path and what it is.
// With wrapped, the error must also wrap profile.ErrNotRegular or
// profile.ErrTooLarge.
func RefusesNotAFile(t *testing.T, limit int, wrapped bool, read func(path string) error) {
	t.Helper()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.toml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.toml")
	if err := os.WriteFile(big, []byte("# "+strings.Repeat("x", limit)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path, says string
		want       error
	}{
		{fifo, "named pipe", profile.ErrNotRegular},
		{"/dev/zero", "character device", profile.ErrNotRegular},
		{dir, "directory", profile.ErrNotRegular},
		{big, "limit", profile.ErrTooLarge},
	} {
		done := make(chan error, 1)
		go func() { done <- read(c.path) }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), c.path) || !strings.Contains(err.Error(), c.says) ||
				(wrapped && !errors.Is(err, c.want)) {
				t.Errorf("%s: %v; want an error naming the file and %q (wrapping %v: %v)", c.path, err, c.says, c.want, wrapped)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("reading %s still blocked after 5 s", c.path)
		}
	}
}
