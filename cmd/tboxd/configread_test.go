package main

import (
	"fmt"
	"testing"

	"github.com/csop/tbox/agent/profile/profiletest"
)

// TestLoadConfigRefusesWhatIsNotAFile: the configuration path is read only
// (by tboxd and by --check-config) as a regular file of at most
// MaxConfigSize bytes. A named pipe is refused at once (os.ReadFile would
// wait in open(2) for a writer, and tboxd would never start nor stop on
// SIGTERM), and so are a character device, a directory and a file over the
// limit; each error names the file and what it is.
func TestLoadConfigRefusesWhatIsNotAFile(t *testing.T) {
	profiletest.RefusesNotAFile(t, MaxConfigSize, true, func(path string) error {
		_, err := LoadConfig(path)
		return err
	})
	profiletest.RefusesNotAFile(t, MaxConfigSize, true, func(path string) error {
		errs := checkConfig(path)
		if len(errs) != 1 {
			return fmt.Errorf("checkConfig: %d problems, want 1: %v", len(errs), errs)
		}
		return errs[0]
	})
}
