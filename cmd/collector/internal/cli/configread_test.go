package cli

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLoadConfigRefusesWhatIsNotAFile: the collector's configuration is
// read only as a regular file of at most MaxConfigSize bytes; a named pipe
// (which os.ReadFile would wait on for a writer, forever), a character
// device, a directory and an oversized file are refused at once, each
// error naming the file and what it is.
func TestLoadConfigRefusesWhatIsNotAFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "collector.toml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.toml")
	if err := os.WriteFile(big, []byte("# "+strings.Repeat("x", MaxConfigSize)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, says string }{
		{fifo, "named pipe"},
		{"/dev/zero", "character device"},
		{dir, "directory"},
		{big, "limit"},
	} {
		done := make(chan error, 1)
		go func() {
			_, err := LoadConfig(c.path)
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), c.path) || !strings.Contains(err.Error(), c.says) {
				t.Errorf("LoadConfig(%s): %v; want an error naming the file and %q", c.path, err, c.says)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("LoadConfig(%s) still blocked after 5 s", c.path)
		}
	}
}
