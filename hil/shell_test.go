package hil

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/csop/tbox/agent/shell"
	"github.com/csop/tbox/signer"
)

// serialTerm is a technician's terminal on the guest's diagnostic shell:
// the host's end of the virtio console (Options.Serial).
type serialTerm struct {
	t   *testing.T
	c   net.Conn
	buf []byte
	log strings.Builder // the whole session, for the test log
}

var reShellPrompt = regexp.MustCompile(`tbox[>#] $`)

// until reads until the output so far matches re and returns it, without
// carriage returns.
func (s *serialTerm) until(re *regexp.Regexp, timeout time.Duration) (string, error) {
	s.c.SetReadDeadline(time.Now().Add(timeout))
	b := make([]byte, 4096)
	for !re.Match(s.buf) {
		n, err := s.c.Read(b)
		s.buf = append(s.buf, b[:n]...)
		s.log.Write(b[:n])
		if err != nil {
			return "", fmt.Errorf("reading the serial port (so far %q): %w", s.buf, err)
		}
	}
	out := strings.ReplaceAll(string(s.buf), "\r", "")
	s.buf = s.buf[:0]
	return out, nil
}

// run types a command line and returns its output, without the echo and
// the next prompt.
func (s *serialTerm) run(line string) string {
	s.t.Helper()
	if _, err := s.c.Write([]byte(line + "\r")); err != nil {
		s.t.Fatalf("%s: %v", line, err)
	}
	out, err := s.until(reShellPrompt, 20*time.Second)
	if err != nil {
		s.t.Fatalf("%s: %v", line, err)
	}
	out = reShellPrompt.ReplaceAllString(out, "")
	return strings.TrimPrefix(out, line+"\n")
}

// poll runs line every half second until ok accepts its output.
func (s *serialTerm) poll(line string, timeout time.Duration, ok func(string) bool) (string, bool) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out := s.run(line)
		if ok(out) {
			return out, true
		}
		if time.Now().After(deadline) {
			return out, false
		}
		time.Sleep(500 * time.Millisecond)
	}
}

var (
	reEngineFrames = regexp.MustCompile(`(?m)^engine +frames (\d+),`)
	reBusLine      = regexp.MustCompile(`(?m)^CAN +vcan0: (\S+), frames (\d+), dropped \d+, error frames \d+, bus-off \d+, error-passive \d+, reopens (\d+)$`)
	reOutboxLine   = regexp.MustCompile(`(?m)^outbox +depth (\d+), .*head (\d+),`)
)

// number returns the n-th submatch of re in s as an integer, -1 if absent.
func number(re *regexp.Regexp, s string, n int) int64 {
	m := re.FindStringSubmatch(s)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseInt(m[n], 10, 64)
	if err != nil {
		return -1
	}
	return v
}

// TestShellOverSerial is a technician's session with the ARM tboxd in the
// emulated T-Box, over the qemu serial port /dev/hvc0 driven from the
// host, while the ARM vsim drives on vcan0: the read-only commands, an
// attestation checked on the host, the selftest, the challenge-response
// unlock with a service key made on the host, and the service actions,
// among them a forced reopen of the CAN socket after which frames still
// arrive.
func TestShellOverSerial(t *testing.T) {
	k := prepare(t)
	ctx := context.Background()
	dir := t.TempDir()
	const chainID = 20220807
	tomlPath, dbcPath, err := evProfile()
	if err != nil {
		t.Fatal(err)
	}
	tboxd, vsim := filepath.Join(dir, "tboxd"), filepath.Join(dir, "vsim")
	for pkg, out := range map[string]string{"./cmd/tboxd": tboxd, "./cmd/vsim": vsim} {
		if err := CrossBuild(ctx, pkg, out); err != nil {
			t.Fatal(err)
		}
	}
	keyPath, servicePath := filepath.Join(dir, "device.key"), filepath.Join(dir, "service.key")
	for _, p := range []string{keyPath, servicePath} {
		if _, err := signer.GenerateKeyFile(p); err != nil {
			t.Fatal(err)
		}
	}
	key, err := signer.LoadKeyFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	service, err := signer.LoadKeyFile(servicePath) // stays on the host
	if err != nil {
		t.Fatal(err)
	}
	// time_scale 60 with vsim --pace 60: a batch every 10 s of wall time,
	// at the drive's own speeds.
	conf := fmt.Sprintf(`profile   = "ev.toml"
key       = "device.key"
state_dir = "/tmp/tbox"
chain_id  = %d
shutdown_grace = "1s"

[can]
interface      = "vcan0"
receive_buffer = 8388608
time_scale     = 60

[shell]
device         = %q
service_pubkey = %q
`, chainID, SerialPort, service.Address())
	confPath := filepath.Join(dir, "tboxd.toml")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// The session's last command, flush, appears in tboxd's log: the
	// guest then stops the drive and tboxd.
	script := `
mkfifo /tmp/tboxd.fifo
tee /tmp/tboxd.log < /tmp/tboxd.fifo &
tboxd --config /etc/tbox/tboxd.toml > /tmp/tboxd.fifo 2>&1 &
tpid=$!
n=0
until grep -q 'msg="tboxd started"' /tmp/tboxd.log 2>/dev/null; do
	if ! kill -0 $tpid 2>/dev/null; then wait $tpid; echo "HIL-SHELL-ERROR tboxd exited with status $?"; exit 91; fi
	n=$((n+1)); if [ $n -gt 300 ]; then echo "HIL-SHELL-ERROR tboxd not started after 30 s"; exit 92; fi
	sleep 0.1
done
vsim --profile /etc/tbox/ev.toml --iface vcan0 --pace 60 --duration 60m --seed 1 --parking=false --noise 0 &
vpid=$!
n=0
until grep -q 'cmd=flush' /tmp/tboxd.log; do
	n=$((n+1)); if [ $n -gt 1500 ]; then echo "HIL-SHELL-ERROR the session did not end within 150 s"; break; fi
	sleep 0.1
done
kill $vpid 2>/dev/null
wait $vpid
kill -TERM $tpid
wait $tpid
echo "HIL-SHELL-TBOXD-EXIT $?"
`
	sock := filepath.Join(dir, "diag.sock")
	start := time.Now()
	r, err := k.Start(ctx, Options{
		Files: map[string]string{
			"/bin/tboxd": tboxd, "/bin/vsim": vsim,
			"/etc/tbox/tboxd.toml": confPath, "/etc/tbox/device.key": keyPath,
			"/etc/tbox/ev.toml": tomlPath, "/etc/tbox/ev.dbc": dbcPath,
		},
		Script:  script,
		Serial:  sock,
		Timeout: 4 * time.Minute,
		Console: &logWriter{t: t, prefix: "guest: "},
	})
	if err != nil {
		t.Fatal(err)
	}
	finished := false
	defer func() {
		if !finished {
			r.Kill()
			r.Wait()
		}
	}()
	// qemu creates the socket as it starts; connect before the guest boots
	// so that nothing the shell writes is lost.
	var c net.Conn
	for range 100 {
		if c, err = net.Dial("unix", sock); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("serial socket: %v", err)
	}
	defer c.Close()
	term := &serialTerm{t: t, c: c}
	defer func() { t.Logf("the session on %s:\n%s", SerialPort, strings.ReplaceAll(term.log.String(), "\r", "")) }()

	banner, err := term.until(reShellPrompt, 2*time.Minute)
	if err != nil {
		t.Fatalf("no shell banner: %v", err)
	}
	session := time.Now()
	device := key.Address().String()
	if !strings.Contains(banner, "CSOP T-Box diagnostic shell") || !strings.Contains(banner, device) {
		t.Fatalf("banner %q, want the shell's with the device %s", banner, device)
	}

	if out := term.run("help"); !strings.Contains(out, "Commands:") || !strings.Contains(out, "reopen can [BUS]") {
		t.Errorf("help: %q", out)
	}
	if out := strings.TrimSpace(term.run("id")); out != device {
		t.Errorf("id = %q, want the device key's address %s", out, device)
	}
	status, ok := term.poll("status", 30*time.Second, func(s string) bool { return number(reEngineFrames, s, 1) > 0 })
	if !ok {
		t.Fatalf("status shows no frame after 30 s of driving:\n%s", status)
	}
	if number(reOutboxLine, status, 1) < 0 || number(reBusLine, status, 2) <= 0 {
		t.Errorf("status lacks the outbox depth or vcan0's frames:\n%s", status)
	}
	if m := reBusLine.FindStringSubmatch(status); m == nil || m[1] != "up" {
		t.Errorf("status: vcan0 not up:\n%s", status)
	}

	// The first attestation: within a batch (10 s here) of the drive's start.
	last, ok := term.poll("att last", 45*time.Second, func(s string) bool { return strings.HasPrefix(s, `{"v":1`) })
	if !ok {
		t.Fatalf("att last: no attestation after 45 s:\n%s", last)
	}
	wire, info, _ := strings.Cut(last, "\n")
	a, err := signer.ParseWire([]byte(wire))
	if err != nil {
		t.Fatalf("att last: %v\n%s", err, wire)
	}
	if err := signer.Verify(chainID, a); err != nil {
		t.Errorf("att last seq %d does not verify on the host: %v", a.Seq, err)
	}
	if a.Device != key.Address() || a.Meters == 0 {
		t.Errorf("att last: device %s, %d m; want %s and distance", a.Device, a.Meters, device)
	}
	if want := fmt.Sprintf("seq %d, made ", a.Seq); !strings.HasPrefix(info, want) || !strings.Contains(info, fmt.Sprintf("digest 0x%x", signer.Digest(chainID, a))) {
		t.Errorf("att last info %q, want %q... and the digest", info, want)
	}
	t.Logf("att last: seq %d, batch %d, %d m, modes %v, flags %v", a.Seq, a.Batch, a.Meters, a.Modes, signer.FlagNames(a.Flags))
	status = term.run("status")
	if depth, head := number(reOutboxLine, status, 1), number(reOutboxLine, status, 2); depth < 1 || head < int64(a.Seq) {
		t.Errorf("status after seq %d: outbox depth %d, head %d; want the attestations kept (no broker):\n%s", a.Seq, depth, head, status)
	}

	selftest := term.run("selftest")
	for _, want := range []string{"PASS key", "verifies", "PASS CAN     vcan0 is up", "selftest: 0 failed"} {
		if !strings.Contains(selftest, want) {
			t.Errorf("selftest lacks %q:\n%s", want, selftest)
		}
	}

	// Service mode: locked first, then the challenge signed on the host.
	if out := term.run("reopen can"); !strings.Contains(out, "service mode required") {
		t.Errorf("reopen can while locked: %q", out)
	}
	m := regexp.MustCompile(`challenge ([0-9a-f]{114})`).FindStringSubmatch(term.run("unlock"))
	if m == nil {
		t.Fatal("unlock printed no challenge")
	}
	chal, err := shell.ParseChallenge(m[1])
	if err != nil {
		t.Fatal(err)
	}
	if chal.Device != key.Address() {
		t.Errorf("challenge for %s, want the device %s", chal.Device, device)
	}
	wrong, err := shell.SignUnlock(key, chal) // not the service key

	if err != nil {
		t.Fatal(err)
	}
	if out := term.run("unlock " + hex.EncodeToString(wrong[:])); !strings.Contains(out, "unlock refused") {
		t.Errorf("unlock with the device key's signature: %q, want refused", out)
	}
	m = regexp.MustCompile(`challenge ([0-9a-f]{114})`).FindStringSubmatch(term.run("unlock"))
	if m == nil {
		t.Fatal("unlock printed no challenge")
	}
	if chal, err = shell.ParseChallenge(m[1]); err != nil {
		t.Fatal(err)
	}
	sig, err := shell.SignUnlock(service, chal)
	if err != nil {
		t.Fatal(err)
	}
	if out := term.run("unlock " + hex.EncodeToString(sig[:])); !strings.Contains(out, "service mode unlocked") {
		t.Fatalf("unlock with the service key: %q", out)
	}

	if out := term.run("upload now"); !strings.Contains(out, "upload: not available") {
		t.Errorf("upload now without a broker: %q", out)
	}
	if out := term.run("reopen can can9"); !strings.Contains(out, "no such bus") || !strings.Contains(out, "vcan0") {
		t.Errorf("reopen can can9: %q, want no such bus, naming vcan0", out)
	}
	before := number(reBusLine, term.run("status"), 2)
	if out := term.run("reopen can"); !strings.Contains(out, "reopen can: done") {
		t.Fatalf("reopen can: %q", out)
	}
	status, ok = term.poll("status", 20*time.Second, func(s string) bool {
		return number(reBusLine, s, 3) == 1 && number(reBusLine, s, 2) > before+20
	})
	if !ok {
		t.Errorf("status after reopen can: want vcan0 up, 1 reopen and frames beyond %d:\n%s", before, status)
	} else if m := reBusLine.FindStringSubmatch(status); m[1] != "up" {
		t.Errorf("vcan0 %s after the reopen, want up", m[1])
	}
	if out := term.run("flush"); !strings.Contains(out, "flush: done") {
		t.Errorf("flush: %q", out)
	}
	sessionTime := time.Since(session)

	res, err := r.Wait()
	finished = true
	if err != nil {
		t.Fatalf("guest: %v", err)
	}
	if !strings.Contains(res.Console, "HIL-SHELL-TBOXD-EXIT 0") {
		t.Error("tboxd did not exit 0 after SIGTERM")
	}
	if !strings.Contains(res.Console, "CAN socket reopened on request") {
		t.Error("tboxd's log lacks the reopen")
	}
	t.Logf("session of %v over %s; guest ready in %v, whole test %v", sessionTime.Round(time.Millisecond), SerialPort,
		res.BootTime.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}
