package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/csop/tbox/agent"
	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/agent/shell"
	"github.com/csop/tbox/agent/uplink"
	"github.com/csop/tbox/agent/uplink/mqtttest"
	"github.com/csop/tbox/can/cantest"
	"github.com/csop/tbox/can/socketcan"
	"github.com/csop/tbox/signer"
	"github.com/csop/tbox/store"
)

// shellFixture is tboxd's shell adapter over real parts: a device key, the
// sample car's profile and an outbox in a temporary directory, and a
// configuration parsed from TOML as tboxd parses it.
type shellFixture struct {
	dir     string
	cfg     *Config
	key     *signer.FileKey
	service *signer.FileKey // the maker's service key; cfg names its address
	st      *store.Store
	p       *profile.Profile
	parts   *shellParts
}

// shellKey makes and loads a key file.
func shellKey(t *testing.T, path string) *signer.FileKey {
	t.Helper()
	if _, err := signer.GenerateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	k, err := signer.LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newShellFixture parses a configuration of the fixture's files plus
// extra TOML (%[1]s in extra is the service key's address).
func newShellFixture(t *testing.T, extra string) *shellFixture {
	t.Helper()
	f := &shellFixture{dir: t.TempDir()}
	f.key = shellKey(t, filepath.Join(f.dir, "device.key"))
	f.service = shellKey(t, filepath.Join(t.TempDir(), "service.key"))
	prof, err := filepath.Abs("../../agent/profile/testdata/ev.toml")
	if err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("profile = %q\nkey = \"device.key\"\nstate_dir = \"state\"\n", prof) +
		fmt.Sprintf(extra, f.service.Address())
	path := filepath.Join(f.dir, "tboxd.toml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if f.cfg, err = LoadConfig(path); err != nil {
		t.Fatalf("LoadConfig:\n%s\n%v", conf, err)
	}
	if f.p, err = profile.Load(f.cfg.path(f.cfg.Profile)); err != nil {
		t.Fatal(err)
	}
	if f.st, err = store.Open(f.cfg.path(f.cfg.StateDir), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.st.Close() })
	f.parts = &shellParts{Key: f.key, Store: f.st, Profile: f.p, Logs: shell.NewLogRing(10)}
	return f
}

// shell makes the shell service of the fixture's configuration.
func (f *shellFixture) shell(t *testing.T) *shell.Shell {
	t.Helper()
	svc, err := newShell(f.cfg, f.parts)
	if err != nil {
		t.Fatalf("newShell: %v", err)
	}
	sh, ok := svc.(*shell.Shell)
	if !ok {
		t.Fatalf("newShell returned %T, want *shell.Shell", svc)
	}
	return sh
}

// shellTerm is a technician's terminal on one session of a shell.
type shellTerm struct {
	t   *testing.T
	c   net.Conn
	buf []byte
}

var rePrompt = regexp.MustCompile(`tbox[>#] $`)

func openShellTerm(t *testing.T, sh *shell.Shell) *shellTerm {
	t.Helper()
	host, port := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sh.Serve(ctx, port) }()
	t.Cleanup(func() {
		cancel()
		host.Close()
		port.Close()
		<-done
	})
	term := &shellTerm{t: t, c: host}
	term.untilPrompt()
	return term
}

// untilPrompt reads up to the next prompt and returns what came before
// it, without carriage returns.
func (s *shellTerm) untilPrompt() string {
	s.t.Helper()
	s.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, 4096)
	for !rePrompt.Match(s.buf) {
		n, err := s.c.Read(b)
		if err != nil {
			s.t.Fatalf("shell output so far %q: %v", s.buf, err)
		}
		s.buf = append(s.buf, b[:n]...)
	}
	out := strings.ReplaceAll(string(rePrompt.ReplaceAll(s.buf, nil)), "\r", "")
	s.buf = s.buf[:0]
	return out
}

// run types a command line and returns its output (the echo removed).
func (s *shellTerm) run(line string) string {
	s.t.Helper()
	if _, err := s.c.Write([]byte(line + "\r")); err != nil {
		s.t.Fatal(err)
	}
	out := s.untilPrompt()
	return strings.TrimPrefix(out, line+"\n")
}

// unlock enters service mode with the service key, as tboxctl unlock does.
func (s *shellTerm) unlock(service signer.Signer) {
	s.t.Helper()
	m := regexp.MustCompile(`challenge ([0-9a-f]+)`).FindStringSubmatch(s.run("unlock"))
	if m == nil {
		s.t.Fatal("unlock printed no challenge")
	}
	c, err := shell.ParseChallenge(m[1])
	if err != nil {
		s.t.Fatal(err)
	}
	sig, err := shell.SignUnlock(service, c)
	if err != nil {
		s.t.Fatal(err)
	}
	if out := s.run("unlock " + hex.EncodeToString(sig[:])); !strings.Contains(out, "service mode unlocked") {
		s.t.Fatalf("unlock: %q", out)
	}
}

func TestShellBadServicePubKey(t *testing.T) {
	svc := shellKey(t, filepath.Join(t.TempDir(), "service.key"))
	tests := []struct {
		name, key string
		ok        bool
	}{
		{"address", svc.Address().String(), true},
		{"compressed public key", hex.EncodeToString(svc.PublicKey().SerializeCompressed()), true},
		{"uncompressed public key", hex.EncodeToString(svc.PublicKey().SerializeUncompressed()), true},
		{"not hex", "service-key", false},
		{"too short", "0x1234", false},
		{"address with a bad digit", "0x" + strings.Repeat("g", 40), false},
		{"33 bytes not on the curve", "05" + strings.Repeat("11", 32), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newShellFixture(t, "[shell]\ndevice = \"/dev/ttyS1\"\nservice_pubkey = \""+tc.key+"\"\n# %[1]s\n")
			svc, err := newShell(f.cfg, f.parts)
			if tc.ok {
				if err != nil || svc == nil {
					t.Fatalf("newShell = %v, %v; want a shell", svc, err)
				}
				return
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("newShell = %v, want a *ConfigError", err)
			}
			if ce.Field != "shell.service_pubkey" || ce.File != f.cfg.file {
				t.Errorf("ConfigError names %s in %s, want shell.service_pubkey in %s", ce.Field, ce.File, f.cfg.file)
			}
			if !errors.Is(err, ErrConfig) || !errors.Is(err, shell.ErrBadServiceKey) {
				t.Errorf("error %v: want ErrConfig and shell.ErrBadServiceKey", err)
			}
			t.Logf("%v", err)
		})
	}
	t.Run("no device: no shell", func(t *testing.T) {
		f := newShellFixture(t, "[shell]\nservice_pubkey = \"zz\"\n# %[1]s\n")
		if svc, err := newShell(f.cfg, f.parts); svc != nil || err != nil {
			t.Fatalf("newShell = %v, %v; want no shell and no error", svc, err)
		}
	})
}

// TestShellConfigHidesSecrets: the config command shows every section and
// the files named, but no password.
func TestShellConfigHidesSecrets(t *testing.T) {
	const password = "s3cr3t-Pa55"
	f := newShellFixture(t, `[mqtt]
collector_addresses = ["0x0000000000000000000000000000000000000001"]
broker = "ssl://tbox:`+password+`@mqtt.example.com:8883"
ca_file = "ca.pem"
[shell]
device = "/dev/ttyS1"
service_pubkey = "%[1]s"
`)
	term := openShellTerm(t, f.shell(t))
	out := term.run("config")
	t.Logf("config:\n%s", out)
	if strings.Contains(out, password) {
		t.Fatalf("config shows the broker password:\n%s", out)
	}
	for _, want := range []string{
		"# " + f.cfg.file,
		`key = "device.key"`,
		`broker = "ssl://tbox:REDACTED@mqtt.example.com:8883"`,
		`ca_file = "ca.pem"`,
		`service_pubkey = "` + f.service.Address().String() + `"`,
		"[can]", "[outbox]", "[mqtt]", "[shell]", "[log]",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("config lacks %q", want)
		}
	}
	key, err := os.ReadFile(filepath.Join(f.dir, "device.key"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(key), "\n") {
		if l = strings.TrimSpace(l); len(l) > 16 && !strings.HasPrefix(l, "-----") && strings.Contains(out, l) {
			t.Fatalf("config shows the device key file's content")
		}
	}
}

// TestShellStatusAndProfile: with the agent running on a bus, status shows
// the frames, the open span's distance, the outbox and the uplink; profile
// shows what is read and what is blocked.
func TestShellStatusAndProfile(t *testing.T) {
	f := newShellFixture(t, "[shell]\ndevice = \"/dev/ttyS1\"\nservice_pubkey = \"%[1]s\"\n")
	bus := cantest.NewBus()
	defer bus.Close()
	rx := bus.NewReceiver()
	f.parts.Sources = []agent.Source{{Name: "can0", Rx: rx, Close: rx.Close}}
	att, err := agent.NewAttester(agent.AttesterConfig{ChainID: f.cfg.ChainID, Profile: f.p}, f.key, f.st)
	if err != nil {
		t.Fatal(err)
	}
	a := agent.New(att, agent.Options{Sources: f.parts.Sources, Tick: 20 * time.Millisecond})
	f.parts.attach(a)
	term := openShellTerm(t, f.shell(t))

	// Before any frame: no span, nothing counted.
	out := term.run("status")
	for _, want := range []string{"engine    frames 0, last frame never", "outbox    depth 0", "uplink    disabled", "service   locked"} {
		if !strings.Contains(out, want) {
			t.Errorf("status before the drive lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "open span") {
		t.Errorf("status shows an open span before any frame:\n%s", out)
	}

	// Frames from 6 s ago to now, all in this batch: only the stop may
	// close the span.
	if s := time.Now().Unix() % 600; s < 10 || s > 590 {
		time.Sleep(time.Duration((610-s)%600) * time.Second)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	start := time.Now().Add(-6 * time.Second)
	for i, m := range []float64{200_000, 200_120, 200_240} {
		fr, err := f.p.Encode(profile.Odometer, m)
		if err != nil {
			t.Fatal(err)
		}
		fr.Time, fr.Bus = start.Add(time.Duration(i)*3*time.Second), "can0"
		bus.Send(fr)
	}
	deadline := time.Now().Add(5 * time.Second)
	for a.Progress().Meters != 240 {
		if time.Now().After(deadline) {
			t.Fatalf("the agent's open span is %+v after 5 s, want 240 m", a.Progress())
		}
		time.Sleep(5 * time.Millisecond)
	}
	out = term.run("status")
	t.Logf("status:\n%s", out)
	for _, want := range []string{
		"CAN       can0: open",
		"engine    frames 3,",
		fmt.Sprintf("open span from batch %d over 1 batches: 240 m", start.Unix()/600),
		"outbox    depth 0, none pending, head 0",
		"uplink    disabled (no broker configured)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q", want)
		}
	}

	out = term.run("profile")
	t.Logf("profile:\n%s", out)
	var bio []string
	for _, k := range f.p.BiometricKeys() {
		bio = append(bio, k.String())
	}
	for _, want := range []string{
		"profile " + f.p.File(),
		"odometer   CLU_Odometer.Odometer",
		"drive_mode VCU_Status.DriveMode",
		"modes      ",
		"filter     bus default receives only ",
		fmt.Sprintf("blocked    %d biometric messages never received: %s", len(bio), strings.Join(bio, ", ")),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("profile lacks %q", want)
		}
	}
	if len(bio) == 0 {
		t.Error("the sample profile blocks no biometric message")
	}
}

// TestShellServiceActions: in service mode, the uplink's actions reach the
// running uplink; without a broker or a CAN socket they say why not.
func TestShellServiceActions(t *testing.T) {
	t.Run("no broker, no socket", func(t *testing.T) {
		f := newShellFixture(t, "[shell]\ndevice = \"/dev/ttyS1\"\nservice_pubkey = \"%[1]s\"\n")
		rx := cantest.NewBus().NewReceiver()
		f.parts.Sources = []agent.Source{{Name: "can0", Rx: rx}}
		term := openShellTerm(t, f.shell(t))
		if out := term.run("reconnect"); !strings.Contains(out, "service mode required") {
			t.Fatalf("reconnect while locked: %q", out)
		}
		term.unlock(f.service)
		for cmd, want := range map[string]string{
			"reconnect":           "reconnect: " + errNoUplink.Error(),
			"outbox retry-nacked": "outbox retry-nacked: " + errNoUplink.Error(),
			"reopen can":          "reopen can: " + errNoCANSocket.Error(),
			"upload now":          "upload: not available",
			"flush":               "flush: done",
		} {
			if out := term.run(cmd); !strings.Contains(out, want) {
				t.Errorf("%s: %q, want %q", cmd, out, want)
			}
		}
	})

	t.Run("broker", func(t *testing.T) {
		b := mqtttest.Start(t)
		f := newShellFixture(t, "[mqtt]\nbroker = \""+b.URL()+"\"\ncollector_addresses = [\"0x0000000000000000000000000000000000000001\"]\n[shell]\ndevice = \"/dev/ttyS1\"\nservice_pubkey = \"%[1]s\"\n")
		up, err := uplink.New(uplink.Config{Broker: b.URL(), Device: f.key.Address().String(), Collectors: []signer.Address{{1}}}, outbox{f.st})
		if err != nil {
			t.Fatal(err)
		}
		f.parts.Uplink = up
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- up.Run(ctx) }()
		defer func() { cancel(); <-done }()
		waitShell(t, "the uplink to connect", func() bool { return up.Stats().Connected })

		term := openShellTerm(t, f.shell(t))
		term.unlock(f.service)
		if out := term.run("reconnect"); !strings.Contains(out, "reconnect: requested") {
			t.Fatalf("reconnect: %q", out)
		}
		waitShell(t, "the new connection", func() bool { st := up.Stats(); return st.Connected && st.Reconnects == 1 })
		if out := term.run("status"); !strings.Contains(out, "reconnects 1") {
			t.Errorf("status after reconnect lacks the reconnect:\n%s", out)
		}
		for cmd, want := range map[string]string{
			"outbox retry-nacked": "outbox retry-nacked: requested",
			"upload now":          "upload: uplink woken",
		} {
			if out := term.run(cmd); !strings.Contains(out, want) {
				t.Errorf("%s: %q, want %q", cmd, out, want)
			}
		}
	})
}

func waitShell(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestShellReopenCANFindsTheBus: reopen can picks the SocketCAN sources by
// bus name, every one for no name, and names the buses when asked for
// another. (The sockets here were never opened, so the reopen itself
// fails: the emulated T-Box reopens real ones.)
func TestShellReopenCANFindsTheBus(t *testing.T) {
	p := &shellParts{Sources: []agent.Source{
		{Name: "log", Rx: cantest.NewBus().NewReceiver()},
		{Name: "can0", Rx: &socketcan.Conn{}},
		{Name: "can1", Rx: &socketcan.Conn{}},
	}}
	if err := p.reopenCAN("can7"); !errors.Is(err, errNoSuchBus) || !strings.Contains(err.Error(), "can0, can1") {
		t.Errorf("reopen can7: %v, want errNoSuchBus naming can0, can1", err)
	}
	for _, bus := range []string{"", "can0", "can1"} {
		err := p.reopenCAN(bus)
		if err == nil || errors.Is(err, errNoSuchBus) || errors.Is(err, errNoCANSocket) {
			t.Errorf("reopen %q: %v, want the socket's own error", bus, err)
		}
		if !errors.Is(err, socketcan.ErrNoInterface) && !errors.Is(err, socketcan.ErrNotSupported) {
			t.Errorf("reopen %q: %v, want the socket's reopen tried", bus, err)
		}
	}
	if n := strings.Count(p.reopenCAN("").Error(), "reopen"); n != 2 {
		t.Errorf("reopen of every bus tried %d sockets, want 2", n)
	}
}
