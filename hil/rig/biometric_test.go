package rig

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/csop/tbox/agent/shell"
	"github.com/csop/tbox/can"
	"github.com/csop/tbox/hil"
	"github.com/csop/tbox/hil/vehicle"
	"github.com/csop/tbox/signer"
)

// TestBiometricInjection is scenario 4: throughout a drive, vsim
// --biometric sends the profile's four biometric messages (face,
// voice command, fingerprint, 0x5A1) at 10 Hz each with
// vehicle.BiometricMarker as payload, onto the vcan0 tboxd reads, while a
// technician's session runs the read-only commands (status, log, att
// last, profile, config) over the guest's serial port, twice: during the
// drive and after it, then unlocks service mode and flushes.
//
// The marker, in every encoding it could leak in (MarkerForms: raw bytes,
// hex in either case, spaced hex, base64 and base64url at each alignment),
// must appear nowhere: not in the collector's bbolt file, the MQTT capture
// (file and payloads), the agent's files (every file of its state_dir on
// the virtio disk, read with debugfs after power-off, and the whole disk
// image), its logs (the guest's console, which carries tboxd's log), or
// the shell session. candump in the guest counts the biometric frames on
// vcan0, so the test knows they were there to leak.
func TestBiometricInjection(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	t0 := time.Now()
	broker, err := r.StartBroker(ctx)
	if err != nil {
		t.Fatal(err)
	}
	capt, err := r.CaptureMQTT(broker, "mqtt.jsonl", nil)
	if err != nil {
		t.Fatal(err)
	}
	coll, err := r.StartCollector(ctx, broker, CollectorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	disk := r.Path("disk.img")
	if err := hil.MakeDisk(disk, 64); err != nil {
		t.Fatal(err)
	}
	servicePath := r.Path("service.key")
	if _, err := signer.GenerateKeyFile(servicePath); err != nil {
		t.Fatal(err)
	}
	service, err := signer.LoadKeyFile(servicePath) // stays on the host
	if err != nil {
		t.Fatal(err)
	}

	const pace = 60
	clock := time.Now().Add(-time.Hour - 30*time.Minute).Truncate(time.Second)
	drive := Drive{Seed: 21, Start: clock.Add(5 * time.Minute).Truncate(time.Minute), Duration: 40 * time.Minute, Pace: pace,
		NoParking: true, OdometerHz: 5, SpeedHz: 5, ModeHz: 1, Biometric: true}
	var filters []string
	for _, k := range r.Profile.BiometricKeys() {
		if k.Extended {
			filters = append(filters, fmt.Sprintf("%08X:1FFFFFFF", k.ID))
		} else {
			filters = append(filters, fmt.Sprintf("%03X:7FF", k.ID))
		}
	}
	if len(filters) == 0 {
		t.Fatal("the profile names no biometric message")
	}
	// The session's last command, flush, is logged by tboxd: the guest
	// then stops tboxd.
	script := ScriptClockSync + ScriptStartTboxd + `candump -r 16777216 -L vcan0,` + strings.Join(filters, ",") + ` > /tmp/bio.log &
bpid=$!
sleep 1
` + drive.Script() + `n=0
until grep -q 'cmd=flush' /tmp/tboxd.log; do
	n=$((n+1)); if [ $n -gt 1200 ]; then echo "RIG-ERROR the session did not end within 120 s"; break; fi
	sleep 0.1
done
kill $bpid
wait $bpid
echo "RIG-BIOMETRIC-FRAMES $(wc -l < /tmp/bio.log)"
` + ScriptStopTboxd + "wait\n"
	sock := r.Path("diag.sock")
	g, err := r.Boot(ctx, GuestOptions{
		Script: script,
		Tboxd: &Tboxd{StateDir: hil.DataDir + "/tbox", TimeScale: pace, Upload: true, Shell: true,
			ServiceKey: service.Address().String()},
		Broker: broker, Disk: disk, Serial: sock, Clock: clock, Timeout: drive.Wall() + 4*time.Minute,
		OnLine: lineLogger(t, "guest: ", func(l string) bool { return interesting(l) && !strings.HasPrefix(l, "[") }),
	})
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan struct{})
	var werr error
	var res *hil.Result
	go func() { res, werr = g.Wait(); close(ended) }()
	defer func() {
		g.Kill()
		<-ended
	}()
	term, err := DialSerial(sock, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()

	// The technician's session.
	banner, err := term.Until(Prompt, 2*time.Minute)
	if err != nil {
		t.Fatalf("no shell banner: %v", err)
	}
	if !strings.Contains(banner, r.Device.String()) {
		t.Errorf("banner %q lacks the device %s", banner, r.Device)
	}
	isAttested := func(l string) bool { return strings.HasPrefix(l, "time=") && LogFields(l)["msg"] == "attested" }
	wctx, cancel := context.WithTimeout(ctx, drive.Wall()+time.Minute)
	_, err = g.WaitLine(wctx, 0, 1, isAttested)
	cancel()
	if err != nil {
		t.Fatalf("no attestation during the drive: %v", err)
	}
	readOnly := []string{"status", "log 200", "att last", "profile", "config"}
	outputs := map[string]string{}
	run := func(cmd string) string {
		out, err := term.Run(cmd)
		if err != nil {
			t.Fatalf("shell: %v", err)
		}
		outputs[cmd] += out
		return out
	}
	for _, c := range readOnly {
		run(c)
	}
	wctx, cancel = context.WithTimeout(ctx, drive.Wall()+time.Minute)
	_, err = g.WaitLine(wctx, 0, 1, func(l string) bool { return strings.HasPrefix(l, "RIG-VSIM-EXIT ") })
	cancel()
	if err != nil {
		t.Fatalf("the drive did not end: %v", err)
	}
	for _, c := range readOnly {
		run(c)
	}
	m := regexp.MustCompile(`challenge ([0-9a-f]+)`).FindStringSubmatch(run("unlock"))
	if m == nil {
		t.Fatal("unlock printed no challenge")
	}
	chal, err := shell.ParseChallenge(m[1])
	if err != nil {
		t.Fatal(err)
	}
	sig, err := shell.SignUnlock(service, chal)
	if err != nil {
		t.Fatal(err)
	}
	if out := run("unlock " + hex.EncodeToString(sig[:])); !strings.Contains(out, "service mode unlocked") {
		t.Fatalf("unlock with the service key: %q", out)
	}
	if out := run("flush"); !strings.Contains(out, "flush: done") {
		t.Errorf("flush: %q", out)
	}
	<-ended
	if werr != nil {
		t.Fatalf("guest: %v", werr)
	}
	f := ParseConsole(g.Lines())
	if f.VsimExit != 0 || f.TboxdExit != 0 || f.Depth != 0 || len(f.Errors) > 0 {
		t.Errorf("guest: vsim exit %d, tboxd exit %d, outbox depth %d, errors %q; want 0, 0, 0, none", f.VsimExit, f.TboxdExit, f.Depth, f.Errors)
	}
	bio := -1
	for _, l := range g.Lines() {
		if s, ok := strings.CutPrefix(l, "RIG-BIOMETRIC-FRAMES "); ok {
			bio, _ = strconv.Atoi(strings.TrimSpace(s))
		}
	}
	if f.Truth == nil || f.Truth.Frames.Biometric == 0 || bio <= 0 {
		t.Fatalf("biometric frames: vsim sent %v, candump saw %d on vcan0; want some", f.Truth, bio)
	}
	// The kernel filter kept the biometric frames out of tboxd: it
	// received exactly the drive's other frames.
	for _, l := range g.Lines() {
		if kv := LogFields(l); strings.HasPrefix(l, "time=") && kv["msg"] == "tboxd stopped" && kv["frames"] != "" {
			if n, _ := strconv.Atoi(kv["frames"]); n != f.Truth.Frames.Total-f.Truth.Frames.Biometric {
				t.Errorf("tboxd received %d frames; the drive had %d, of which %d biometric: want %d", n, f.Truth.Frames.Total, f.Truth.Frames.Biometric, f.Truth.Frames.Total-f.Truth.Frames.Biometric)
			}
		}
	}
	for _, c := range []string{"status", "att last", "profile", "config"} {
		if strings.TrimSpace(outputs[c]) == "" {
			t.Errorf("shell %s printed nothing", c)
		}
	}

	// The backend settles; then every place the marker could be.
	capt.Wait(ctx, 20*time.Second, func(msgs []Message) bool {
		return f.Made > 0 && Analyze(msgs, r.Device).AckedThrough >= uint64(f.Made)
	})
	if err := coll.Stop(10 * time.Second); err != nil {
		t.Errorf("collector: %v", err)
	}
	capt.Close()
	tr := Analyze(capt.Messages(), r.Device)
	checkDelivery(t, ctx, r, tr)

	forms := MarkerForms([]byte(vehicle.BiometricMarker))
	// The forms do match what vsim put on the bus: a biometric frame of
	// the same drive as candump prints it.
	var control bytes.Buffer
	cw := can.NewWriter(&control)
	var stop = fmt.Errorf("stop")
	drive.Scenario().Frames(r.Profile, func(fr *can.Frame) error {
		for _, k := range r.Profile.BiometricKeys() {
			if fr.ID == k.ID {
				cw.Write(fr)
				cw.Flush()
				return stop
			}
		}
		return nil
	})
	if len(Scan("control", control.Bytes(), forms)) == 0 {
		t.Fatalf("the scan does not find the marker in a biometric frame's candump line %q", control.String())
	}

	type source struct {
		name string
		b    []byte
	}
	var sources []source
	read := func(name, path string) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			return
		}
		sources = append(sources, source{name, b})
	}
	read("the collector's store", r.Path("collector.db"))
	read("the collector's log", r.Path("collector.log"))
	read("the MQTT capture file", capt.Path)
	for i, m := range capt.Messages() {
		sources = append(sources, source{fmt.Sprintf("MQTT message %d on %s", i+1, m.Topic), m.Bytes()})
	}
	sources = append(sources, source{"the guest's console (tboxd's log)", []byte(res.Console)}, source{"the shell session", []byte(term.Session())})
	stateFiles, err := DiskFiles(disk, "/tbox")
	if err != nil {
		t.Fatal(err)
	}
	if len(stateFiles) == 0 {
		t.Fatal("no file in the state_dir on the disk")
	}
	var stateBytes int
	for _, p := range stateFiles {
		b, err := hil.DiskFile(disk, p)
		if err != nil {
			t.Fatal(err)
		}
		stateBytes += len(b)
		sources = append(sources, source{"the agent's file " + p, b})
	}
	read("the whole disk image", disk)
	var total int
	for _, s := range sources {
		total += len(s.b)
		for _, fd := range Scan(s.name, s.b, forms) {
			t.Errorf("the biometric marker leaked: %v", fd)
		}
	}
	t.Logf("biometric injection: vsim sent %d biometric frames (%d seen by candump on vcan0) among %d in %v of driving at %gx; tboxd made %d attestations, %d m (truth %d m); scanned %d sources, %d bytes, for %d forms of %q: %d state files (%d bytes: %s), %d MQTT messages, console %d lines, shell session %d bytes; whole test %v",
		f.Truth.Frames.Biometric, bio, f.Truth.Frames.Total, drive.Duration, float64(pace), f.Made, sumMeters(tr), f.Truth.Meters,
		len(sources), total, len(forms), vehicle.BiometricMarker, len(stateFiles), stateBytes, strings.Join(stateFiles, " "),
		len(capt.Messages()), strings.Count(res.Console, "\n"), len(term.Session()), since(t0))
	if m := sumMeters(tr); m != f.Truth.Meters {
		t.Errorf("attested %d m, vsim's truth %d m", m, f.Truth.Meters)
	}
}

func sumMeters(tr *Traffic) int64 {
	m, _ := tr.Meters()
	return m
}
