package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/csop/tbox/can"
	"github.com/csop/tbox/hil"
	"github.com/csop/tbox/hil/vehicle"
)

// Guest paths.
const (
	guestEtc     = "/etc/tbox"
	guestConfig  = guestEtc + "/tboxd.toml"
	guestProfile = guestEtc + "/ev.toml"
)

// vsim's options in the guest; the host replays the same scenario for the
// truth, so both must agree (vsim's defaults otherwise: parking, drive mode
// changes and stop-and-go traffic on).
const (
	simNoise   = 0  // unrelated messages on the bus, dropped by tboxd's kernel filter
	simSpeedHz = 10 // speed frames per second: the guest carries 120x pace with room to spare
	simBus     = "can0"
)

// guest is the emulated T-Box of one run and what its console said.
type guest struct {
	cfg      Config
	f        *files
	clock    time.Time // the guest's wall clock at boot
	simStart time.Time // vsim --start

	mu    sync.Mutex
	lines []string
	part  []byte
	p     *printer
}

func newGuest(cfg Config, f *files) *guest {
	clock := time.Now().Add(-cfg.Drive - clockMargin).Truncate(time.Second)
	return &guest{cfg: cfg, f: f, clock: clock, simStart: clock.Add(5 * time.Minute).Truncate(time.Minute)}
}

func (g *guest) writeConfig() error {
	conf := fmt.Sprintf(`# tboxd in the demo's emulated T-Box (see cmd/tboxd/tboxd.example.toml).
profile        = "ev.toml"
key            = "device.key"
state_dir      = "/tmp/tbox"        # tmpfs: the demo's T-Box starts empty
chain_id       = %d
shutdown_grace = "15s"              # on SIGTERM: time to upload the last span

[can]
interface      = "vcan0"
receive_buffer = 8388608            # room for the frames of a scheduling hiccup at %gx
time_scale     = %g                 # the demo only: vsim plays the drive %gx faster

[mqtt]
broker          = "tcp://%s"
# Plaintext MQTT to a broker that is not on the guest's loopback: the demo's
# broker runs on the host's loopback, reached through qemu's guestfwd on a
# network the guest cannot leave (restrict=on). Never on a vehicle.
allow_insecure  = true
health_interval = "10s"

[log]
level = "info"
`, chainID, g.cfg.Pace, g.cfg.Pace, g.cfg.Pace, hil.BrokerAddr)
	return os.WriteFile(g.f.tboxdConf, []byte(conf), 0o644)
}

// script is the guest's part: mark the clock synchronized, start tboxd,
// drive, stop tboxd (it closes the last span and uploads it), report.
func (g *guest) script() string {
	return fmt.Sprintf(`
clocksync || exit 90
mkfifo /tmp/tboxd.fifo
tee /tmp/tboxd.log < /tmp/tboxd.fifo &
# One core each: tboxd on the first, vsim on the second. vsim pinned also
# keeps its frames in order: vcan hands a frame to the sending core's
# backlog queue, and a sender that moves between cores can overtake itself.
taskset 1 tboxd --config %[1]s > /tmp/tboxd.fifo 2>&1 &
tpid=$!
n=0
until grep -q 'msg="tboxd started"' /tmp/tboxd.log 2>/dev/null; do
	if ! kill -0 $tpid 2>/dev/null; then wait $tpid; echo "DEMO-ERROR tboxd exited with status $? before it started"; exit 91; fi
	n=$((n+1)); if [ $n -gt 600 ]; then echo "DEMO-ERROR tboxd not started after 60 s"; kill $tpid; exit 92; fi
	sleep 0.1
done
candump -L -n 1 vcan0 > /tmp/first.log &
cpid=$!
sleep 1
echo "DEMO-DRIVE-START"
taskset 2 vsim --profile %[2]s --seed %[3]d --duration %[4]s --start %[5]s --iface vcan0 --pace %[6]g --noise %[7]d --speed-hz %[9]g --bus %[8]s --truth /tmp/truth.json
vrc=$?
echo "DEMO-VSIM-EXIT $vrc"
[ $vrc -eq 0 ] || kill $cpid 2>/dev/null
wait $cpid
echo "DEMO-FIRST-FRAME $(cat /tmp/first.log)"
kill -TERM $tpid
wait $tpid
echo "DEMO-TBOXD-EXIT $?"
wait
echo "DEMO-TRUTH $(tr -d ' \n' < /tmp/truth.json)"
[ $vrc -eq 0 ]
`, guestConfig, guestProfile, g.cfg.Seed, g.cfg.Drive, g.simStart.UTC().Format(time.RFC3339), g.cfg.Pace, simNoise, simBus, float64(simSpeedHz))
}

// boot runs the guest to its end.
func (g *guest) boot(ctx context.Context, kit *hil.Kit, brokerPort int, p *printer) (*hil.Result, error) {
	g.p = p
	drive := time.Duration(float64(g.cfg.Drive) / g.cfg.Pace)
	r, err := kit.Start(ctx, hil.Options{
		Files: map[string]string{
			"/bin/tboxd": g.f.tboxd, "/bin/vsim": g.f.vsim, "/bin/clocksync": g.f.clocksync,
			guestConfig: g.f.tboxdConf, guestProfile: g.f.profile, guestEtc + "/ev.dbc": g.f.dbc,
			guestEtc + "/device.key": g.f.key,
		},
		Script:     g.script(),
		BrokerPort: brokerPort,
		CanUtils:   true, // candump: the first frame's kernel time
		CPUs:       2,    // tboxd and vsim each on a core: one TCG core cannot carry both at 120x
		Clock:      g.clock,
		Timeout:    drive + 3*time.Minute,
		Console:    g,
	})
	if err != nil {
		return nil, err
	}
	res, err := r.Wait()
	g.flush()
	if err == nil && res.ExitCode != 0 {
		err = fmt.Errorf("guest script exited with status %d", res.ExitCode)
	}
	return res, err
}

// Write receives the guest's console and shows the interesting lines.
func (g *guest) Write(b []byte) (int, error) {
	g.mu.Lock()
	g.part = append(g.part, b...)
	var done []string
	for {
		i := strings.IndexByte(string(g.part), '\n')
		if i < 0 {
			break
		}
		done = append(done, strings.TrimRight(string(g.part[:i]), "\r"))
		g.part = g.part[i+1:]
	}
	g.lines = append(g.lines, done...)
	g.mu.Unlock()
	for _, l := range done {
		g.show(l)
	}
	return len(b), nil
}

func (g *guest) flush() {
	g.mu.Lock()
	if len(g.part) > 0 {
		g.lines = append(g.lines, string(g.part))
		g.part = nil
	}
	g.mu.Unlock()
}

func (g *guest) show(l string) {
	p := g.p
	if p == nil {
		return
	}
	if g.cfg.Verbose {
		if !strings.HasPrefix(l, "DEMO-TRUTH ") {
			p.say("guest| %s", l)
		}
		return
	}
	switch {
	case strings.HasPrefix(l, "HIL-READY"):
		p.say("T-Box: booted, vcan0 up")
	case strings.HasPrefix(l, "clocksync:"):
		p.say("T-Box: guest clock set from the host at boot, %s", strings.TrimPrefix(l, "clocksync: "))
	case strings.HasPrefix(l, "vsim:"):
		p.say("T-Box: %s", l)
	case l == "DEMO-DRIVE-START":
		p.say("T-Box: vsim drives onto vcan0 (%v of driving at %gx: about %v)", g.cfg.Drive, g.cfg.Pace,
			time.Duration(float64(g.cfg.Drive)/g.cfg.Pace).Round(time.Second))
	case strings.HasPrefix(l, "DEMO-ERROR"), strings.HasPrefix(l, "HIL-ERROR"):
		p.say("T-Box: %s", l)
	case strings.HasPrefix(l, "time="):
		kv := logfmt(l)
		switch {
		case kv["msg"] == "attested":
			p.say("T-Box: tboxd attested seq %s: batch %s (%s UTC), %s m, flags %s", kv["seq"], kv["batch"], batchClock(kv["batch"]), kv["meters"], kv["flags"])
		case kv["msg"] == "tboxd started" || kv["msg"] == "mqtt connected" || kv["msg"] == "tboxd stopped" ||
			kv["msg"] == "open span closed at stop":
			p.say("T-Box: tboxd %s", strings.TrimPrefix(l[strings.Index(l, "level="):], "level=INFO "))
		case kv["level"] == "WARN" || kv["level"] == "ERROR":
			p.say("T-Box: tboxd %s", l[strings.Index(l, "level="):])
		}
	}
}

func batchClock(s string) string {
	b, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return "?"
	}
	return time.Unix(b*vehicle.BatchSeconds, 0).UTC().Format("15:04")
}

func (g *guest) consoleLines() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.lines...)
}

// guestFacts is what the demo reads from the guest's console.
type guestFacts struct {
	Epoch      time.Time // tboxd's start: the origin of its compressed time
	FirstFrame *can.Frame
	Truth      *vehicle.Truth
	Made       int // tboxd's attestations_made at its stop
	Depth      int // outbox_depth at its stop
	VsimExit   int
	TboxdExit  int
	VsimLines  []string
	Warnings   []string // tboxd's WARN and ERROR lines
}

// parse reads the markers and tboxd's log lines; what is missing becomes a
// problem of the report.
func (g *guest) parse(rep *Report) {
	gf := &guestFacts{Made: -1, Depth: -1, VsimExit: -1, TboxdExit: -1}
	rep.Guest = gf
	for _, l := range g.consoleLines() {
		switch {
		case strings.HasPrefix(l, "time="):
			kv := logfmt(l)
			switch kv["msg"] {
			case "tboxd started":
				if t, err := time.Parse(time.RFC3339Nano, kv["time"]); err == nil {
					gf.Epoch = t
				}
			case "tboxd stopped":
				gf.Made, _ = strconv.Atoi(kv["attestations_made"])
				gf.Depth, _ = strconv.Atoi(kv["outbox_depth"])
			}
			if kv["level"] == "WARN" || kv["level"] == "ERROR" {
				gf.Warnings = append(gf.Warnings, l)
			}
		case strings.HasPrefix(l, "vsim:"):
			gf.VsimLines = append(gf.VsimLines, l)
		case strings.HasPrefix(l, "DEMO-VSIM-EXIT "):
			gf.VsimExit, _ = strconv.Atoi(strings.TrimPrefix(l, "DEMO-VSIM-EXIT "))
		case strings.HasPrefix(l, "DEMO-TBOXD-EXIT "):
			gf.TboxdExit, _ = strconv.Atoi(strings.TrimPrefix(l, "DEMO-TBOXD-EXIT "))
		case strings.HasPrefix(l, "DEMO-FIRST-FRAME "):
			r := can.NewReader(strings.NewReader(strings.TrimPrefix(l, "DEMO-FIRST-FRAME ") + "\n"))
			if r.Receive() {
				fr := *r.Frame()
				gf.FirstFrame = &fr
			}
		case strings.HasPrefix(l, "DEMO-TRUTH "):
			var t vehicle.Truth
			if err := json.Unmarshal([]byte(strings.TrimPrefix(l, "DEMO-TRUTH ")), &t); err == nil {
				gf.Truth = &t
			} else {
				rep.problem("vsim's truth JSON from the guest: %v", err)
			}
		}
	}
	if gf.Epoch.IsZero() {
		rep.problem(`guest: no "tboxd started" line`)
	}
	if gf.FirstFrame == nil {
		rep.problem("guest: candump saw no frame on vcan0")
	}
	if gf.Truth == nil {
		rep.problem("guest: no truth from vsim")
	}
	if gf.VsimExit != 0 {
		rep.problem("guest: vsim exited with status %d", gf.VsimExit)
	}
	if gf.TboxdExit != 0 {
		rep.problem("guest: tboxd exited with status %d", gf.TboxdExit)
	}
	if gf.Depth != 0 {
		rep.problem("guest: tboxd stopped with %d attestations not acked in its outbox", gf.Depth)
	}
}
