package hil

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

//go:embed scripts/install.sh
var installScript []byte

// Errors.
var (
	// ErrUnavailable: the emulated T-Box cannot be set up here (not Linux,
	// not root with the kit missing, no apt). Tests skip on it.
	ErrUnavailable = errors.New("emulated T-Box unavailable")
	// ErrTimeout: the guest did not finish within Options.Timeout.
	ErrTimeout = errors.New("guest timed out")
	// ErrNoExit: qemu ended without the guest printing its exit marker
	// (a kernel panic, a crash of /init, or a Kill).
	ErrNoExit = errors.New("guest ended without an exit marker")
	// ErrQEMUFile: qemu could not start because a file it looks for (a ROM,
	// a firmware) is missing; the error names the file and its package.
	ErrQEMUFile = errors.New("qemu file missing")
)

// Kit holds the paths of everything a guest is built from. Prepare fills it.
type Kit struct {
	Dir           string // the cache: <repo>/.cache/hil unless HIL_CACHE is set
	KernelVersion string // "6.1.0-50-armmp-lpae"
	Kernel        string // vmlinuz
	Modules       string // lib/modules/<version>
	Busybox       string // static armhf busybox
	CanUtils      string // directory of the armhf can-utils (dynamically linked)
	LibDir        string // armhf libc for can-utils
	Loader        string // ld-linux-armhf.so.3
	QEMU          string // qemu-system-arm on the host

	// The arm64 guest (Options.Arch "arm64"): qemu's kvaser_pci cards on
	// the real sja1000 driver, which the armhf kernel cannot map.
	ARM64KernelVersion string // "6.1.0-50-arm64"
	ARM64Kernel        string // vmlinuz
	ARM64Modules       string // lib/modules/<version>
	ARM64Busybox       string // static arm64 busybox
	QEMU64             string // qemu-system-aarch64 on the host
}

// RepoRoot returns the module's root directory: HIL_ROOT if set, else the
// directory holding go.mod above this package's source or the working
// directory.
func RepoRoot() (string, error) {
	if r := os.Getenv("HIL_ROOT"); r != "" {
		return r, nil
	}
	var starts []string
	if _, file, _, ok := runtime.Caller(0); ok {
		starts = append(starts, filepath.Dir(file))
	}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	for _, d := range starts {
		for {
			if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/csop/tbox")) {
				return d, nil
			}
			p := filepath.Dir(d)
			if p == d {
				break
			}
			d = p
		}
	}
	return "", fmt.Errorf("repository root: no go.mod of github.com/csop/tbox above %v (set HIL_ROOT)", starts)
}

// CacheDir returns where the kit is kept: HIL_CACHE, else <repo>/.cache/hil.
func CacheDir() (string, error) {
	if d := os.Getenv("HIL_CACHE"); d != "" {
		return d, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, ".cache", "hil"), nil
}

// Prepare makes sure the kit is installed and returns it. On a fresh Debian
// 12 machine it installs the host packages and downloads the guest's
// packages (it must then run as root); when the cache is complete it only
// checks it, in milliseconds. Its error matches ErrUnavailable when the
// machine cannot host the guest at all.
func Prepare(ctx context.Context) (*Kit, error) {
	if runtime.GOOS != "linux" {
		return nil, fmt.Errorf("%w: needs Linux, this is %s", ErrUnavailable, runtime.GOOS)
	}
	dir, err := CacheDir()
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "sh", "-s", "--", dir)
	cmd.Stdin = bytes.NewReader(installScript)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 77 {
			return nil, fmt.Errorf("%w: %s", ErrUnavailable, strings.TrimSpace(stderr.String()))
		}
		return nil, fmt.Errorf("install script (hil/scripts/install.sh %s): %w\n%s", dir, err, tail(stderr.String(), 30))
	}
	return parseKit(dir, out)
}

// parseKit reads the KEY=value lines that install.sh prints.
func parseKit(dir string, out []byte) (*Kit, error) {
	k := &Kit{Dir: dir}
	fields := map[string]*string{
		"KVER": &k.KernelVersion, "KERNEL": &k.Kernel, "MODULES": &k.Modules, "BUSYBOX": &k.Busybox,
		"CANUTILS": &k.CanUtils, "LIBDIR": &k.LibDir, "LOADER": &k.Loader,
		"ARM64_KVER": &k.ARM64KernelVersion, "ARM64_KERNEL": &k.ARM64Kernel,
		"ARM64_MODULES": &k.ARM64Modules, "ARM64_BUSYBOX": &k.ARM64Busybox,
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), "=")
		if p := fields[key]; ok && p != nil {
			*p = val
		}
	}
	for key, p := range fields {
		if *p == "" {
			return nil, fmt.Errorf("kit.env in %s: field %s missing from the install script's output", dir, key)
		}
	}
	q, err := exec.LookPath("qemu-system-arm")
	if err != nil {
		return nil, fmt.Errorf("qemu-system-arm: %w", err)
	}
	k.QEMU = q
	if k.QEMU64, err = exec.LookPath("qemu-system-aarch64"); err != nil {
		return nil, fmt.Errorf("qemu-system-aarch64 (package qemu-system-arm): %w", err)
	}
	return k, nil
}

// CrossBuild builds a command for the guest (GOOS=linux GOARCH=arm GOARM=7
// CGO_ENABLED=0, static, stripped) into out. pkg is a package path relative
// to the repository root ("./cmd/tboxd").
func CrossBuild(ctx context.Context, pkg, out string) error {
	return goBuild(ctx, "build", pkg, out)
}

// CrossBuildArch builds a command for a guest architecture: "arm" (GOARM=7,
// as CrossBuild) or "arm64".
func CrossBuildArch(ctx context.Context, goarch, pkg, out string) error {
	return goBuildArch(ctx, goarch, "build", pkg, out)
}

// CrossBuildTest compiles the tests of pkg for the guest (go test -c) into out.
func CrossBuildTest(ctx context.Context, pkg, out string) error {
	return goBuild(ctx, "test", pkg, out)
}

func goBuild(ctx context.Context, mode, pkg, out string) error {
	return goBuildArch(ctx, "arm", mode, pkg, out)
}

func goBuildArch(ctx context.Context, goarch, mode, pkg, out string) error {
	if goarch != "arm" && goarch != "arm64" {
		return fmt.Errorf("GOARCH %q: the guests run arm or arm64", goarch)
	}
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	args := []string{mode}
	if mode == "test" {
		args = append(args, "-c")
	}
	args = append(args, "-trimpath", "-ldflags=-s -w", "-o", abs, pkg)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+goarch, "GOARM=7", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s %s for linux/%s: %w\n%s", strings.Join(args, " "), pkg, goarch, err, b)
	}
	return nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
