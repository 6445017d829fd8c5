package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/csop/tbox/signer"
)

// commandContext is exec.CommandContext with the child killed when this
// process dies, so that no broker or collector outlives the demo.
func commandContext(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// procSet is the host processes the demo started; killAll ends those still
// running, by their own pid.
type procSet struct {
	mu    sync.Mutex
	procs []*proc
}

type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func (s *procSet) start(name string, cmd *exec.Cmd) (*proc, error) {
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	pr := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		pr.err = cmd.Wait()
		close(pr.done)
	}()
	s.mu.Lock()
	s.procs = append(s.procs, pr)
	s.mu.Unlock()
	return pr, nil
}

func (s *procSet) killAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, pr := range s.procs {
		select {
		case <-pr.done:
			continue
		default:
		}
		pr.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-pr.done:
		case <-time.After(3 * time.Second):
			pr.cmd.Process.Kill()
			<-pr.done
		}
	}
}

// stop sends SIGTERM and waits up to d for a clean exit.
func (pr *proc) stop(d time.Duration) error {
	select {
	case <-pr.done:
		return fmt.Errorf("%s had already exited: %v", pr.name, pr.err)
	default:
	}
	pr.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-pr.done:
		if pr.err != nil {
			return fmt.Errorf("%s: %w", pr.name, pr.err)
		}
		return nil
	case <-time.After(d):
		pr.cmd.Process.Kill()
		<-pr.done
		return fmt.Errorf("%s did not stop within %v of SIGTERM: killed", pr.name, d)
	}
}

type broker struct {
	port int
	proc *proc
}

// startBroker runs mosquitto on a free loopback port.
func startBroker(ctx context.Context, dir string, procs *procSet) (*broker, error) {
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/mosquitto"); serr != nil {
			return nil, fmt.Errorf("mosquitto (installed by hil/scripts/install.sh): %w", err)
		}
		bin = "/usr/sbin/mosquitto"
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type error\nlog_type warning\n", port)
	if os.Geteuid() == 0 {
		conf += "user root\n" // else mosquitto drops to a user that may not read this directory
	}
	cf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "mosquitto.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := commandContext(ctx, bin, "-c", cf)
	cmd.Stdout, cmd.Stderr = logf, logf
	pr, err := procs.start("mosquitto", cmd)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err == nil {
			c.Close()
			return &broker{port: port, proc: pr}, nil
		}
		select {
		case <-pr.done:
			b, _ := os.ReadFile(filepath.Join(dir, "mosquitto.log"))
			return nil, fmt.Errorf("mosquitto exited at start (%v): %s", pr.err, b)
		default:
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("mosquitto not listening on 127.0.0.1:%d after 10 s", port)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func writeCollectorConfig(f *files, port int) error {
	conf := fmt.Sprintf(`# The demo's collector (cmd/collector/README.md).
broker     = "tcp://127.0.0.1:%d"
client_id  = "demo-collector"
chain_id   = %d
registry   = %q
db         = %q
seed       = %q
winners    = %d
grace      = "1s"    # draw a batch as soon as it has ended: the demo's batches are in the past
draw_every = "1s"
log_level  = "info"
`, port, chainID, f.registry, f.db, drawSeed, winners)
	return os.WriteFile(f.collConf, []byte(conf), 0o644)
}

// collector is the running host collector and what its log said.
type collector struct {
	*proc
	mu     sync.Mutex
	drawn  map[uint64]bool
	lines  []string // its whole log, for a failure
	change chan struct{}
}

func (c *collector) drawnBatches() map[uint64]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps(c.drawn)
}

func maps(m map[uint64]bool) map[uint64]bool {
	out := make(map[uint64]bool, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// startCollector runs `collector run` and waits until it has subscribed.
func startCollector(ctx context.Context, f *files, procs *procSet, p *printer, verbose bool) (*collector, error) {
	cmd := commandContext(ctx, f.collector, "run", "--config", f.collConf)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = io.Discard
	logf, err := os.Create(filepath.Join(f.dir, "collector.log"))
	if err != nil {
		return nil, err
	}
	pr, err := procs.start("collector", cmd)
	if err != nil {
		logf.Close()
		return nil, err
	}
	c := &collector{proc: pr, drawn: map[uint64]bool{}, change: make(chan struct{}, 1)}
	ready := make(chan struct{})
	go func() {
		defer logf.Close()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logf, line)
			kv := logfmt(line)
			c.mu.Lock()
			c.lines = append(c.lines, line)
			c.mu.Unlock()
			switch {
			case verbose:
				p.say("collector| %s", line)
			case kv["msg"] == "batch drawn":
				p.say("collector: batch %s drawn: %s tickets, drop %s Stones", kv["batch"], kv["tickets"], kv["drop"])
			case kv["level"] == "WARN" || kv["level"] == "ERROR" || kv["msg"] == "attestation refused":
				p.say("collector: %s", line)
			}
			if kv["msg"] == "connected and subscribed" {
				once.Do(func() { close(ready) })
			}
			if kv["msg"] == "batch drawn" {
				if b, err := strconv.ParseUint(kv["batch"], 10, 64); err == nil {
					c.mu.Lock()
					c.drawn[b] = true
					c.mu.Unlock()
					select {
					case c.change <- struct{}{}:
					default:
					}
				}
			}
		}
	}()
	select {
	case <-ready:
		return c, nil
	case <-pr.done:
		return nil, fmt.Errorf("collector exited at start (%v):\n%s", pr.err, strings.Join(c.log(), "\n"))
	case <-time.After(15 * time.Second):
		return nil, fmt.Errorf("collector not subscribed after 15 s:\n%s", strings.Join(c.log(), "\n"))
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *collector) log() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.lines)
}

// watcher subscribes to the device topics on the broker: it sees every
// attestation published and every reply of the collector.
type watcher struct {
	client  mqtt.Client
	chainID uint64
	p       *printer

	mu     sync.Mutex
	atts   map[uint64]*seenAtt // by seq
	ack    uint64
	nackL  []string
	change chan struct{}
	closed bool
}

type seenAtt struct {
	att      *signer.Attestation
	verified error // the demo's own signature check
	copies   int   // publishes seen (re-publishes after a missing ack)
}

func newWatcher(port int, chainID uint64, p *printer) (*watcher, error) {
	w := &watcher{chainID: chainID, p: p, atts: map[uint64]*seenAtt{}, change: make(chan struct{}, 1)}
	opts := mqtt.NewClientOptions().
		AddBroker(fmt.Sprintf("tcp://127.0.0.1:%d", port)).
		SetClientID("demo-watcher").
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetOrderMatters(true)
	w.client = mqtt.NewClient(opts)
	if tok := w.client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("demo watcher: connect to the broker: %v", tok.Error())
	}
	subs := map[string]byte{"csop/v1/+/att": 1, "csop/v1/+/ack": 1, "csop/v1/+/nack": 1}
	if tok := w.client.SubscribeMultiple(subs, w.onMessage); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		w.client.Disconnect(100)
		return nil, fmt.Errorf("demo watcher: subscribe: %v", tok.Error())
	}
	return w, nil
}

func (w *watcher) onMessage(_ mqtt.Client, m mqtt.Message) {
	parts := strings.Split(m.Topic(), "/")
	if len(parts) != 4 {
		return
	}
	w.mu.Lock()
	defer func() {
		w.mu.Unlock()
		select {
		case w.change <- struct{}{}:
		default:
		}
	}()
	switch parts[3] {
	case "att":
		a, err := signer.ParseWire(m.Payload())
		if err != nil {
			w.nackL = append(w.nackL, fmt.Sprintf("unparsable attestation on %s: %v", m.Topic(), err))
			return
		}
		if s := w.atts[a.Seq]; s != nil {
			s.copies++
			return
		}
		w.atts[a.Seq] = &seenAtt{att: a, verified: signer.Verify(w.chainID, a), copies: 1}
	case "ack":
		var r struct {
			Seq uint64 `json:"seq"`
		}
		if err := json.Unmarshal(m.Payload(), &r); err != nil {
			return
		}
		if r.Seq > w.ack {
			w.ack = r.Seq
			w.p.say("collector: verified, stored and acked through seq %d", r.Seq)
		}
	case "nack":
		w.nackL = append(w.nackL, string(m.Payload()))
		w.p.say("collector: REFUSED %s", m.Payload())
	}
}

func (w *watcher) attestations() []*seenAtt {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]*seenAtt, 0, len(w.atts))
	for _, s := range w.atts {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *seenAtt) int { return int(a.att.Seq) - int(b.att.Seq) })
	return out
}

func (w *watcher) nacks() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.nackL)
}

func (w *watcher) acked() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ack
}

func (w *watcher) close() {
	w.mu.Lock()
	closed := w.closed
	w.closed = true
	w.mu.Unlock()
	if !closed {
		w.client.Disconnect(250)
	}
}

// waitSettled waits until the collector has acked every attestation seen
// and drawn every batch they cover, or until d has passed.
func (w *watcher) waitSettled(ctx context.Context, rep *Report, c *collector, d time.Duration) {
	deadline := time.After(d)
	for {
		atts := w.attestations()
		acked := w.acked()
		want := map[uint64]bool{}
		var maxSeq uint64
		for _, s := range atts {
			maxSeq = max(maxSeq, s.att.Seq)
			for i := uint32(0); i < s.att.Batches; i++ {
				want[s.att.Batch+uint64(i)] = true
			}
		}
		drawn := c.drawnBatches()
		done := acked >= maxSeq
		for b := range want {
			done = done && drawn[b]
		}
		if done {
			return
		}
		select {
		case <-w.change:
		case <-c.change:
		case <-time.After(250 * time.Millisecond):
		case <-deadline:
			return
		case <-ctx.Done():
			return
		}
	}
}

// collectorResults reads the stopped collector's database: its stats and
// the draw of every batch the attestations cover.
func collectorResults(ctx context.Context, f *files, rep *Report) error {
	b, err := collectorCmd(ctx, f, "stats", "--json")
	if err != nil {
		return err
	}
	var st collectorStats
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("collector stats --json: %w", err)
	}
	rep.Stats = &st
	batches := map[uint64]bool{}
	for _, s := range rep.Attestations {
		for i := uint32(0); i < s.att.Batches; i++ {
			batches[s.att.Batch+uint64(i)] = true
		}
	}
	rep.Draws = map[uint64]*drawOut{}
	for bn := range batches {
		b, err := collectorCmd(ctx, f, "draw", "--batch", strconv.FormatUint(bn, 10), "--json")
		var d drawOut
		if jerr := json.Unmarshal(b, &d); jerr != nil {
			if err != nil {
				return err
			}
			return fmt.Errorf("collector draw --batch %d --json: %w", bn, jerr)
		}
		rep.Draws[bn] = &d
	}
	return nil
}

func collectorCmd(ctx context.Context, f *files, args ...string) ([]byte, error) {
	args = append([]string{args[0], "--config", f.collConf}, args[1:]...)
	cmd := commandContext(ctx, f.collector, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return out, fmt.Errorf("collector %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
		}
		return out, fmt.Errorf("collector %s: %w", args[0], err)
	}
	return out, nil
}

// The JSON of `collector stats --json` and `collector draw --json`.
type collectorStats struct {
	Devices []struct {
		Device       string            `json:"device"`
		Attestations uint64            `json:"attestations"`
		Meters       uint64            `json:"meters"`
		Modes        map[string]uint64 `json:"modes"`
		Batches      uint64            `json:"batches"`
		Wins         uint64            `json:"wins"`
		AwardMicro   uint64            `json:"award_micro"`
	} `json:"devices"`
	Forks   int `json:"forks"`
	Draws   int `json:"draws"`
	Undrawn int `json:"undrawn"`
}

type drawOut struct {
	Batch  uint64 `json:"batch"`
	Result *struct {
		Total   uint64 `json:"total"`
		Drop    uint64 `json:"drop"`
		Entries int    `json:"entries"`
		N       int    `json:"n"`
		Awards  []struct {
			Device string `json:"device"`
			Wins   int    `json:"wins"`
			Micro  uint64 `json:"micro"`
		} `json:"awards"`
	} `json:"result"`
	Recorded *struct {
		At time.Time `json:"at"`
	} `json:"recorded"`
	Match bool              `json:"match"`
	Late  []json.RawMessage `json:"late"`
}
