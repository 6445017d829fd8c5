package shell

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var challengeRE = regexp.MustCompile(`challenge ([0-9a-f]{114})\r\n`)

// TestCommands runs every read-only command over a real pty opened with
// go.bug.st/serial, as a technician's terminal would.
func TestCommands(t *testing.T) {
	r := newRig(t)
	r.agent.mu.Lock()
	r.agent.nack = "seq gap\x1b[2J\x1b]0;owned\x07\nservice   unlocked"
	r.agent.mu.Unlock()
	dev := r.key.Address().String()
	for _, tc := range []struct {
		line  string
		want  []string
		never []string
	}{
		{line: "help", want: []string{"status", "att show SEQ", "unlock [RESPONSE]", "Service mode (after unlock):", "upload now", "reopen can [BUS]", "outbox retry-nacked"}},
		{line: "help att", want: []string{"att last", "att show SEQ"}},
		{line: "help reconnect", want: []string{"reconnect: drop and re-establish the MQTT connection (service mode)"}},
		{line: "help frob", want: []string{`no command "frob"`}},
		{line: "status", want: []string{
			"version   v-test", "uptime ", "clock ", "trusted",
			"can0: up, frames ", "dropped 3, error frames 2, bus-off 1, error-passive 1",
			"can1: down (reopening)", "reopens 4",
			"engine    frames ", "source errors 0",
			"invalid   no reading from odometer frames: 6 named by the value table (SNA, Init...), 1 undecodable; speed: 0 named, 2 undecodable",
			"open span from batch 2811234 over 1 batches: 4321 m [GAP]",
			"outbox    depth 3, oldest pending 25m0s ago, head 5, acked through 2, 1200 of 67108864 bytes",
			`last seq 5 1m0s ago: seq gap\x1b[2J\x1b]0;owned\x07\nservice   unlocked`,
			"uplink    NOT connected, last ack 2, reconnects 7",
			"connection refused", "service   locked",
		}, never: []string{"\x1b", "\x07", "\r\nservice   unlocked"}},
		{line: "STATUS", want: []string{"version   v-test"}},
		{line: "att last", want: []string{`"seq":5,`, `"device":"` + dev + `"`, "seq 5, made 2023-11-14T", `refused 2 times, last reason: bad batch\x1b[2J`}, never: []string{"\x1b"}},
		{line: "att show 3", want: []string{`{"v":1,"device":"` + dev + `","seq":3,`, `"sig":"0x`, "not receipted yet"}},
		{line: "att show 1", want: []string{"seq 1: receipted by the collector and removed from the outbox"}},
		{line: "att show 9", want: []string{"seq 9: not made yet (the last is 5)"}},
		{line: "att show x", want: []string{`att show: want a seq (1, 2, 3, ...), found "x"`}},
		{line: "att show", want: []string{"usage: att show SEQ"}},
		{line: "att", want: []string{"att: want one of: att last, att show SEQ"}},
		{line: "id", want: []string{dev}},
		{line: "config", want: []string{"[shell]", "device = \"/dev/pts/", "REDACTED"}},
		{line: "profile", want: []string{"odometer CLU_Odometer.Odometer"}},
		{line: "selftest", want: []string{
			"PASS key     signs as " + dev, "PASS outbox  head 5 verifies",
			"PASS CAN     can0 is up", "FAIL CAN     can1 is down (reopening)", "PASS clock   trusted",
			"WARN uplink  not connected: dial tcp", "selftest: 1 failed, 1 warnings",
		}},
		{line: "log", want: []string{"msg=\"tboxd started\" version=test"}},
		{line: "log 1", want: []string{"msg="}},
		{line: "log 0", want: []string{`log: want a number of lines >= 1, found "0"`}},
		{line: "frobnicate now", want: []string{`unknown command "frobnicate": type help`}},
		{line: "upload now", want: []string{"upload now: service mode required: type unlock"}},
		{line: "reopen can", want: []string{"reopen can: service mode required"}},
		{line: "lock", want: []string{"service mode is locked"}},
		{line: "exit", want: []string{"bye"}},
		{line: "   ", want: nil},
	} {
		out, prompt := r.term.cmd(tc.line)
		if prompt != "tbox> " {
			t.Errorf("%q: prompt %q, want the locked prompt", tc.line, prompt)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%q: output lacks %q:\n%s", tc.line, w, out)
			}
		}
		for _, n := range tc.never {
			if strings.Contains(out, n) {
				t.Errorf("%q: output holds %q:\n%q", tc.line, n, out)
			}
		}
		if tc.want == nil && out != "" {
			t.Errorf("%q: output %q, want none", tc.line, out)
		}
	}
	if n := r.calls.upload.Load() + r.calls.reopen.Load(); n != 0 {
		t.Errorf("%d service actions ran without service mode", n)
	}
}

func TestServiceMode(t *testing.T) {
	r := newRig(t)
	if out, _ := r.term.cmd("upload now"); !strings.Contains(out, "service mode required") {
		t.Fatalf("upload now while locked: %q", out)
	}

	c := r.challenge(t)
	sig, _ := SignUnlock(r.service, c)
	out, prompt := r.term.cmd("unlock " + sig.String())
	if !strings.Contains(out, "service mode unlocked for 10m0s") || prompt != "tbox# " {
		t.Fatalf("a good response: %q, prompt %q", out, prompt)
	}
	for _, tc := range []struct{ line, want string }{
		{"upload now", "upload: uplink woken"},
		{"upload", "upload: uplink woken"},
		{"reconnect", "reconnect: requested"},
		{"reopen can can1", "reopen can: done"},
		{"outbox retry-nacked", "outbox retry-nacked: uplink offline"},
		{"flush", "flush: done"},
		{"status", "service   unlocked, 10m0s left"},
	} {
		if out, prompt := r.term.cmd(tc.line); !strings.Contains(out, tc.want) || prompt != "tbox# " {
			t.Errorf("%q in service mode: %q (prompt %q), want %q", tc.line, out, prompt, tc.want)
		}
	}
	if r.calls.upload.Load() != 2 || r.calls.reconnect.Load() != 1 || r.calls.reopen.Load() != 1 || r.calls.retry.Load() != 1 || r.calls.flush.Load() != 1 {
		t.Errorf("service actions run: upload %d reconnect %d reopen %d retry %d flush %d",
			r.calls.upload.Load(), r.calls.reconnect.Load(), r.calls.reopen.Load(), r.calls.retry.Load(), r.calls.flush.Load())
	}
	if bus, _ := r.reopen.Load().(string); bus != "can1" {
		t.Errorf("reopen can can1 reopened %q", bus)
	}

	// A challenge is answered once: the same response again finds none.
	if out, _ := r.term.cmd("unlock " + sig.String()); !strings.Contains(out, "no challenge pending") {
		t.Errorf("the same response twice: %q", out)
	}
	if out, prompt := r.term.cmd("lock"); !strings.Contains(out, "service mode locked (lock)") || prompt != "tbox> " {
		t.Errorf("lock: %q, prompt %q", out, prompt)
	}

	// Replay: an old response against a new challenge.
	r.challenge(t)
	if out, prompt := r.term.cmd("unlock " + sig.String()); !strings.Contains(out, "unlock refused: response not signed by the service key") || prompt != "tbox> " {
		t.Errorf("a replayed response: %q, prompt %q", out, prompt)
	}
	// The wrong key: the device's own.
	if out, _ := r.respond(t, r.key, r.challenge(t)); !strings.Contains(out, "unlock refused: response not signed by the service key") {
		t.Errorf("a response from the wrong key: %q", out)
	}
	// A mangled paste keeps the challenge; the good answer then works.
	c = r.challenge(t)
	if out, _ := r.term.cmd("unlock 0x1234"); !strings.Contains(out, "bad unlock response: want 130 hex digits") {
		t.Errorf("a truncated response: %q", out)
	}
	// An expired challenge.
	r.clock.Advance(DefaultChallengeTTL + time.Second)
	if out, prompt := r.respond(t, r.service, c); !strings.Contains(out, "unlock refused: challenge expired") || prompt != "tbox> " {
		t.Errorf("a response after the challenge expired: %q, prompt %q", out, prompt)
	}

	// The unlock expires after its TTL.
	if out, prompt := r.respond(t, r.service, r.challenge(t)); !strings.Contains(out, "unlocked") || prompt != "tbox# " {
		t.Fatalf("unlock after two failures: %q", out)
	}
	r.clock.Advance(DefaultUnlockTTL + time.Second)
	before := r.calls.upload.Load()
	out, prompt = r.term.cmd("upload now")
	if !strings.Contains(out, "service mode expired") || !strings.Contains(out, "service mode required") || prompt != "tbox> " {
		t.Errorf("upload now after the unlock expired: %q, prompt %q", out, prompt)
	}
	if r.calls.upload.Load() != before {
		t.Error("a service action ran after the unlock expired")
	}
	// An unlock does not survive the end of the session.
	r.respond(t, r.service, r.challenge(t))
	if out, prompt := r.term.cmd("exit"); !strings.Contains(out, "service mode locked (exit)") || prompt != "tbox> " {
		t.Errorf("exit in service mode: %q, prompt %q", out, prompt)
	}
}

func TestUnlockRateLimit(t *testing.T) {
	r := newRig(t)
	wrong := func() string {
		t.Helper()
		out, _ := r.respond(t, r.key, r.challenge(t))
		return out
	}
	for i := 1; i <= 2; i++ {
		if out := wrong(); !strings.Contains(out, "unlock refused") || strings.Contains(out, "locked out") {
			t.Fatalf("failure %d: %q", i, out)
		}
	}
	if out := wrong(); !strings.Contains(out, "unlock locked out for 10s") {
		t.Fatalf("third failure: %q, want a 10 s lockout", out)
	}
	// Locked out: no challenge, not even after exit (a new session).
	r.term.cmd("exit")
	out, _ := r.term.cmd("unlock")
	if !strings.Contains(out, "unlock locked out for 10s after 3 failed attempts") || challengeRE.MatchString(out) {
		t.Fatalf("unlock during the lockout: %q", out)
	}
	if out, _ := r.term.cmd("status"); !strings.Contains(out, "service   locked (unlock locked out") {
		t.Errorf("status during the lockout: %q", out)
	}
	r.clock.Advance(10 * time.Second)
	if out := wrong(); !strings.Contains(out, "unlock locked out for 20s") {
		t.Fatalf("fourth failure: %q, want the lockout doubled to 20 s", out)
	}
	r.clock.Advance(19 * time.Second)
	if out, _ := r.term.cmd("unlock"); !strings.Contains(out, "locked out for 1s") {
		t.Fatalf("unlock 1 s before the end of the lockout: %q", out)
	}
	r.clock.Advance(time.Second)
	if out, prompt := r.respond(t, r.service, r.challenge(t)); !strings.Contains(out, "service mode unlocked") || prompt != "tbox# " {
		t.Fatalf("a good response after the lockout: %q", out)
	}
	r.term.cmd("lock")
	// A success resets the count.
	if out := wrong(); strings.Contains(out, "locked out") {
		t.Errorf("the first failure after a success: %q", out)
	}
}

// TestGarbage sends what a noisy or hostile line can carry: random bytes,
// a 1 MiB line, NULs and escape sequences. The session survives, a later
// status works, and the agent beside it is never held up.
func TestGarbage(t *testing.T) {
	r := newRig(t)
	ticks0, statuses0 := r.agent.ticks.Load(), r.agent.statuses.Load()
	rnd := rand.New(rand.NewPCG(1, 2))
	junk := make([]byte, 256<<10)
	for i := range junk {
		junk[i] = byte(rnd.Uint32())
	}
	start := time.Now()
	r.term.send(string(junk))
	r.term.send("\x03" + strings.Repeat("A", 1<<20) + "\r")
	r.term.expectText("error: line longer than 256 bytes: ignored")
	r.term.send(strings.Repeat("\x00", 4096) + "\x1b[A\x1b[1;5C\x1bOP\x1b[200~\x1b]0;title\x07\x1b" + "\x03")
	r.term.send("help zz-marker\r")
	r.term.expectText(`no command "zz-marker"`)
	r.term.expect(promptRE)
	elapsed := time.Since(start)

	out, prompt := r.term.cmd("status")
	if !strings.Contains(out, "version   v-test") || prompt != "tbox> " {
		t.Fatalf("status after the garbage: %q, prompt %q", out, prompt)
	}
	if out, _ := r.term.cmd("id"); out != r.key.Address().String() {
		t.Errorf("id after the garbage: %q", out)
	}
	ticks := r.agent.ticks.Load() - ticks0
	if gap := time.Duration(r.agent.maxGap.Load()); gap > time.Second {
		t.Errorf("the agent stalled for %s while the shell took garbage", gap)
	}
	if want := uint64(elapsed / (10 * time.Millisecond)); ticks < want {
		t.Errorf("the agent made %d steps in %s, want at least %d", ticks, elapsed, want)
	}
	if r.agent.statuses.Load() <= statuses0 {
		t.Error("status never asked the agent")
	}
	t.Logf("garbage took %s; the agent made %d steps, longest stall %s", elapsed.Round(time.Millisecond), ticks, time.Duration(r.agent.maxGap.Load()))
}

func TestIdleTimeout(t *testing.T) {
	r := newRig(t, func(c *Config, _ *Deps) { c.IdleTimeout = 300 * time.Millisecond })
	r.respond(t, r.service, r.challenge(t))
	r.term.send("upl")
	got := r.term.expect(regexp.MustCompile(`session reset\]\r\ntbox> `))
	if !strings.Contains(got, "service mode locked (idle)") {
		t.Errorf("idle timeout in service mode: %q", got)
	}
	// The half-typed line is gone.
	if out, _ := r.term.cmd("oad now"); !strings.Contains(out, `unknown command "oad"`) {
		t.Errorf("input after the idle reset: %q", out)
	}
}

// TestReopen unplugs the serial adapter: the device disappears while the
// shell is reading it, and comes back as another device node. The shell
// serves the new one.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "ttyUSB0")
	var second string
	r := newRig(t, func(c *Config, _ *Deps) {
		if err := os.Symlink(c.Device, link); err != nil {
			t.Fatal(err)
		}
		c.Device = link
	})
	if out, _ := r.term.cmd("id"); out != r.key.Address().String() {
		t.Fatalf("id: %q", out)
	}
	master2, slave2 := openPTY(t)
	second = slave2
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(second, link); err != nil {
		t.Fatal(err)
	}
	r.term.f.Close() // unplug: the shell's next read fails
	term2 := newTerm(t, master2)
	term2.expect(promptRE)
	if out, _ := term2.cmd("id"); out != r.key.Address().String() {
		t.Errorf("id on the new port: %q", out)
	}
	select {
	case err := <-r.runDone:
		t.Fatalf("Run returned %v when the port vanished", err)
	default:
	}
}

// TestStalledTerminal: a peer that never reads does not stop the session
// from reading and answering, and Serve still ends with its context.
func TestStalledTerminal(t *testing.T) {
	a := startAgent(t)
	sh, err := New(Config{}, Deps{Status: a.status})
	if err != nil {
		t.Fatal(err)
	}
	shellEnd, peer := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sh.Serve(ctx, shellEnd) }()
	for range 200 { // about 200 KiB of output that nobody reads
		if _, err := peer.Write([]byte("status\r")); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(expectTimeout)
	for a.statuses.Load() < 199 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := a.statuses.Load(); n < 199 {
		t.Errorf("the session answered %d of 200 status commands while its output was stalled", n)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Serve returned %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	peer.Close()
	shellEnd.Close()
}

// script is a byte stream that reads in and then ends, and keeps what is
// written.
type script struct {
	in  io.Reader
	out bytes.Buffer
}

func (s *script) Read(p []byte) (int, error)  { return s.in.Read(p) }
func (s *script) Write(p []byte) (int, error) { return s.out.Write(p) }

func TestServeEOF(t *testing.T) {
	sh, err := New(Config{}, Deps{Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	rw := &script{in: strings.NewReader("id\r\nstatus\r\nunlock\r\n")}
	if err := sh.Serve(context.Background(), rw); err != nil {
		t.Fatalf("Serve at the end of its input: %v, want nil", err)
	}
	out := rw.out.String()
	for _, w := range []string{"status: not available", "unlock: service mode not configured: set shell.service_pubkey", "0x0000000000000000000000000000000000000000"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

func TestPortMissing(t *testing.T) {
	sh, _ := New(Config{Device: filepath.Join(t.TempDir(), "ttyS9"), ReopenMin: time.Millisecond, ReopenMax: 5 * time.Millisecond}, Deps{})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := sh.Run(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run on a missing device: %v, want it to retry until its context ends", err)
	}
	sh, _ = New(Config{}, Deps{})
	if err := sh.Run(context.Background()); !errors.Is(err, ErrNoDevice) {
		t.Errorf("Run without a device: %v, want ErrNoDevice", err)
	}
}
