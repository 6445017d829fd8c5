//go:build linux

package web

import (
	"bytes"
	"context"
	"errors"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// chromiumTimeout bounds one headless Chromium run (it is slow to start on
// a loaded machine: 10-25 s measured on 2 cores at load 16-28).
const chromiumTimeout = 3 * time.Minute

// requireChromium returns the path of Debian's chromium, or skips the test
// (fails it when CI=true: hil/scripts/install.sh installs it).
func requireChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not installed; hil/scripts/install.sh installs it")
	}
	t.Skip("chromium not installed (hil/scripts/install.sh installs it)")
	return ""
}

// runChromium runs headless Chromium with args and url in its own process
// group, with a throwaway profile and HOME, and returns its stdout. The
// whole group is killed when it ends or times out, so no renderer or
// zygote outlives the test.
func runChromium(t *testing.T, bin, url string, args ...string) []byte {
	t.Helper()
	tmp := t.TempDir()
	base := []string{
		"--headless", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
		"--disable-extensions", "--disable-background-networking", "--disable-sync",
		"--disable-breakpad", "--disable-dev-shm-usage", "--mute-audio", "--hide-scrollbars",
		"--user-data-dir=" + filepath.Join(tmp, "profile"),
	}
	if os.Geteuid() == 0 {
		base = append(base, "--no-sandbox") // Chromium refuses to run as root with its sandbox
	}
	ctx, cancel := context.WithTimeout(context.Background(), chromiumTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(append(base, args...), url)...)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "HOME="+tmp, "XDG_CONFIG_HOME="+filepath.Join(tmp, "config"), "XDG_CACHE_HOME="+filepath.Join(tmp, "cache"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if cmd.Process != nil {
		// Children left behind by a browser that exited: kill the group.
		if kerr := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); kerr != nil && !errors.Is(kerr, syscall.ESRCH) {
			t.Logf("kill chromium group: %v", kerr)
		}
	}
	if ctx.Err() != nil {
		t.Fatalf("chromium did not finish in %s; stderr:\n%s", chromiumTimeout, tail(stderr.String(), 4000))
	}
	if err != nil {
		t.Fatalf("chromium %v: %v; stderr:\n%s", args, err, tail(stderr.String(), 4000))
	}
	return stdout.Bytes()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// artifactsDir is where CI artifacts go: $TBOX_ARTIFACTS, else
// <repo>/.ci/artifacts.
func artifactsDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("TBOX_ARTIFACTS"); d != "" {
		return d
	}
	out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatalf("repository root for the artifacts: %v (set TBOX_ARTIFACTS)", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), ".ci", "artifacts")
}

// chromiumCheck loads url in headless Chromium, checks the device table
// of the DOM it rendered (not pixels) with check, and keeps a screenshot
// as a CI artifact.
func chromiumCheck(t *testing.T, url string, check func(*testing.T, string)) {
	bin := requireChromium(t)
	start := time.Now()
	dom := runChromium(t, bin, url, "--dump-dom")
	t.Logf("chromium --dump-dom: %d bytes in %s", len(dom), time.Since(start).Round(time.Millisecond))
	if !bytes.Contains(dom, []byte(`id="devices"`)) {
		t.Fatalf("the rendered DOM has no device table:\n%s", tail(string(dom), 4000))
	}
	check(t, string(dom))

	dir := artifactsDir(t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "collector-status.png")
	os.Remove(shot)
	start = time.Now()
	runChromium(t, bin, url, "--screenshot="+shot, "--window-size=1280,1400")
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil || cfg.Width != 1280 || cfg.Height != 1400 {
		t.Fatalf("screenshot %s: %dx%d, %v; want a 1280x1400 PNG", shot, cfg.Width, cfg.Height, err)
	}
	t.Logf("screenshot %s in %s", shot, time.Since(start).Round(time.Millisecond))
}
