package clitest

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// binaries builds the four commands as the Makefile does (version and build
// time stamped) into a temporary directory.
func binaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ld := "-X main.version=v9.9.9-test -X main.buildTime=1767225600"
	cmd := exec.Command("go", "build", "-ldflags", ld, "-o", dir+string(filepath.Separator),
		"../../tboxd", "../../tboxctl", "../../collector", "../../vsim")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

func runBin(t *testing.T, bin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("%s %q: %v", bin, args, err)
	}
	return code, o.String(), e.String()
}

// TestCommandLines checks what every binary promises at its command line:
// -h and --help exit 0 with a usage, --version prints one line with the
// version, the build time, the Go version and the target, and a bad flag is
// exit status 2 with its error printed once.
func TestCommandLines(t *testing.T) {
	dir := binaries(t)
	for _, name := range []string{"tboxd", "tboxctl", "collector", "vsim"} {
		bin := filepath.Join(dir, name)
		t.Run(name, func(t *testing.T) {
			for _, h := range []string{"-h", "--help"} {
				code, out, errOut := runBin(t, bin, h)
				if code != 0 {
					t.Errorf("%s %s: exit %d, want 0", name, h, code)
				}
				if !strings.Contains(strings.ToLower(out+errOut), "usage") {
					t.Errorf("%s %s printed no usage:\n%s%s", name, h, out, errOut)
				}
			}
			code, out, errOut := runBin(t, bin, "--version")
			if code != 0 {
				t.Errorf("%s --version: exit %d, stderr %q", name, code, errOut)
			}
			for _, want := range []string{name + " v9.9.9-test", "built 2026-01-01T00:00:00Z", runtime.Version(), runtime.GOOS + "/" + runtime.GOARCH} {
				if !strings.Contains(out, want) {
					t.Errorf("%s --version = %q, want %q in it", name, out, want)
				}
			}
			if strings.Count(strings.TrimSpace(out), "\n") != 0 {
				t.Errorf("%s --version is not one line: %q", name, out)
			}
			args := []string{"--no-such-flag"}
			if name == "tboxctl" || name == "collector" {
				args = []string{"verify", "--no-such-flag"}
				if name == "collector" {
					args[0] = "stats"
				}
			}
			code, _, errOut = runBin(t, bin, args...)
			if code != 2 {
				t.Errorf("%s %q: exit %d, want 2", name, args, code)
			}
			if n := strings.Count(errOut, "no-such-flag"); n != 1 {
				t.Errorf("%s %q: the flag error appears %d times, want once:\n%s", name, args, n, errOut)
			}
		})
	}
}

func TestMain(m *testing.M) {
	if _, err := exec.LookPath("go"); err != nil {
		os.Setenv("PATH", filepath.Join(runtime.GOROOT(), "bin")+string(os.PathListSeparator)+os.Getenv("PATH"))
	}
	os.Exit(m.Run())
}
