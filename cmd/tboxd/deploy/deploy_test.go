// Package deploy holds what installs tboxd on a T-Box: the systemd unit,
// the sysvinit script, the default configuration, the nfpm package
// description (make package) and the Yocto recipe. Its tests check them.
package deploy

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// TestUnitVerifies: systemd-analyze verify accepts the unit (with the
// binary's path pointed at an existing executable), and its hardening is
// what the unit promises.
func TestUnitVerifies(t *testing.T) {
	unit, err := os.ReadFile("systemd/tboxd.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Type=notify", "WatchdogSec=", "NotifyAccess=main", "ProtectSystem=strict",
		"ReadWritePaths=/var/lib/tboxd", "NoNewPrivileges=yes", "User=tboxd",
		"CapabilityBoundingSet=\n", "RestartPreventExitStatus=2", "ExecReload=/bin/kill -HUP $MAINPID",
	} {
		if !bytes.Contains(unit, []byte(want)) {
			t.Errorf("the unit lacks %q", want)
		}
	}
	// systemd fails a start (216/GROUP) on a SupplementaryGroups= group
	// that does not exist, as tss does not on a T-Box without TPM
	// software: the groups come from /etc/group, where preinst puts them.
	if bytes.Contains(unit, []byte("\nSupplementaryGroups=")) {
		t.Error("the unit names SupplementaryGroups=: a T-Box without one of them could never start tboxd")
	}
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed: the unit is not verified here")
	}
	tmp := filepath.Join(t.TempDir(), "tboxd.service")
	if err := os.WriteFile(tmp, bytes.ReplaceAll(unit, []byte("/usr/bin/tboxd"), []byte("/bin/true")), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", tmp).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command(sa, "security", "--offline=yes", tmp).CombinedOutput()
	if err != nil {
		t.Logf("systemd-analyze security --offline not available: %v", err)
		return
	}
	m := regexp.MustCompile(`Overall exposure level for tboxd.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	t.Logf("systemd-analyze security: exposure %s", m[1])
	if v, err := strconv.ParseFloat(string(m[1]), 64); err != nil || v > 3 {
		t.Errorf("exposure level %s, want 3.0 or below (\"OK\")", m[1])
	}
}

// TestScriptsParse: the init script and the package scripts are POSIX sh.
func TestScriptsParse(t *testing.T) {
	for _, s := range []string{"sysvinit/tboxd", "scripts/preinstall.sh", "scripts/postinstall.sh", "scripts/preremove.sh"} {
		if out, err := exec.Command("sh", "-n", s).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", s, err, out)
		}
		if bb, err := exec.LookPath("busybox"); err == nil {
			if out, err := exec.Command(bb, "sh", "-n", s).CombinedOutput(); err != nil {
				t.Errorf("%s under busybox sh: %v\n%s", s, err, out)
			}
		}
	}
}

// TestPackages builds the packages as make package does (cross-compiled
// binaries, nfpm from cmd/tboxd/deploy/tools/go.mod) and checks their architecture and
// contents with dpkg-deb; the .ipk is read as the tar.gz of tar.gz opkg
// uses.
func TestPackages(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: cross-compiles and packages (about a minute)")
	}
	dpkg, err := exec.LookPath("dpkg-deb")
	if err != nil {
		t.Skip("dpkg-deb not installed: the packages are not checked here")
	}
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	root, _ := filepath.Abs("../../..")
	out := t.TempDir()
	for _, a := range []struct{ deb, goarch, goarm string }{{"armhf", "arm", "7"}, {"arm64", "arm64", ""}} {
		stage := filepath.Join(root, "bin", ".pkg")
		os.RemoveAll(stage)
		build := exec.Command(goBin, "build", "-trimpath", "-tags", "tpm", "-ldflags", "-s -w", "-o", stage+"/", "./cmd/tboxd", "./cmd/tboxctl") // as make package
		build.Dir = root
		build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+a.goarch, "GOARM="+a.goarm)
		if b, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", a.deb, err, b)
		}
		for _, f := range []string{"deb", "ipk"} {
			pkg := exec.Command(goBin, "tool", "-modfile=cmd/tboxd/deploy/tools/go.mod", "nfpm", "package", "--config", "cmd/tboxd/deploy/nfpm.yaml", "--packager", f, "--target", out+"/")
			pkg.Dir = root
			pkg.Env = append(os.Environ(), "NFPM_ARCH="+a.deb, "PKG_VERSION=1.2.3")
			if b, err := pkg.CombinedOutput(); err != nil {
				t.Fatalf("nfpm %s %s: %v\n%s", f, a.deb, err, b)
			}
		}
		os.RemoveAll(stage)

		deb := filepath.Join(out, "tboxd_1.2.3_"+a.deb+".deb")
		info, err := exec.Command(dpkg, "-I", deb).CombinedOutput()
		if err != nil {
			t.Fatalf("dpkg-deb -I %s: %v\n%s", deb, err, info)
		}
		for _, want := range []string{"Package: tboxd", "Version: 1.2.3", "Architecture: " + a.deb, "preinst", "postinst", "prerm", "conffiles"} {
			if !bytes.Contains(info, []byte(want)) {
				t.Errorf("%s: dpkg-deb -I lacks %q:\n%s", a.deb, want, info)
			}
		}
		list, err := exec.Command(dpkg, "-c", deb).CombinedOutput()
		if err != nil {
			t.Fatalf("dpkg-deb -c: %v\n%s", err, list)
		}
		for _, want := range []string{
			`-rwxr-xr-x \S+ +\d+ .* \./usr/bin/tboxd\n`,
			`-rwxr-xr-x \S+ +\d+ .* \./usr/bin/tboxctl\n`,
			`-rw-r--r-- \S+ +\d+ .* \./lib/systemd/system/tboxd\.service\n`,
			`-rwxr-xr-x \S+ +\d+ .* \./etc/init\.d/tboxd\n`,
			`-rw-r----- \S+ +\d+ .* \./etc/tbox/tboxd\.toml\n`,
			`drwx------ \S+ +\d+ .* \./var/lib/tboxd/\n`,
		} {
			if !regexp.MustCompile(want).Match(list) {
				t.Errorf("%s: dpkg-deb -c has no line matching %s:\n%s", a.deb, want, list)
			}
		}
		// The binary is the architecture the package says.
		x := t.TempDir()
		if b, err := exec.Command(dpkg, "-x", deb, x).CombinedOutput(); err != nil {
			t.Fatalf("dpkg-deb -x: %v\n%s", err, b)
		}
		checkELF(t, filepath.Join(x, "usr/bin/tboxd"), a.deb)
		for _, bin := range []string{"usr/bin/tboxd", "usr/bin/tboxctl"} {
			checkTPM(t, filepath.Join(x, bin))
		}

		ipk := filepath.Join(out, "tboxd_1.2.3_"+a.deb+".ipk")
		control := ipkControl(t, ipk)
		if !strings.Contains(control, "Architecture: "+a.deb) || !strings.Contains(control, "Package: tboxd") {
			t.Errorf("%s control:\n%s", ipk, control)
		}
		// The .ipk holds what the .deb holds.
		data := ipkData(t, ipk)
		for name, mode := range map[string]os.FileMode{
			"usr/bin/tboxd": 0o755, "usr/bin/tboxctl": 0o755, "lib/systemd/system/tboxd.service": 0o644,
			"etc/init.d/tboxd": 0o755, "etc/tbox/tboxd.toml": 0o640, "var/lib/tboxd": os.ModeDir | 0o700,
		} {
			h, ok := data[name]
			if !ok {
				t.Errorf("%s: no %s in data.tar.gz", ipk, name)
				continue
			}
			if got := h.FileInfo().Mode() & (os.ModeDir | os.ModePerm); got != mode {
				t.Errorf("%s: %s has mode %v, want %v", ipk, name, got, mode)
			}
		}
	}
}

// checkELF checks a binary's ELF machine: ARM (40) for armhf, AArch64
// (183) for arm64.
func checkELF(t *testing.T, path, arch string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 20 || string(b[:4]) != "\x7fELF" {
		t.Fatalf("%s is not ELF", path)
	}
	machine := int(b[18]) | int(b[19])<<8
	want := map[string]int{"armhf": 40, "arm64": 183}[arch]
	if machine != want {
		t.Errorf("%s: ELF machine %d, want %d for %s", path, machine, want, arch)
	}
}

// checkTPM checks that a packaged binary holds the TPM backend (-tags tpm,
// as make package builds it): the sealed file's PEM type, which only the
// TPM backend uses, is linked in.
func checkTPM(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("TBOX TPM SEALED KEY")) {
		t.Errorf("%s was built without the TPM backend (-tags tpm)", path)
	}
}

// ipkData returns the headers of an .ipk's data.tar.gz, by name without
// the leading "./" or trailing "/".
func ipkData(t *testing.T, path string) map[string]*tar.Header {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	inner := untarFile(t, f, "./data.tar.gz")
	z, err := gzip.NewReader(bytes.NewReader(inner))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*tar.Header{}
	tr := tar.NewReader(z)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("%s data.tar.gz: %v", path, err)
		}
		out[strings.Trim(strings.TrimPrefix(h.Name, "./"), "/")] = h
	}
}

// TestBuiltWithTPM: the shipped builds carry the TPM backend: make
// package sets GOTAGS=tpm, and the Yocto recipe builds with -tags tpm
// (without it, key = "tpm:..." on a T-Box built by the recipe would
// only say that the binary lacks TPM support).
func TestBuiltWithTPM(t *testing.T) {
	mk, err := os.ReadFile("../../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^package: GOTAGS = tpm$`).Match(mk) {
		t.Error("the Makefile's package target does not build with GOTAGS = tpm")
	}
	bb, err := filepath.Glob("yocto/tboxd_*.bb")
	if err != nil || len(bb) != 1 {
		t.Fatalf("yocto recipes %v (%v), want one", bb, err)
	}
	recipe, err := os.ReadFile(bb[0])
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^GOBUILDFLAGS:append = ".*-tags tpm.*"$`).Match(recipe) {
		t.Errorf("%s does not build with -tags tpm", bb[0])
	}
}

// ipkControl returns the control file of an .ipk (a tar.gz holding
// control.tar.gz and data.tar.gz).
func ipkControl(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	inner := untarFile(t, f, "./control.tar.gz")
	return string(untarFile(t, bytes.NewReader(inner), "./control"))
}

func untarFile(t *testing.T, r io.Reader, name string) []byte {
	t.Helper()
	z, err := gzip.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(z)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s not found: %v", name, err)
		}
		if h.Name == name || "./"+h.Name == name {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
}
