package hil

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

//go:embed guest/init.sh
var initScript []byte

// BrokerAddr is where a guest reaches the host's broker when
// Options.BrokerPort is set.
const BrokerAddr = "10.0.2.100:1883"

// Guest paths.
const (
	DataDir    = "/data"     // Options.Disk is mounted here
	SerialPort = "/dev/hvc0" // Options.Serial is this port in the guest
)

// Modules loaded by /init, in dependency order, per feature.
var (
	canModules    = []string{"can", "can-raw", "can-isotp", "can-dev", "vcan"}
	virtioModules = []string{"virtio_mmio"}
	netModules    = []string{"failover", "net_failover", "virtio_net"}
	serialModules = []string{"virtio_console"}
	diskModules   = []string{"virtio_blk", "crc16", "crc32c_generic", "libcrc32c", "mbcache", "jbd2", "ext4"}
	// The arm64 guest's CAN controllers (on top of canModules, which has
	// can-dev and the kernel's ISO-TP).
	kvaserModules = []string{"sja1000", "kvaser_pci"}
)

// Guest architectures (Options.Arch).
const (
	ArchARMHF = "armhf" // qemu-system-arm, Cortex-A15, the armmp-lpae kernel (the default)
	ArchARM64 = "arm64" // qemu-system-aarch64, Cortex-A57, the arm64 kernel
)

// Defaults of the CAN controllers' link (Options.Kvaser).
const (
	DefaultBitrate   = 500000
	DefaultRestartMS = 100
)

// Options describe one boot of the emulated T-Box.
type Options struct {
	// Files are copied into the guest: guest path -> host path. Binaries
	// keep their mode.
	Files map[string]string
	// Script is run by sh after vcan0 is up (and eth0, /data); its exit
	// status is the Result's ExitCode.
	Script string
	// Disk is a raw ext4 image (MakeDisk) attached as /dev/vda and mounted
	// at /data. Writes go through to the image (cache=writethrough).
	Disk string
	// BrokerPort, when set, lets the guest reach 127.0.0.1:BrokerPort on the
	// host as BrokerAddr, and nothing else (restrict=on): each connection
	// through its own socat (the host needs socat, installed by
	// hil/scripts/install.sh).
	BrokerPort int
	// Serial is a unix socket path; the guest's /dev/hvc0 is connected to it
	// (qemu listens: connect after Start).
	Serial string
	// CanUtils puts the armhf can-utils (candump, cansend, cangen, ...) and
	// the libc they need into the guest.
	CanUtils bool
	// Arch is the guest: ArchARMHF (default) or ArchARM64. Binaries for
	// arm64 come from CrossBuildArch(ctx, "arm64", ...); the arm64 kernel
	// runs the 32-bit ARM ones as well (COMPAT), can-utils included.
	Arch string
	// Kvaser is the number of qemu kvaser_pci cards (arm64 only), all on
	// one qemu can-bus: can0, can1, ... on the kernel's sja1000 driver.
	// /init sets each to Bitrate and RestartMS over rtnetlink with
	// /bin/tboxctl link (which Files must then hold) and brings it up.
	// vcan0 is there as well.
	Kvaser int
	// Bitrate (bit/s, default DefaultBitrate) and RestartMS (default
	// DefaultRestartMS; -1 for 0: no automatic restart after bus-off) of
	// the Kvaser ports.
	Bitrate   int
	RestartMS int
	// Memory in MiB (default 256), CPUs (default 1).
	Memory int
	CPUs   int
	// Clock is the guest's wall clock at boot (default: the host's now).
	Clock time.Time
	// Timeout bounds the whole boot (default 5 minutes): qemu is killed
	// and Wait fails with ErrTimeout and the console's tail.
	Timeout time.Duration
	// Console receives the guest's console output as it comes.
	Console io.Writer
}

// Result is the outcome of a boot.
type Result struct {
	Console  string        // everything the guest printed
	ExitCode int           // the script's exit status; -1 without an exit marker
	BootTime time.Duration // from qemu's start to the guest's HIL-READY (vcan0 up)
	Duration time.Duration // from qemu's start to its end
}

// Running is a guest that has been started.
type Running struct {
	cmd     *exec.Cmd
	tmp     string
	start   time.Time
	timeout *time.Timer
	done    chan struct{}
	waitErr error
	killed  bool
	timedO  bool

	mu       sync.Mutex
	cond     *sync.Cond
	console  bytes.Buffer
	exit     int
	haveExit bool
	ready    time.Duration
	eof      bool
}

// Boot starts a guest and waits for it to finish.
func (k *Kit) Boot(ctx context.Context, o Options) (*Result, error) {
	r, err := k.Start(ctx, o)
	if err != nil {
		return nil, err
	}
	return r.Wait()
}

// Start builds the initramfs and starts qemu. Cancelling ctx kills the guest.
func (k *Kit) Start(ctx context.Context, o Options) (*Running, error) {
	if o.Memory == 0 {
		o.Memory = 256
	}
	if o.CPUs == 0 {
		o.CPUs = 1
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.Clock.IsZero() {
		o.Clock = time.Now()
	}
	if o.BrokerPort != 0 {
		if _, err := exec.LookPath("socat"); err != nil {
			return nil, fmt.Errorf("guestfwd to the broker: socat (installed by hil/scripts/install.sh): %w", err)
		}
	}
	if err := k.checkArch(&o); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "hil-")
	if err != nil {
		return nil, err
	}
	initrd := filepath.Join(tmp, "initrd.gz")
	if err := k.writeInitramfs(initrd, &o); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("initramfs: %w", err)
	}
	qemu, kernel := k.QEMU, k.Kernel
	if o.Arch == ArchARM64 {
		qemu, kernel = k.QEMU64, k.ARM64Kernel
	}
	args := qemuArgs(kernel, initrd, &o)
	cmd := exec.Command(qemu, args...)
	cmd.Stdin = nil
	out, err := cmd.StdoutPipe()
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	r := &Running{cmd: cmd, tmp: tmp, done: make(chan struct{}), exit: -1}
	r.cond = sync.NewCond(&r.mu)
	r.start = time.Now()
	if err := cmd.Start(); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("start %s: %w", qemu, err)
	}
	r.timeout = time.AfterFunc(o.Timeout, func() {
		r.mu.Lock()
		r.timedO = true
		r.mu.Unlock()
		r.Kill()
	})
	stop := context.AfterFunc(ctx, func() { r.Kill() })
	go func() {
		r.read(out, o.Console)
		r.waitErr = cmd.Wait()
		stop()
		r.timeout.Stop()
		os.RemoveAll(tmp)
		close(r.done)
	}()
	return r, nil
}

// guestfwdCmd is the program qemu's guestfwd runs for each connection the
// guest opens to BrokerAddr: socat joins the connection (its stdin and
// stdout) to the host's port. A guestfwd to a chardev ("-tcp:HOST:PORT")
// is one socket that qemu opens at start and the guest's first connection
// takes for the guest's life: a second connection (tboxd's start-up look
// for a retained receipt, a reconnect after the broker restarted) would
// find nothing behind it. "cmd:" is spawned anew for each connection. Its
// stderr is the connection too, so socat logs nowhere (-lf /dev/null); the
// command has no comma, which qemu's option parser would split on.
func guestfwdCmd(port int) string {
	return fmt.Sprintf("socat -lf /dev/null STDIO TCP:127.0.0.1:%d", port)
}

// checkArch validates Arch and the CAN controllers and fills their
// defaults.
func (k *Kit) checkArch(o *Options) error {
	switch o.Arch {
	case "":
		o.Arch = ArchARMHF
	case ArchARMHF, ArchARM64:
	default:
		return fmt.Errorf("Options.Arch %q: want %q or %q", o.Arch, ArchARMHF, ArchARM64)
	}
	if o.Kvaser == 0 {
		return nil
	}
	switch {
	case o.Arch != ArchARM64:
		return fmt.Errorf("Options.Kvaser %d on %s: the armhf kernel cannot map the card's I/O ports (CONFIG_NO_IOPORT_MAP); use Arch %q", o.Kvaser, o.Arch, ArchARM64)
	case o.Kvaser < 0 || o.Kvaser > 4:
		return fmt.Errorf("Options.Kvaser %d: want 1 to 4 cards", o.Kvaser)
	case o.Files["/bin/tboxctl"] == "":
		return fmt.Errorf("Options.Kvaser: /init sets the bit rate with tboxctl link: put a tboxctl at /bin/tboxctl in Options.Files")
	}
	if o.Bitrate == 0 {
		o.Bitrate = DefaultBitrate
	}
	switch {
	case o.RestartMS == 0:
		o.RestartMS = DefaultRestartMS
	case o.RestartMS < 0:
		o.RestartMS = 0
	}
	return nil
}

// qemuArgs is the whole qemu command line of a guest. -nodefaults leaves out
// every device the machine would add on its own (on "virt" a virtio-net-pci
// NIC whose option ROM, efi-virtio.rom, comes from a package the install
// script does not name), so the guest has the devices named here and no
// others, and qemu reads no file but the kernel and the initramfs. The
// Kvaser cards are PCI devices without a ROM: romfile= says so.
func qemuArgs(kernel, initrd string, o *Options) []string {
	cpu := "cortex-a15"
	if o.Arch == ArchARM64 {
		cpu = "cortex-a57"
	}
	args := []string{
		"-nodefaults",
		"-M", "virt", "-cpu", cpu, "-accel", "tcg",
		"-m", strconv.Itoa(o.Memory), "-smp", strconv.Itoa(o.CPUs),
		"-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
		"-kernel", kernel, "-initrd", initrd,
		"-append", fmt.Sprintf("console=ttyAMA0 quiet panic=-1 hil.time=%d", o.Clock.Unix()),
	}
	if o.BrokerPort != 0 {
		args = append(args,
			"-netdev", fmt.Sprintf("user,id=n0,restrict=on,guestfwd=tcp:%s-cmd:%s", BrokerAddr, guestfwdCmd(o.BrokerPort)),
			"-device", "virtio-net-device,netdev=n0")
	} else {
		args = append(args, "-nic", "none")
	}
	if o.Serial != "" {
		args = append(args,
			"-device", "virtio-serial-device",
			"-chardev", fmt.Sprintf("socket,id=hv,path=%s,server=on,wait=off", o.Serial),
			"-device", "virtconsole,chardev=hv")
	}
	if o.Disk != "" {
		args = append(args,
			"-drive", fmt.Sprintf("file=%s,format=raw,if=none,id=d0,cache=writethrough", o.Disk),
			"-device", "virtio-blk-device,drive=d0")
	}
	if o.Kvaser > 0 {
		args = append(args, "-object", "can-bus,id=canbus0")
		for range o.Kvaser {
			args = append(args, "-device", "kvaser_pci,canbus=canbus0,romfile=")
		}
	}
	return args
}

// romPackages names the Debian package that brings a file qemu may look for.
// A guest started by qemuArgs needs none of them; the table makes the error
// of one that does say what to install.
var romPackages = []struct{ prefix, pkg string }{
	{"efi-", "ipxe-qemu"},
	{"pxe-", "ipxe-qemu"},
	{"bios", "seabios"},
	{"vgabios", "seabios"},
	{"edk2-", "qemu-efi-arm or qemu-efi-aarch64"},
	{"QEMU_EFI", "qemu-efi-arm or qemu-efi-aarch64"},
}

// missingFileRe matches qemu's complaints about a file it cannot find.
var missingFileRe = regexp.MustCompile(`(?:failed to find romfile|[Cc]ould not (?:load|open|find)[^"']*) ["']([^"']+)["']`)

// diagnoseQEMU turns qemu's output on a failed start into one line naming
// the missing file and the package that brings it, or "" when the output
// names no missing file.
func diagnoseQEMU(out string) string {
	m := missingFileRe.FindStringSubmatch(out)
	if m == nil {
		return ""
	}
	file := m[1]
	base := filepath.Base(file)
	pkg := "not known to the harness; apt-file search " + base + " tells"
	for _, r := range romPackages {
		if strings.HasPrefix(base, r.prefix) {
			pkg = r.pkg
			break
		}
	}
	return fmt.Sprintf("qemu cannot start: missing file %s (Debian package: %s); a device named in hil/machine.go's qemuArgs asks for it: add the package to hil/scripts/install.sh or drop the device", file, pkg)
}

// read collects the console and watches for the markers.
func (r *Running) read(out io.Reader, echo io.Writer) {
	br := bufio.NewReader(out)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			line = strings.ReplaceAll(line, "\r", "")
			if echo != nil {
				io.WriteString(echo, line)
			}
			r.mu.Lock()
			r.console.WriteString(line)
			t := strings.TrimSpace(line)
			if rest, ok := strings.CutPrefix(t, "HIL-EXIT "); ok {
				if n, err := strconv.Atoi(rest); err == nil {
					r.exit, r.haveExit = n, true
				}
			}
			if strings.HasPrefix(t, "HIL-READY") && r.ready == 0 {
				r.ready = time.Since(r.start)
			}
			r.cond.Broadcast()
			r.mu.Unlock()
		}
		if err != nil {
			break
		}
	}
	r.mu.Lock()
	r.eof = true
	r.cond.Broadcast()
	r.mu.Unlock()
}

// Console returns what the guest printed so far.
func (r *Running) Console() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.console.String()
}

// WaitOutput blocks until the console contains s, the guest ends, or ctx is
// done.
func (r *Running) WaitOutput(ctx context.Context, s string) error {
	stop := context.AfterFunc(ctx, func() {
		r.mu.Lock()
		r.cond.Broadcast()
		r.mu.Unlock()
	})
	defer stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		if strings.Contains(r.console.String(), s) {
			return nil
		}
		if r.eof {
			if d := diagnoseQEMU(r.console.String()); d != "" {
				return fmt.Errorf("%w: %s", ErrQEMUFile, d)
			}
			return fmt.Errorf("guest ended before printing %q: %w\n%s", s, ErrNoExit, tail(r.console.String(), 20))
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		r.cond.Wait()
	}
}

// Kill cuts the guest's power: SIGKILL to qemu. Disk writes the guest had
// not flushed are lost, as in a power cut.
func (r *Running) Kill() error {
	r.mu.Lock()
	r.killed = true
	r.mu.Unlock()
	err := r.cmd.Process.Signal(syscall.SIGKILL)
	if errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	return err
}

// Wait waits for qemu to end and returns the guest's result. The error
// matches ErrTimeout when the guest ran out of time and ErrNoExit when it
// ended without its exit marker (including after Kill); both carry the
// console's tail. A script that exits non-zero is not an error: see
// Result.ExitCode.
func (r *Running) Wait() (*Result, error) {
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	res := &Result{Console: r.console.String(), ExitCode: r.exit, BootTime: r.ready, Duration: time.Since(r.start)}
	switch {
	case r.timedO:
		return res, fmt.Errorf("%w after %v; console tail:\n%s", ErrTimeout, res.Duration.Round(time.Second), tail(res.Console, 40))
	case !r.haveExit && !r.killed && diagnoseQEMU(res.Console) != "":
		return res, fmt.Errorf("%w: %s", ErrQEMUFile, diagnoseQEMU(res.Console))
	case !r.haveExit:
		how := fmt.Sprintf("qemu: %v", r.waitErr)
		if r.killed {
			how = "killed"
		}
		return res, fmt.Errorf("%w (%s); console tail:\n%s", ErrNoExit, how, tail(res.Console, 40))
	}
	return res, nil
}

// writeInitramfs assembles the guest's root file system.
func (k *Kit) writeInitramfs(dst string, o *Options) error {
	r := newInitramfs()
	for _, d := range []string{"proc", "sys", "dev", "tmp", "root", "run", "var", "etc/hil",
		"bin", "sbin", "usr/bin", "usr/sbin", "lib/modules"} {
		r.dir(d)
	}
	r.charDev("dev/console", 5, 1)
	busybox, modDir := k.Busybox, k.Modules
	if o.Arch == ArchARM64 {
		busybox, modDir = k.ARM64Busybox, k.ARM64Modules
	}
	if err := r.file("bin/busybox", busybox); err != nil {
		return err
	}
	r.symlink("bin/sh", "busybox")
	r.bytes("init", 0o755, initScript)
	r.bytes("etc/hil/script.sh", 0o755, []byte(o.Script+"\n"))

	mods := append([]string(nil), canModules...)
	net, disk, serial := "0", "0", "0"
	if o.BrokerPort != 0 || o.Serial != "" || o.Disk != "" {
		mods = append(mods, virtioModules...)
	}
	if o.BrokerPort != 0 {
		mods, net = append(mods, netModules...), "1"
	}
	if o.Serial != "" {
		mods, serial = append(mods, serialModules...), "1"
	}
	if o.Disk != "" {
		mods, disk = append(mods, diskModules...), "1"
	}
	var cans []string
	if o.Kvaser > 0 {
		mods = append(mods, kvaserModules...)
		for i := range o.Kvaser {
			cans = append(cans, fmt.Sprintf("can%d", i))
		}
	}
	index, err := moduleIndex(modDir)
	if err != nil {
		return err
	}
	if o.Kvaser > 0 {
		for _, m := range kvaserModules {
			if _, ok := index[modKey(m)]; !ok {
				return fmt.Errorf("kernel modules in %s: %s.ko not found: Options.Kvaser needs the sja1000 and kvaser_pci modules of the arm64 kernel (linux-image-arm64:arm64, hil/scripts/install.sh)", modDir, m)
			}
		}
	}
	var load []string
	for _, m := range mods {
		p, ok := index[modKey(m)]
		if !ok {
			continue // built into this kernel
		}
		r.add(&cpioEntry{name: "lib/modules/" + m + ".ko", mode: modeFile | 0o644, src: p})
		load = append(load, m)
	}
	r.bytes("etc/hil/env", 0o644, fmt.Appendf(nil, "HIL_MODULES=%q\nHIL_NET=%s\nHIL_DISK=%s\nHIL_SERIAL=%s\nHIL_CAN=%q\nHIL_BITRATE=%d\nHIL_RESTART_MS=%d\n",
		strings.Join(load, " "), net, disk, serial, strings.Join(cans, " "), o.Bitrate, o.RestartMS))

	if o.CanUtils {
		ents, err := os.ReadDir(k.CanUtils)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if err := r.file("usr/bin/"+e.Name(), filepath.Join(k.CanUtils, e.Name())); err != nil {
				return err
			}
		}
		if err := r.file("lib/ld-linux-armhf.so.3", k.Loader); err != nil {
			return err
		}
		if err := r.file("lib/arm-linux-gnueabihf/libc.so.6", filepath.Join(k.LibDir, "libc.so.6")); err != nil {
			return err
		}
	}
	for guest, host := range o.Files {
		if err := r.file(guest, host); err != nil {
			return fmt.Errorf("Options.Files[%q]: %w", guest, err)
		}
	}
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	if err := r.write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func modKey(name string) string { return strings.ReplaceAll(name, "-", "_") }

// moduleIndex maps module names (with '_' for '-') to their .ko files
// under a kernel's lib/modules/<version>.
func moduleIndex(dir string) (map[string]string, error) {
	idx := map[string]string{}
	err := filepath.WalkDir(filepath.Join(dir, "kernel"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if n, ok := strings.CutSuffix(d.Name(), ".ko"); ok && !d.IsDir() {
			idx[modKey(n)] = p
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("kernel modules in %s: %w", dir, err)
	}
	for _, m := range canModules {
		if _, ok := idx[modKey(m)]; !ok {
			return nil, fmt.Errorf("kernel modules in %s: %s.ko not found", dir, m)
		}
	}
	return idx, nil
}

// MakeDisk creates a raw ext4 image of sizeMiB at path (mkfs.ext4).
func MakeDisk(path string, sizeMiB int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := f.Truncate(int64(sizeMiB) << 20); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if b, err := exec.Command("mkfs.ext4", "-q", "-F", path).CombinedOutput(); err != nil {
		return fmt.Errorf("mkfs.ext4 %s: %w: %s", path, err, b)
	}
	return nil
}

// DiskFile reads a file out of an ext4 image without mounting it (debugfs).
// name is the path inside the file system ("/state/outbox.db").
func DiskFile(image, name string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := exec.Command("debugfs", "-R", "cat "+name, image)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("debugfs cat %s in %s: %w: %s", name, image, err, stderr.String())
	}
	if strings.Contains(stderr.String(), "File not found") {
		return nil, fmt.Errorf("%s in %s: %w", name, image, fs.ErrNotExist)
	}
	return out, nil
}
