package hil

import (
	"context"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPackageInGuest: the armhf .deb, as make package builds it, unpacked
// into the emulated T-Box's root: its maintainer scripts run there, the
// device is provisioned as the default configuration says, its sysvinit
// script starts the packaged tboxd as the tboxd user on vcan0, and stops it.
// The binaries are built with -tags tpm, as make package builds them; the
// configuration names a [watchdog] device, which the script hands to the
// tboxd user.
func TestPackageInGuest(t *testing.T) {
	k := prepare(t)
	dpkg, err := exec.LookPath("dpkg-deb")
	if err != nil {
		t.Skip("dpkg-deb not installed")
	}
	ctx := context.Background()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	stage := filepath.Join(root, "bin", ".pkg")
	os.RemoveAll(stage)
	defer os.RemoveAll(stage)
	// make package builds with the TPM backend (GOTAGS=tpm): so does this.
	t.Setenv("GOFLAGS", strings.TrimSpace(os.Getenv("GOFLAGS")+" -tags=tpm"))
	for _, c := range []string{"tboxd", "tboxctl"} {
		if err := CrossBuild(ctx, "./cmd/"+c, filepath.Join(stage, c)); err != nil {
			t.Fatal(err)
		}
	}
	out := t.TempDir()
	pkg := exec.Command("go", "tool", "-modfile=cmd/tboxd/deploy/tools/go.mod", "nfpm", "package", "--config", "cmd/tboxd/deploy/nfpm.yaml", "--packager", "deb", "--target", out+"/")
	pkg.Dir = root
	pkg.Env = append(os.Environ(), "NFPM_ARCH=armhf", "PKG_VERSION=1.0.0")
	if b, err := pkg.CombinedOutput(); err != nil {
		t.Fatalf("nfpm: %v\n%s", err, b)
	}
	deb := filepath.Join(out, "tboxd_1.0.0_armhf.deb")
	rootfs, control := t.TempDir(), t.TempDir()
	for _, args := range [][]string{{"-x", deb, rootfs}, {"-e", deb, control}} {
		if b, err := exec.Command(dpkg, args...).CombinedOutput(); err != nil {
			t.Fatalf("dpkg-deb %v: %v\n%s", args, err, b)
		}
	}
	files := map[string]string{
		"/root/pkg/preinst":  filepath.Join(control, "preinst"),
		"/root/pkg/postinst": filepath.Join(control, "postinst"),
		"/root/pkg/prerm":    filepath.Join(control, "prerm"),
		"/root/pkg/ev.toml":  filepath.Join(root, "agent/profile/testdata/ev.toml"),
		"/root/pkg/ev.dbc":   filepath.Join(root, "agent/profile/testdata/ev.dbc"),
	}
	filepath.WalkDir(rootfs, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files["/"+strings.TrimPrefix(p, rootfs+"/")] = p
		}
		return err
	})
	script := `set -x
echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd; echo 'root:x:0:' > /etc/group
sh /root/pkg/preinst install || exit 10
# busybox has no adduser: the user is made by hand, as preinst asks.
echo 'tboxd:x:999:999::/var/lib/tboxd:/bin/false' >> /etc/passwd; echo 'tboxd:x:999:' >> /etc/group
mkdir -p /var/lib/tboxd /var/run /var/log
sh /root/pkg/postinst configure || exit 11
ls -ld /etc/tbox /var/lib/tboxd
tboxd --version || exit 12
# The packaged binaries carry the TPM backend: keygen --tpm gets as far as
# the (absent) TPM device, instead of saying it was built without TPM support.
tboxctl keygen --tpm --key /tmp/t.sealed --tpm-device /dev/no-tpm > /tmp/tpm.out 2>&1 && exit 23
cat /tmp/tpm.out
grep -q 'without TPM support' /tmp/tpm.out && exit 24
grep -q '/dev/no-tpm' /tmp/tpm.out || exit 25
tboxd --config /etc/tbox/tboxd.toml --check-config && exit 13  # not provisioned yet: must fail
cp /root/pkg/ev.toml /etc/tbox/profile.toml; cp /root/pkg/ev.dbc /etc/tbox/ev.dbc
tboxctl keygen --key /etc/tbox/device.key || exit 14
chown tboxd:tboxd /etc/tbox/device.key
busybox sed -i 's/"can0"/"vcan0"/' /etc/tbox/tboxd.toml
# A hardware watchdog, as a T-Box without systemd uses it: the armhf virt
# machine has none, so /dev/null's device (root's alone, as a watchdog
# node is) stands in; the init script must give it to the tboxd user.
[ -e /dev/watchdog ] || mknod -m 600 /dev/watchdog c 1 3
printf '\n[watchdog]\ndevice = "/dev/watchdog"\ninterval = "1s"\n' >> /etc/tbox/tboxd.toml
tboxd --config /etc/tbox/tboxd.toml --check-config || exit 15
/etc/init.d/tboxd start || exit 16
ls -l /dev/watchdog | grep -q ' tboxd ' || exit 26
sleep 8
/etc/init.d/tboxd status || { cat /var/log/tboxd.log; exit 17; }
ps | grep -v grep | grep 'tboxd --config' || exit 18
# It runs as the dedicated user, not root (busybox ps: PID USER TIME COMMAND).
ps | grep -v grep | grep '/usr/bin/tboxd --config' | grep -q '^ *[0-9][0-9]* tboxd ' || exit 22
/etc/init.d/tboxd stop
sleep 1
cat /var/log/tboxd.log
grep -q 'tboxd started' /var/log/tboxd.log || exit 19
grep -q 'tboxd stopped' /var/log/tboxd.log || exit 20
/etc/init.d/tboxd status && exit 21
echo PACKAGE-OK
`
	// A broker port (nothing answers) gives the guest its virtio NIC:
	// without one, qemu's virt machine adds a PCI NIC whose boot ROM
	// (efi-virtio.rom, package ipxe-qemu) is not installed here.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	res, err := k.Boot(ctx, Options{
		Files: files, Script: script, Timeout: 4 * time.Minute, BrokerPort: ln.Addr().(*net.TCPAddr).Port,
		Console: &logWriter{t: t, prefix: "guest: "},
	})
	if err != nil {
		t.Fatalf("boot: %v", err)
	}
	if res.ExitCode != 0 || !strings.Contains(res.Console, "PACKAGE-OK") {
		t.Fatalf("the package in the guest: script exit %d", res.ExitCode)
	}
	t.Logf("boot to power-off %v", res.Duration.Round(time.Millisecond))
}
