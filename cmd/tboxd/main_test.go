package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/agent/uplink/mqtttest"
	"github.com/csop/tbox/hil/vehicle"
	"github.com/csop/tbox/signer"
)

// bins holds the binaries built on first use: the tboxd under test and the
// reference collector.
var bins struct {
	once      sync.Once
	dir       string
	tboxd     string
	collector string
	err       error
}

// buildTags are the tags the binaries under test are built with: those of
// this test binary (tpm_test.go adds "tpm").
var buildTags = ""

// TestMain runs the tests, removes the binaries, and checks that no test
// left a goroutine behind.
func TestMain(m *testing.M) {
	code := m.Run()
	if bins.dir != "" {
		os.RemoveAll(bins.dir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// build compiles tboxd and the collector into a temporary directory with
// the go command that runs the tests.
func build() error {
	dir, err := os.MkdirTemp("", "tboxd-e2e-bin-")
	if err != nil {
		return err
	}
	bins.dir = dir
	bins.tboxd = filepath.Join(dir, "tboxd")
	bins.collector = filepath.Join(dir, "collector")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	// Stamp the build time as the Makefile does (there the commit's time):
	// a drive recorded before the build must still replay with its own
	// timestamps as the clock, never as an unset clock.
	ld := "-X main.buildTime=" + strconv.FormatInt(time.Now().Unix(), 10)
	cmd := exec.Command(goBin, "build", "-tags", buildTags, "-ldflags", ld, "-o", dir+string(filepath.Separator), ".", "../collector")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	return nil
}

// needBinaries builds tboxd and the collector once, and fails the test when
// that is impossible.
func needBinaries(t *testing.T) {
	t.Helper()
	bins.once.Do(func() { bins.err = build() })
	if bins.err != nil {
		t.Fatalf("binaries not built: %v", bins.err)
	}
}

// evProfile is the sample car's profile, absolute.
func evProfile(t testing.TB) string {
	t.Helper()
	p, err := filepath.Abs("../../agent/profile/testdata/ev.toml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// ---- processes ----

// line is one line a process wrote to stderr, with the time it was read.
type line struct {
	at   time.Time
	text string
}

// proc is a child process whose stderr is read line by line as it comes.
type proc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	stdout bytes.Buffer
	done   chan struct{}

	mu    sync.Mutex
	lines []line
	grew  chan struct{} // closed and replaced on every new line
}

func startProc(t *testing.T, name, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, done: make(chan struct{}), grew: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout = &p.stdout
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			now := time.Now()
			p.mu.Lock()
			p.lines = append(p.lines, line{now, sc.Text()})
			close(p.grew)
			p.grew = make(chan struct{})
			p.mu.Unlock()
		}
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s stderr (tail):\n%s", p.name, tail(p.stderr(), 60))
		}
	})
	return p
}

// stderr returns everything the process wrote to stderr so far.
func (p *proc) stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, l := range p.lines {
		b.WriteString(l.text)
		b.WriteByte('\n')
	}
	return b.String()
}

// snapshot returns the stderr lines so far.
func (p *proc) snapshot() []line {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]line(nil), p.lines...)
}

// waitLine waits for a stderr line matching re that was read at or after
// since, and returns it.
func (p *proc) waitLine(re *regexp.Regexp, since time.Time, timeout time.Duration) (line, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	next := 0
	for {
		p.mu.Lock()
		lines, grew := p.lines, p.grew
		p.mu.Unlock()
		for ; next < len(lines); next++ {
			if l := lines[next]; !l.at.Before(since) && re.MatchString(l.text) {
				return l, true
			}
		}
		select {
		case <-grew:
		case <-p.done:
			select {
			case <-grew:
				continue // lines read before the exit
			default:
			}
			return line{}, false
		case <-deadline.C:
			return line{}, false
		}
	}
}

// wait waits for the process to exit and returns its exit status, failing
// the test after timeout.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("%s still running after %v", p.name, timeout)
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %s: %v", p.name, err)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ---- the rig: a device key, a broker, a collector, an agent ----

type rig struct {
	t      *testing.T
	dir    string
	key    string // device key file
	device string // its address
	broker *mqtttest.Broker
	col    *collector
}

// newRig makes a device key and starts a fresh mosquitto; the collector is
// started separately (startCollector).
func newRig(t *testing.T) *rig {
	t.Helper()
	needBinaries(t)
	r := &rig{t: t, dir: t.TempDir()}
	r.key = filepath.Join(r.dir, "device.key")
	addr, err := signer.GenerateKeyFile(r.key)
	if err != nil {
		t.Fatal(err)
	}
	r.device = addr.String()
	r.broker = mqtttest.Start(t)
	r.col = &collector{t: t, dir: filepath.Join(r.dir, "collector")}
	if err := os.MkdirAll(r.col.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	r.col.writeConfig(r.broker.URL(), r.device)
	return r
}

// agentConf is the variable part of a tboxd configuration.
type agentConf struct {
	Replay     string        // the candump log
	Pace       float64       // replay_pace
	Grace      time.Duration // shutdown_grace
	LogLevel   string        // default info
	NoBroker   bool          // no [mqtt] broker
	AckTimeout time.Duration // default 2 s: the collector comes and goes in these tests
	Health     time.Duration // health_interval, default 1 s
}

// writeConfig writes tboxd.toml in the rig's directory and returns its path.
func (r *rig) writeConfig(c agentConf) string {
	r.t.Helper()
	if c.Grace == 0 {
		c.Grace = 20 * time.Second
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = 2 * time.Second
	}
	if c.Health == 0 {
		c.Health = time.Second
	}
	var b strings.Builder
	fmt.Fprintf(&b, "profile = %q\nkey = %q\nstate_dir = \"state\"\nchain_id = 20220807\nshutdown_grace = %q\n",
		evProfile(r.t), r.key, c.Grace)
	fmt.Fprintf(&b, "\n[can]\nreplay = %q\nreplay_pace = %v\n", c.Replay, c.Pace)
	if !c.NoBroker {
		fmt.Fprintf(&b, "\n[mqtt]\nbroker = %q\nbackoff_min = \"100ms\"\nbackoff_max = \"1.5s\"\nnack_retry = \"1s\"\nack_timeout = %q\nhealth_interval = %q\ncollector_addresses = [%q]\n",
			r.broker.URL(), c.AckTimeout, c.Health, r.col.addr)
	}
	fmt.Fprintf(&b, "\n[log]\nlevel = %q\n", c.LogLevel)
	path := filepath.Join(r.dir, "tboxd.toml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		r.t.Fatal(err)
	}
	return path
}

func (r *rig) stateDir() string { return filepath.Join(r.dir, "state") }

// startAgent runs tboxd on cfg.
func (r *rig) startAgent(cfg string) *proc {
	r.t.Helper()
	return startProc(r.t, "tboxd", bins.tboxd, "--config", cfg)
}

// ---- the collector ----

type collector struct {
	t    *testing.T
	dir  string
	cfg  string
	addr string  // the receipts' signer
	runs []*proc // every run, in order
}

func (c *collector) writeConfig(broker, device string) {
	c.t.Helper()
	reg := filepath.Join(c.dir, "devices.txt")
	if err := os.WriteFile(reg, []byte(device+"\n"), 0o600); err != nil {
		c.t.Fatal(err)
	}
	c.cfg = filepath.Join(c.dir, "collector.toml")
	addr, err := signer.GenerateKeyFile(filepath.Join(c.dir, "collector.key"))
	if err != nil {
		c.t.Fatal(err)
	}
	c.addr = addr.String()
	conf := fmt.Sprintf(`broker = %q
client_id = "e2e-collector"
signing_key = "collector.key"
chain_id = 20220807
registry = "devices.txt"
db = "collector.db"
seed = "0x%064x"
grace = "100000h"
log_level = "debug"
`, broker, 7)
	if err := os.WriteFile(c.cfg, []byte(conf), 0o600); err != nil {
		c.t.Fatal(err)
	}
}

var reSubscribed = regexp.MustCompile(`msg="connected and subscribed"`)

// start runs the collector and waits until it is subscribed.
func (c *collector) start() {
	c.t.Helper()
	p := startProc(c.t, "collector", bins.collector, "run", "--config", c.cfg)
	c.runs = append(c.runs, p)
	if _, ok := p.waitLine(reSubscribed, time.Time{}, 15*time.Second); !ok {
		c.t.Fatalf("collector not subscribed within 15 s:\n%s", p.stderr())
	}
}

// stop stops the running collector with SIGTERM.
func (c *collector) stop() {
	c.t.Helper()
	if len(c.runs) == 0 {
		return
	}
	p := c.runs[len(c.runs)-1]
	select {
	case <-p.done:
		return
	default:
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(15 * time.Second); code != 0 {
		c.t.Errorf("collector exit status %d, want 0", code)
	}
}

// ledgerStats is `collector stats --json`.
type ledgerStats struct {
	Devices []struct {
		Device       string            `json:"device"`
		Attestations uint64            `json:"attestations"`
		Meters       uint64            `json:"meters"`
		Modes        map[string]uint64 `json:"modes"`
		Batches      uint64            `json:"batches"`
	} `json:"devices"`
	Forks int `json:"forks"`
}

// stats stops the collector if it runs and reads its ledger.
func (c *collector) stats() ledgerStats {
	c.t.Helper()
	var s ledgerStats
	c.readJSON(&s, "stats", "--json")
	return s
}

// readJSON stops the collector if it runs, runs the collector command
// args on its configuration and decodes its JSON output into v.
func (c *collector) readJSON(v any, args ...string) {
	c.t.Helper()
	c.stop()
	args = append([]string{args[0], "--config", c.cfg}, args[1:]...)
	out, err := exec.Command(bins.collector, args...).Output()
	if err != nil {
		c.t.Fatalf("collector %s: %v\n%s", args[0], err, exitStderr(err))
	}
	if err := json.Unmarshal(out, v); err != nil {
		c.t.Fatalf("collector %s: %v\n%s", args[0], err, out)
	}
}

// audit re-verifies every stored chain.
func (c *collector) audit() {
	c.t.Helper()
	c.stop()
	out, err := exec.Command(bins.collector, "audit", "--config", c.cfg).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		c.t.Errorf("collector audit: %v\n%s", err, out)
	}
}

func exitStderr(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

// colEvent is one attestation the collector handled, from its debug log.
type colEvent struct {
	kind   string // stored, duplicate, refused
	seq    uint64
	batch  int64
	meters int64
	reason string
}

var (
	reEvent  = regexp.MustCompile(`msg="(attestation stored|attestation stored, ineligible for tickets|duplicate attestation, receipted again|attestation refused)"`)
	reSeq    = regexp.MustCompile(` seq=(\d+)`)
	reBatch  = regexp.MustCompile(` batch=(\d+)`)
	reMeters = regexp.MustCompile(` meters=(\d+)`)
	reReason = regexp.MustCompile(` reason=("(?:[^"\\]|\\.)*"|\S+)`)
)

// events returns what every run of the collector did, in order.
func (c *collector) events() []colEvent {
	var out []colEvent
	for _, p := range c.runs {
		for _, l := range p.snapshot() {
			m := reEvent.FindStringSubmatch(l.text)
			if m == nil {
				continue
			}
			e := colEvent{kind: map[string]string{
				"attestation stored":                         "stored",
				"attestation stored, ineligible for tickets": "stored",
				"duplicate attestation, receipted again":     "duplicate",
				"attestation refused":                        "refused",
			}[m[1]]}
			if s := reSeq.FindStringSubmatch(l.text); s != nil {
				e.seq, _ = strconv.ParseUint(s[1], 10, 64)
			}
			if s := reBatch.FindStringSubmatch(l.text); s != nil {
				e.batch, _ = strconv.ParseInt(s[1], 10, 64)
			}
			if s := reMeters.FindStringSubmatch(l.text); s != nil {
				e.meters, _ = strconv.ParseInt(s[1], 10, 64)
			}
			if s := reReason.FindStringSubmatch(l.text); s != nil {
				e.reason = s[1]
			}
			out = append(out, e)
		}
	}
	return out
}

// ---- drives ----

// writeDrive plays sc on the sample car into a candump log in dir and
// returns its path and the ground truth.
func writeDrive(t *testing.T, dir string, sc vehicle.Scenario) (string, vehicle.Truth) {
	t.Helper()
	p, err := profile.Load(evProfile(t))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "drive.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sink := vehicle.NewLogSink(f)
	truth, err := sc.Frames(p, sink.WriteFrame)
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if truth.Meters == 0 {
		t.Fatalf("scenario %+v drove nowhere", sc)
	}
	return path, truth
}

// pastStart returns a drive start such that a drive of d ends an hour ago:
// the collector refuses batches from the future.
func pastStart(d time.Duration) time.Time {
	return time.Now().Add(-d - time.Hour).Truncate(time.Second)
}
