package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/csop/tbox/signer"
)

// TestCheckConfig: --check-config exits 0 on a good configuration and 2 on
// a bad one, listing every problem (not only the first), each naming the
// file and the field.
func TestCheckConfig(t *testing.T) {
	needBinaries(t)
	dir := t.TempDir()
	key := filepath.Join(dir, "device.key")
	if _, err := signer.GenerateKeyFile(key); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.toml")
	write := func(path, body string) {
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(good, "profile = \""+evProfile(t)+"\"\nkey = \"device.key\"\nstate_dir = \"state\"\n")
	out, err := exec.Command(bins.tboxd, "--config", good, "--check-config").CombinedOutput()
	if err != nil {
		t.Fatalf("--check-config of a good configuration: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "state")); !os.IsNotExist(err) {
		t.Error("--check-config created the state directory")
	}

	loose := filepath.Join(dir, "loose.key")
	if _, err := signer.GenerateKeyFile(loose); err != nil {
		t.Fatal(err)
	}
	os.Chmod(loose, 0o644)
	bad := filepath.Join(dir, "bad.toml")
	write(bad, `profile = "missing.toml"
key = "loose.key"
state_dir = "/proc/no/such/dir"
colour = "red"

[can]
replay = "nowhere.log"

[watchdog]
interval = "1s"

[mqtt]
broker = "tcp://broker:1883"
shade = 3
`)
	cmd := exec.Command(bins.tboxd, "--config", bad, "--check-config")
	out, err = cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 2 {
		t.Fatalf("--check-config of a bad configuration: exit %d (%v), want 2\n%s", code, err, out)
	}
	for _, want := range []string{
		"colour: unknown key", "mqtt.shade: unknown key",
		"watchdog.device: required",
		"profile", "missing.toml",
		"loose.key", "chmod 600",
		"state_dir",
		"can.replay", "nowhere.log",
		"mqtt",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("--check-config output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(string(out), bad+": "); n < 8 {
		t.Errorf("%d problems listed, want every one (8 at least), each naming %s:\n%s", n, bad, out)
	}
}
