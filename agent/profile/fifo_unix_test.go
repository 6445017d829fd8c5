//go:build unix

package profile

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestNamedPipeRefused: a named pipe as the profile or its DBC is refused at
// once. (Opened blocking, open(2) waited for a writer forever: tboxctl and
// tboxd hung before reading a byte, and tboxctl ignored SIGTERM there.)
func TestNamedPipeRefused(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "car.dbc")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	prof := filepath.Join(dir, "p.toml")
	if err := os.WriteFile(prof, []byte("dbc = \"car.dbc\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		load func() error
	}{
		{"the profile's DBC", func() error { _, err := Load(prof); return err }},
		{"the profile", func() error { _, err := Load(fifo); return err }},
		{"tboxctl dbc's read", func() error { _, err := ReadDBC(fifo); return err }},
	} {
		t.Run(c.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() { done <- c.load() }()
			select {
			case err := <-done:
				if !errors.Is(err, ErrNotRegular) {
					t.Errorf("%v, want ErrNotRegular", err)
				}
			case <-time.After(10 * time.Second):
				// Release the blocked open with a writer, then fail.
				if w, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
					w.Close()
				}
				<-done
				t.Fatal("still in open(2) after 10 s: the named pipe was opened blocking")
			}
		})
	}
}
