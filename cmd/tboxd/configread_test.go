package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/csop/tbox/agent/profile"
)

// TestLoadConfigRefusesWhatIsNotAFile: the configuration path is read only
// (by tboxd and by --check-config)
// as a regular file of at most MaxConfigSize bytes. A named pipe is
// refused at once (os.ReadFile would wait in open(2) for a writer, and
// tboxd would never start nor stop on SIGTERM), and so are a character
// device, a directory and a file over the limit; each error names the
// file and what it is.
func TestLoadConfigRefusesWhatIsNotAFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "tboxd.toml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.toml")
	if err := os.WriteFile(big, []byte("# "+strings.Repeat("x", MaxConfigSize)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		want error
		says string
	}{
		{fifo, profile.ErrNotRegular, "named pipe"},
		{"/dev/zero", profile.ErrNotRegular, "character device"},
		{dir, profile.ErrNotRegular, "directory"},
		{big, profile.ErrTooLarge, "limit"},
	} {
		done := make(chan error, 2)
		go func() {
			_, err := LoadConfig(c.path)
			done <- err
		}()
		go func() { // --check-config
			if errs := checkConfig(c.path); len(errs) == 1 {
				done <- errs[0]
			} else {
				done <- fmt.Errorf("checkConfig: %d problems, want 1: %v", len(errs), errs)
			}
		}()
		for range 2 {
			select {
			case err := <-done:
				if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.path) || !strings.Contains(err.Error(), c.says) {
					t.Errorf("%s: %v; want %v naming the file and %q", c.path, err, c.want, c.says)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("reading %s still blocked after 5 s", c.path)
			}
		}
	}
}
