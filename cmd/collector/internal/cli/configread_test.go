package cli

import (
	"testing"

	"github.com/csop/tbox/agent/profile/profiletest"
)

// TestLoadConfigRefusesWhatIsNotAFile: the collector's configuration is
// read only as a regular file of at most MaxConfigSize bytes; a named pipe
// (which os.ReadFile would wait on for a writer, forever), a character
// device, a directory and an oversized file are refused at once, each
// error naming the file and what it is.
func TestLoadConfigRefusesWhatIsNotAFile(t *testing.T) {
	profiletest.RefusesNotAFile(t, MaxConfigSize, false, func(path string) error {
		_, err := LoadConfig(path)
		return err
	})
}
