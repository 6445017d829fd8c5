package rig

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/csop/tbox/can"
	"github.com/csop/tbox/hil"
	"github.com/csop/tbox/hil/vehicle"
	"github.com/csop/tbox/signer"
)

// Tboxd is tboxd's configuration in the guest (cmd/tboxd/tboxd.example.toml).
type Tboxd struct {
	// StateDir holds the outbox; default /tmp/tbox (tmpfs: every boot
	// starts empty). Under hil.DataDir it survives power cuts.
	StateDir string
	// TimeScale compresses time (can.time_scale): frame times count
	// TimeScale times faster from tboxd's start.
	TimeScale float64
	// Replay is a candump log read instead of vcan0 (can.replay), at
	// ReplayPace (0: as fast as possible).
	Replay     string
	ReplayPace float64
	// ShutdownGrace is how long tboxd may go on uploading after a stop or
	// the end of a replay (default 15 s; it ends early once the outbox is
	// empty).
	ShutdownGrace time.Duration
	// Upload configures mqtt.broker = ssl://hil.BrokerAddr (mTLS with the
	// rig's device certificate, through qemu's restricted guestfwd).
	Upload bool
	// Shell serves the diagnostic shell on hil.SerialPort; ServiceKey
	// (an address or public key) enables its service mode.
	Shell      bool
	ServiceKey string
	// ReceiveBuffer is can.receive_buffer (default 8 MiB).
	ReceiveBuffer int
	// Checkpoint is outbox.checkpoint_interval (default tboxd's).
	Checkpoint time.Duration
	// Collectors is mqtt.collector_addresses; Boot fills in the rig's
	// collector key when it is empty.
	Collectors []signer.Address
	// Interface is can.interface (default vcan0: the machine's bus).
	Interface string
	// ISOTP is can.isotp (default tboxd's, auto): the transport of a
	// polled odometer's request.
	ISOTP string
}

// TOML renders the configuration; paths are relative to GuestEtc.
func (t Tboxd) TOML() string {
	if t.StateDir == "" {
		t.StateDir = "/tmp/tbox"
	}
	if t.ShutdownGrace == 0 {
		t.ShutdownGrace = 15 * time.Second
	}
	if t.ReceiveBuffer == 0 {
		t.ReceiveBuffer = 8 << 20
	}
	if t.Interface == "" {
		t.Interface = "vcan0"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `# tboxd in the rig's emulated T-Box (see cmd/tboxd/tboxd.example.toml).
profile        = "ev.toml"
key            = "device.key"
state_dir      = %q
chain_id       = %d
shutdown_grace = %q

[can]
interface      = %q
receive_buffer = %d
`, t.StateDir, ChainID, t.ShutdownGrace.String(), t.Interface, t.ReceiveBuffer)
	if t.ISOTP != "" {
		fmt.Fprintf(&b, "isotp          = %q\n", t.ISOTP)
	}
	if t.TimeScale > 1 {
		fmt.Fprintf(&b, "time_scale     = %g # a bench only: the drive is played %gx faster\n", t.TimeScale, t.TimeScale)
	}
	if t.Replay != "" {
		fmt.Fprintf(&b, "replay         = %q\nreplay_pace    = %g\n", t.Replay, t.ReplayPace)
	}
	if t.Checkpoint > 0 {
		fmt.Fprintf(&b, "\n[outbox]\ncheckpoint_interval = %q\n", t.Checkpoint.String())
	}
	if t.Upload {
		fmt.Fprintf(&b, `
[mqtt]
# The rig's broker runs the shipped configuration (mTLS only, the
# per-device ACL) on the host's loopback, reached through qemu's guestfwd
# on a network the guest cannot leave (restrict=on). Its certificate has
# %s as an IP SAN.
broker          = "ssl://%s"
ca_file         = %q
cert_file       = %q
key_file        = %q
health_interval = "10s"
`, hil.BrokerAddr, hil.BrokerAddr, guestName(GuestCA), guestName(GuestCert), guestName(GuestCertKey))
		b.WriteString("collector_addresses = [")
		for i, a := range t.Collectors {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%q", a.String())
		}
		b.WriteString("]\n")
	}
	if t.Shell {
		fmt.Fprintf(&b, "\n[shell]\ndevice = %q\n", hil.SerialPort)
		if t.ServiceKey != "" {
			fmt.Fprintf(&b, "service_pubkey = %q\n", t.ServiceKey)
		}
	}
	b.WriteString("\n[log]\nlevel = \"info\"\n")
	return b.String()
}

// Script snippets for GuestOptions.Script (busy-box sh). Markers the rig
// reads start with "RIG-".
const (
	// ScriptClockSync marks the guest's clock synchronized, as NTP would:
	// without it every attestation carries CLOCK.
	ScriptClockSync = "clocksync || exit 90\n"

	// ScriptStartTboxd starts tboxd on the first core with its log on the
	// console and in /tmp/tboxd.log, and waits for "tboxd started"; $tpid
	// is its pid. One core each for tboxd and the drive: vcan hands a
	// frame to the sending core's backlog queue, so a sender pinned to one
	// core also keeps its frames in order.
	ScriptStartTboxd = `mkfifo /tmp/tboxd.fifo
tee -a /tmp/tboxd.log < /tmp/tboxd.fifo &
taskset 1 tboxd --config ` + GuestConfig + ` > /tmp/tboxd.fifo 2>&1 &
tpid=$!
n=0
until grep -q 'msg="tboxd started"' /tmp/tboxd.log 2>/dev/null; do
	if ! kill -0 $tpid 2>/dev/null; then wait $tpid; echo "RIG-ERROR tboxd exited with status $? before it started"; exit 91; fi
	n=$((n+1)); if [ $n -gt 600 ]; then echo "RIG-ERROR tboxd not started after 60 s"; kill $tpid; exit 92; fi
	sleep 0.1
done
`

	// ScriptStopTboxd stops tboxd with SIGTERM (it closes the open span
	// and uploads it within shutdown_grace) and prints its exit status.
	ScriptStopTboxd = `kill -TERM $tpid
wait $tpid
echo "RIG-TBOXD-EXIT $?"
`

	// ScriptWaitTboxd waits for tboxd to end by itself (a replay) and
	// prints its exit status.
	ScriptWaitTboxd = `wait $tpid
echo "RIG-TBOXD-EXIT $?"
`

	// ScriptFirstFrame records the kernel time of the first frame on vcan0
	// (candump, in the background; $cpid); ScriptPrintFirstFrame prints it.
	ScriptFirstFrame = `candump -L -n 1 vcan0 > /tmp/first.log &
cpid=$!
sleep 1
`
	ScriptPrintFirstFrame = `kill $cpid 2>/dev/null
wait $cpid
echo "RIG-FIRST-FRAME $(cat /tmp/first.log)"
`
)

// GuestOptions describe one boot of the emulated T-Box with tboxd.
type GuestOptions struct {
	Script string
	// Tboxd, when set, is written to GuestConfig.
	Tboxd *Tboxd
	// Files are extra files: guest path -> host path.
	Files map[string]string
	// Broker lets the guest reach it as hil.BrokerAddr.
	Broker *Broker
	Disk   string // an ext4 image mounted at hil.DataDir
	Serial string // a unix socket for hil.SerialPort
	Clock  time.Time
	// CPUs defaults to 2: tboxd and the drive each on a core (one TCG core
	// cannot carry both at a high pace).
	CPUs    int
	Timeout time.Duration
	// OnLine sees every console line as it comes.
	OnLine func(string)
	// Kvaser, when not zero, boots the arm64 T-Box with that many Kvaser
	// PCI cards on one qemu CAN bus (can0, can1, ...: the real sja1000
	// driver at 500 kbit/s) instead of the armhf one with vcan0 alone;
	// the rig's 32-bit binaries run there as they would on an arm64 T-Box.
	Kvaser int
}

// Guest is a running emulated T-Box.
type Guest struct {
	*hil.Running
	cons *lineWriter

	mu    sync.Mutex
	lines []string
	cond  *sync.Cond
	eof   bool
}

// Files returns the files every boot gets: tboxd, vsim, clocksync,
// tboxctl, the profile, the device key and its mTLS files.
func (r *Rig) Files() map[string]string {
	return map[string]string{
		"/bin/tboxd": r.Bins.Tboxd, "/bin/vsim": r.Bins.Vsim, "/bin/clocksync": r.Bins.Clocksync, "/bin/tboxctl": r.Bins.TboxctlARM,
		GuestProfile: r.Bins.Profile, GuestEtc + "/ev.dbc": r.Bins.DBC, GuestKey: r.Key,
		GuestCA: r.PKI.CA, GuestCert: r.PKI.DeviceCert, GuestCertKey: r.PKI.DeviceKey,
	}
}

// Boot starts the guest (with can-utils) and returns at once.
func (r *Rig) Boot(ctx context.Context, o GuestOptions) (*Guest, error) {
	if !o.Clock.IsZero() && o.Clock.Before(r.PKI.NotBefore) {
		return nil, fmt.Errorf("guest clock %s is before the rig's certificates are valid (from %s, CertBackdate %v before the rig was made): tboxd would refuse the broker's certificate",
			o.Clock.UTC().Format(time.DateTime), r.PKI.NotBefore.UTC().Format(time.DateTime), CertBackdate)
	}
	files := r.Files()
	if o.Tboxd != nil {
		p, err := os.CreateTemp(r.Dir, "tboxd-*.toml")
		if err != nil {
			return nil, err
		}
		conf := *o.Tboxd
		if len(conf.Collectors) == 0 {
			conf.Collectors = []signer.Address{r.Collector}
		}
		if _, err := p.WriteString(conf.TOML()); err != nil {
			p.Close()
			return nil, err
		}
		if err := p.Close(); err != nil {
			return nil, err
		}
		files[GuestConfig] = p.Name()
	}
	maps.Copy(files, o.Files)
	if o.CPUs == 0 {
		o.CPUs = 2
	}
	g := &Guest{}
	g.cond = sync.NewCond(&g.mu)
	g.cons = &lineWriter{fn: func(l string) {
		g.mu.Lock()
		g.lines = append(g.lines, l)
		g.cond.Broadcast()
		g.mu.Unlock()
		if o.OnLine != nil {
			o.OnLine(l)
		}
	}}
	ho := hil.Options{
		Files: files, Script: o.Script, Disk: o.Disk, Serial: o.Serial, CanUtils: true,
		CPUs: o.CPUs, Clock: o.Clock, Timeout: o.Timeout, Console: g.cons,
	}
	if o.Kvaser != 0 {
		ho.Arch, ho.Kvaser = hil.ArchARM64, o.Kvaser
	}
	if o.Broker != nil {
		ho.BrokerPort = o.Broker.Port
	}
	run, err := r.Kit.Start(ctx, ho)
	if err != nil {
		return nil, err
	}
	g.Running = run
	return g, nil
}

// Wait waits for the guest to power off; a script that exits non-zero is
// an error here.
func (g *Guest) Wait() (*hil.Result, error) {
	res, err := g.Running.Wait()
	g.cons.flush()
	g.mu.Lock()
	g.eof = true
	g.cond.Broadcast()
	g.mu.Unlock()
	if err == nil && res.ExitCode != 0 {
		err = fmt.Errorf("guest script exited with status %d", res.ExitCode)
	}
	return res, err
}

// Lines returns the console lines so far.
func (g *Guest) Lines() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.lines)
}

// ErrEnded: the guest ended before the awaited line.
var ErrEnded = errors.New("guest ended")

// WaitLine waits for the n-th console line (counted from line from) that
// match accepts and returns its index; it fails with ErrEnded when the
// guest powers off first (Wait must be running) or with ctx's error.
func (g *Guest) WaitLine(ctx context.Context, from, n int, match func(string) bool) (int, error) {
	stop := context.AfterFunc(ctx, func() {
		g.mu.Lock()
		g.cond.Broadcast()
		g.mu.Unlock()
	})
	defer stop()
	g.mu.Lock()
	defer g.mu.Unlock()
	seen, i := 0, from
	for {
		for ; i < len(g.lines); i++ {
			if match(g.lines[i]) {
				if seen++; seen == n {
					return i, nil
				}
			}
		}
		if g.eof {
			return -1, ErrEnded
		}
		if err := ctx.Err(); err != nil {
			return -1, err
		}
		g.cond.Wait()
	}
}

// Facts is what the rig reads from a guest's console: tboxd's log lines
// and the scripts' RIG- markers.
type Facts struct {
	Started    []time.Time // each "tboxd started": the origin of its compressed time
	FirstFrame *can.Frame  // RIG-FIRST-FRAME
	Truth      *vehicle.Truth
	Made       int // attestations_made at the last "tboxd stopped"; -1 if none
	Depth      int // outbox_depth there
	VsimExit   int // -1 if not printed
	TboxdExit  int
	Attested   []map[string]string // tboxd's "attested" lines
	VsimLines  []string
	Warnings   []string // tboxd's WARN and ERROR lines
	Errors     []string // RIG-ERROR and HIL-ERROR lines
}

// ParseConsole reads the facts from console lines.
func ParseConsole(lines []string) *Facts {
	f := &Facts{Made: -1, Depth: -1, VsimExit: -1, TboxdExit: -1}
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "time="):
			kv := LogFields(l)
			switch kv["msg"] {
			case "tboxd started":
				if t, err := time.Parse(time.RFC3339Nano, kv["time"]); err == nil {
					f.Started = append(f.Started, t)
				}
			case "tboxd stopped":
				f.Made, _ = strconv.Atoi(kv["attestations_made"])
				f.Depth, _ = strconv.Atoi(kv["outbox_depth"])
			case "attested":
				f.Attested = append(f.Attested, kv)
			}
			if kv["level"] == "WARN" || kv["level"] == "ERROR" {
				f.Warnings = append(f.Warnings, l)
			}
		case strings.HasPrefix(l, "vsim:"):
			f.VsimLines = append(f.VsimLines, l)
		case strings.HasPrefix(l, "RIG-VSIM-EXIT "):
			f.VsimExit, _ = strconv.Atoi(strings.TrimPrefix(l, "RIG-VSIM-EXIT "))
		case strings.HasPrefix(l, "RIG-TBOXD-EXIT "):
			f.TboxdExit, _ = strconv.Atoi(strings.TrimPrefix(l, "RIG-TBOXD-EXIT "))
		case strings.HasPrefix(l, "RIG-FIRST-FRAME "):
			rd := can.NewReader(strings.NewReader(strings.TrimPrefix(l, "RIG-FIRST-FRAME ") + "\n"))
			if rd.Receive() {
				fr := *rd.Frame()
				f.FirstFrame = &fr
			}
		case strings.HasPrefix(l, "RIG-TRUTH "):
			var t vehicle.Truth
			if err := json.Unmarshal([]byte(strings.TrimPrefix(l, "RIG-TRUTH ")), &t); err == nil {
				f.Truth = &t
			}
		case strings.HasPrefix(l, "RIG-ERROR"), strings.HasPrefix(l, "HIL-ERROR"):
			f.Errors = append(f.Errors, l)
		}
	}
	return f
}

// Epoch is the first tboxd start, or the zero time.
func (f *Facts) Epoch() time.Time {
	if len(f.Started) == 0 {
		return time.Time{}
	}
	return f.Started[0]
}
