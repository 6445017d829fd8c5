package hil

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestQEMUArgsHermetic checks that every guest the harness can start names
// its devices and nothing else: -nodefaults always, and no NIC unless a
// broker is asked for. Without them qemu's "virt" machine adds a
// virtio-net-pci NIC whose ROM comes from a package (ipxe-qemu) that the
// install script does not name, and a fresh machine cannot boot the guest.
func TestQEMUArgsHermetic(t *testing.T) {
	for _, o := range []Options{
		{},
		{BrokerPort: 1883},
		{Serial: "/tmp/x.sock"},
		{Disk: "/tmp/disk.img"},
		{BrokerPort: 1883, Serial: "/tmp/x.sock", Disk: "/tmp/disk.img"},
		{Arch: ArchARM64},
		{Arch: ArchARM64, Kvaser: 2, BrokerPort: 1883, Serial: "/tmp/x.sock", Disk: "/tmp/disk.img"},
	} {
		o.Memory, o.CPUs, o.Clock = 256, 1, time.Unix(1700000000, 0)
		args := qemuArgs("vmlinuz", "initrd.gz", &o)
		name := fmt.Sprintf("arch=%s kvaser=%d broker=%d serial=%q disk=%q", o.Arch, o.Kvaser, o.BrokerPort, o.Serial, o.Disk)
		if !slices.Contains(args, "-nodefaults") {
			t.Errorf("%s: no -nodefaults in %q", name, args)
		}
		nets := 0
		for i, a := range args {
			if a == "-netdev" || a == "-nic" || a == "-net" {
				nets++
				if o.BrokerPort == 0 && !(a == "-nic" && args[i+1] == "none") {
					t.Errorf("%s: a network (%s %s) though no broker was asked for", name, a, args[i+1])
				}
			}
			if a == "-device" && strings.Contains(args[i+1], "-pci") {
				t.Errorf("%s: PCI device %s: its option ROM comes from a package", name, args[i+1])
			}
			// The Kvaser cards are PCI devices: only with the ROM
			// turned off.
			if a == "-device" && strings.Contains(args[i+1], "_pci") && !slices.Contains(strings.Split(args[i+1], ","), "romfile=") {
				t.Errorf("%s: PCI device %s without romfile= (no option ROM)", name, args[i+1])
			}
		}
		cpu := args[slices.Index(args, "-cpu")+1]
		if want := map[string]string{"": "cortex-a15", ArchARM64: "cortex-a57"}[o.Arch]; cpu != want {
			t.Errorf("%s: -cpu %s, want %s", name, cpu, want)
		}
		if got := strings.Count(strings.Join(args, " "), "kvaser_pci,canbus=canbus0"); got != o.Kvaser {
			t.Errorf("%s: %d kvaser_pci cards, want %d", name, got, o.Kvaser)
		}
		if o.Kvaser > 0 && !slices.Contains(args, "can-bus,id=canbus0") {
			t.Errorf("%s: kvaser cards without their can-bus object", name)
		}
		if nets == 0 {
			t.Errorf("%s: neither a netdev nor -nic none", name)
		}
	}
}

// TestCheckArch: the Kvaser cards only on arm64 (the armhf kernel cannot
// map them), with a tboxctl to set their bit rate, and the link defaults.
func TestCheckArch(t *testing.T) {
	k := &Kit{}
	ctl := map[string]string{"/bin/tboxctl": "tboxctl"}
	for _, c := range []struct {
		o  Options
		ok bool
	}{
		{Options{}, true},
		{Options{Arch: "x86"}, false},
		{Options{Kvaser: 2, Files: ctl}, false},
		{Options{Arch: ArchARM64, Kvaser: 2}, false},
		{Options{Arch: ArchARM64, Kvaser: 9, Files: ctl}, false},
		{Options{Arch: ArchARM64, Kvaser: 2, Files: ctl}, true},
	} {
		o := c.o
		err := k.checkArch(&o)
		if (err == nil) != c.ok {
			t.Errorf("checkArch(%+v) = %v, want ok %v", c.o, err, c.ok)
		}
		if err == nil && o.Kvaser > 0 && (o.Bitrate != DefaultBitrate || o.RestartMS != DefaultRestartMS) {
			t.Errorf("checkArch(%+v): bitrate %d restart-ms %d, want the defaults", c.o, o.Bitrate, o.RestartMS)
		}
	}
	o := Options{Arch: ArchARM64, Kvaser: 1, Files: ctl, RestartMS: -1, Bitrate: 250000}
	if err := k.checkArch(&o); err != nil || o.RestartMS != 0 || o.Bitrate != 250000 {
		t.Errorf("RestartMS -1, Bitrate 250000: %v, restart-ms %d, bitrate %d; want 0 and 250000", err, o.RestartMS, o.Bitrate)
	}
}

func TestDiagnoseQEMU(t *testing.T) {
	for _, c := range []struct{ out, want string }{
		{`qemu-system-arm: failed to find romfile "efi-virtio.rom"`, "efi-virtio.rom (Debian package: ipxe-qemu)"},
		{`qemu-system-aarch64: Could not load "bios-256k.bin"`, "bios-256k.bin (Debian package: seabios)"},
		{`qemu-system-arm: failed to find romfile "odd.rom"`, "apt-file search odd.rom"},
		{"Booting Linux\nHIL-EXIT 0\n", ""},
	} {
		got := diagnoseQEMU(c.out)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("diagnoseQEMU(%q) = %q, want it to contain %q", c.out, got, c.want)
		}
		if strings.Contains(got, "\n") {
			t.Errorf("diagnosis is not one line: %q", got)
		}
	}
}

// TestMissingROMNamesPackage starts the real qemu with the harness's
// arguments plus a PCI NIC whose ROM does not exist, as qemu's default NIC
// did on a fresh machine, and checks that qemu's own complaint becomes the
// harness's one-line diagnosis naming the file and its package.
func TestMissingROMNamesPackage(t *testing.T) {
	k := prepare(t)
	o := Options{Memory: 256, CPUs: 1, Clock: time.Now()}
	initrd := filepath.Join(t.TempDir(), "initrd.gz")
	if err := os.WriteFile(initrd, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	args := append(qemuArgs(k.Kernel, initrd, &o), "-device", "virtio-net-pci,romfile=efi-hil-missing.rom")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, k.QEMU, args...).CombinedOutput()
	if err == nil {
		t.Fatalf("qemu started with a missing ROM:\n%s", out)
	}
	d := diagnoseQEMU(string(out))
	if !strings.Contains(d, "efi-hil-missing.rom") || !strings.Contains(d, "ipxe-qemu") {
		t.Fatalf("qemu said %q; diagnosis %q does not name the file and ipxe-qemu", out, d)
	}
}
