package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/csop/tbox/agent/uplink/mqtttest"
	"github.com/csop/tbox/hil/vehicle"
	"github.com/csop/tbox/signer"
)

// Issue 14's cases (b), (c) and (d) end to end on the host: the real
// tboxd uploading through mosquitto with the shipped configuration
// (cmd/collector/deploy/mosquitto: mTLS only, the per-device ACL) to the
// real `collector run`, asserting what the car owner relies on: the
// collector's receipt head reaches the car's last seq, nothing is refused,
// no fork is recorded, and the verdicts are what README §C7 says.

// newShippedRig is newRig with the broker on the shipped configuration
// over mTLS: the collector connects as collector-1 (the ACL's collector
// identity), tboxd with a certificate whose CN is its address. Agent
// configurations come from writeTLSConfig.
func newShippedRig(t *testing.T) (*rig, *shippedTLS) {
	t.Helper()
	needBinaries(t)
	r := &rig{t: t, dir: t.TempDir()}
	r.key = filepath.Join(r.dir, "device.key")
	addr, err := signer.GenerateKeyFile(r.key)
	if err != nil {
		t.Fatal(err)
	}
	r.device = addr.String()
	pki := mqtttest.NewPKI(t)
	r.broker = mqtttest.Start(t, mqtttest.WithShippedConfig(pki))
	r.col = &collector{t: t, dir: filepath.Join(r.dir, "collector")}
	if err := os.MkdirAll(r.col.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	r.col.writeConfig(r.broker.URL(), r.device)
	colCert, colKey := pki.ClientCert("collector-1")
	f, err := os.OpenFile(r.col.cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = fmt.Fprintf(f, "ca = %q\ncert = %q\nkey = %q\n", pki.CAFile, colCert, colKey)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	s := &shippedTLS{ca: pki.CAFile}
	s.cert, s.key = pki.ClientCert(r.device)
	return r, s
}

// shippedTLS is the T-Box's side of the rig's mTLS.
type shippedTLS struct{ ca, cert, key string }

// writeTLSConfig is writeConfig with the T-Box's mTLS files in [mqtt].
func (r *rig) writeTLSConfig(s *shippedTLS, c agentConf) string {
	r.t.Helper()
	path := r.writeConfig(c)
	if c.NoBroker {
		return path
	}
	b, err := os.ReadFile(path)
	if err != nil {
		r.t.Fatal(err)
	}
	tls := fmt.Sprintf("[mqtt]\nca_file = %q\ncert_file = %q\nkey_file = %q\n", s.ca, s.cert, s.key)
	out := strings.Replace(string(b), "[mqtt]\n", tls, 1)
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		r.t.Fatal(err)
	}
	return path
}

// deviceReport is `collector verdicts --device ADDR --json`
// (cmd/collector/internal/ledger.DeviceReport).
type deviceReport struct {
	Head    uint64 `json:"head"`
	Records []struct {
		Seq     uint64 `json:"seq"`
		Batch   uint64 `json:"batch"`
		Batches uint32 `json:"batches"`
		Meters  uint64 `json:"meters"`
		Flags   uint32 `json:"flags"`
		Verdict struct {
			Eligible bool   `json:"eligible"`
			Code     string `json:"code"`
			Reason   string `json:"reason"`
		} `json:"verdict"`
	} `json:"records"`
	Breaks []struct {
		From  uint64 `json:"from"`
		To    uint64 `json:"to"`
		Cause string `json:"cause"`
	} `json:"breaks"`
	Held  []json.RawMessage `json:"held"`
	Forks []json.RawMessage `json:"forks"`
	Lost  *struct {
		From uint64 `json:"from"`
		To   uint64 `json:"to"`
	} `json:"lost"`
}

// verdicts stops the collector if it runs and reads the device's report.
func (c *collector) verdicts(device string) deviceReport {
	c.t.Helper()
	var r deviceReport
	c.readJSON(&r, "verdicts", "--device", device, "--json")
	return r
}

// noRefusals fails the test for every attestation the collector refused
// (nacked) and every fork it logged, in any of its runs.
func (c *collector) noRefusals() {
	c.t.Helper()
	for _, p := range c.runs {
		for _, l := range p.snapshot() {
			if strings.Contains(l.text, `msg="attestation refused"`) || strings.Contains(l.text, `msg="fork:`) {
				c.t.Errorf("collector: %s", l.text)
			}
		}
	}
}

// seqsOf returns the seqs of a report's records, in order.
func (d deviceReport) seqsOf() []uint64 {
	out := make([]uint64, len(d.Records))
	for i, rec := range d.Records {
		out[i] = rec.Seq
	}
	return out
}

// drive runs tboxd on cfg to the end of its replay and fails the test
// unless it exits 0 within a minute.
func (r *rig) drive(what, cfg string) *proc {
	r.t.Helper()
	a := r.startAgent(cfg)
	if code := a.wait(60 * time.Second); code != 0 {
		r.t.Fatalf("%s: tboxd exit status %d, want 0:\n%s", what, code, tail(a.stderr(), 20))
	}
	return a
}

// driveDir writes sc's candump log in a directory of its own under the
// rig's (writeDrive names every log drive.log).
func (r *rig) driveDir(name string, sc vehicle.Scenario) (string, vehicle.Truth) {
	r.t.Helper()
	d := filepath.Join(r.dir, name)
	if err := os.MkdirAll(d, 0o700); err != nil {
		r.t.Fatal(err)
	}
	return writeDrive(r.t, d, sc)
}

// TestClockUnsetReceipted is issue 14 (b) end to end: a new T-Box drives
// 2 h with its clock unset (its frames read January 1970, earlier than
// any time it accepts). Before the fix it signed the whole drive as seq 1
// (68,440 m in one batch, CLOCK), which the collector refused, and every
// later seq was nacked as "gap". Now it attests per batch of its best
// estimate, and the collector receipts every seq up to the last; none is
// refused or held. README §C7: a CLOCK span is judged by the same rules as
// any other, so each of these one-batch spans of a batch's distance is
// eligible, and the collector's eligible meters are the truth's.
func TestClockUnsetReceipted(t *testing.T) {
	r, s := newShippedRig(t)
	t0 := time.Now() // after the shared build
	log, tr := r.driveDir("unset", vehicle.Scenario{Seed: 15, Start: time.Unix(3600, 0), Duration: 2 * time.Hour})
	if tr.Meters < 50_000 {
		t.Fatalf("truth %d m: want a 2-hour drive of more than 50 km (one batch of it would be impossible)", tr.Meters)
	}
	r.col.start()
	r.drive("the drive with the clock unset", r.writeTLSConfig(s, agentConf{Replay: log}))
	ob := outboxStats(t, r.stateDir())
	if ob.Head < 12 || ob.AckedThrough != ob.Head || ob.Depth != 0 {
		t.Fatalf("outbox head %d, acked through %d, depth %d: want about one attestation per batch (12 or more), every one receipted",
			ob.Head, ob.AckedThrough, ob.Depth)
	}
	storedChain(t, r.col.events(), ob.Head)
	r.col.noRefusals()
	rep := r.col.verdicts(r.device)
	if rep.Head != ob.Head || len(rep.Records) != int(ob.Head) || len(rep.Breaks) != 0 || len(rep.Held) != 0 || len(rep.Forks) != 0 {
		t.Fatalf("collector: head %d, %d records, breaks %+v, %d held, %d forks; want head %d, every seq stored, no break, none held, no fork",
			rep.Head, len(rep.Records), rep.Breaks, len(rep.Held), len(rep.Forks), ob.Head)
	}
	var eligible uint64
	for i, rec := range rep.Records {
		if rec.Seq != uint64(i+1) {
			t.Errorf("record %d is seq %d", i+1, rec.Seq)
		}
		if rec.Flags&signer.FlagClock == 0 || rec.Batches != 1 {
			t.Errorf("seq %d: %d batches, flags %v: want one batch with CLOCK", rec.Seq, rec.Batches, signer.FlagNames(rec.Flags))
		}
		if !rec.Verdict.Eligible || rec.Verdict.Code != "eligible" {
			t.Errorf("seq %d (%d m in batch %d): verdict %+v; want eligible (§C7: CLOCK is judged by the same rules)",
				rec.Seq, rec.Meters, rec.Batch, rec.Verdict)
			continue
		}
		eligible += rec.Meters
	}
	if eligible != uint64(tr.Meters) {
		t.Errorf("eligible meters %d, truth %d", eligible, tr.Meters)
	}
	st := r.col.stats()
	if len(st.Devices) != 1 || st.Devices[0].Meters != uint64(tr.Meters) || st.Forks != 0 {
		t.Errorf("collector stats %+v: want one device with the truth's %d m, no fork", st, tr.Meters)
	}
	t.Logf("2 h with the clock unset: %d CLOCK attestations of one batch each (batches %d..%d), %d m eligible = truth; test %v",
		ob.Head, rep.Records[0].Batch, rep.Records[len(rep.Records)-1].Batch, eligible, time.Since(t0).Round(100*time.Millisecond))
}

var reMaybeLost = regexp.MustCompile(`seqs_maybe_lost=(\d+)\.\.(\d+)`)

// TestReseedBreakReceipted is issue 14 (c) end to end: a car's first drive
// is receipted; its second is made offline (the attestations stay in the
// outbox); then outbox.db is damaged. tboxd moves it aside, re-seeds the
// outbox from the sidecar (the head record) and says which seqs may be
// lost. Before the fix the collector refused everything after them as
// "gap", forever. Now it records exactly that range as a chain break
// (announced, not a fork), and receipts the head and the third drive: the
// car's receipt head reaches its last seq.
func TestReseedBreakReceipted(t *testing.T) {
	r, s := newShippedRig(t)
	t0 := time.Now() // after the shared build
	sc := vehicle.Scenario{Seed: 21, Start: pastStart(5 * time.Hour), Duration: 30 * time.Minute, StartOdometer: 30_000_000}
	log1, tr1 := r.driveDir("d1", sc)
	sc.Seed, sc.Start, sc.StartOdometer = 22, pastStart(3*time.Hour), tr1.HighWater
	log2, tr2 := r.driveDir("d2", sc)
	sc.Seed, sc.Start, sc.StartOdometer = 23, pastStart(time.Hour), tr2.HighWater
	log3, _ := r.driveDir("d3", sc)

	r.col.start()
	r.drive("first drive", r.writeTLSConfig(s, agentConf{Replay: log1}))
	first := outboxStats(t, r.stateDir())
	if first.Head < 3 || first.AckedThrough != first.Head {
		t.Fatalf("first drive: head %d, acked through %d; want a few attestations, all receipted", first.Head, first.AckedThrough)
	}
	r.drive("second drive, offline", r.writeTLSConfig(s, agentConf{Replay: log2, NoBroker: true}))
	second := outboxStats(t, r.stateDir())
	if second.Head < first.Head+3 || second.AckedThrough != first.Head {
		t.Fatalf("second drive: head %d, acked through %d; want at least 3 more, none acked", second.Head, second.AckedThrough)
	}
	if err := os.Truncate(filepath.Join(r.stateDir(), "outbox.db"), 0); err != nil {
		t.Fatal(err)
	}
	from, to := first.Head+1, second.Head-1 // acked-through + 1 .. head - 1

	a := r.drive("third drive, after the damage", r.writeTLSConfig(s, agentConf{Replay: log3}))
	l, ok := a.waitLine(reMaybeLost, time.Time{}, time.Second)
	if !ok {
		t.Fatal("tboxd did not log seqs_maybe_lost")
	}
	if m := reMaybeLost.FindStringSubmatch(l.text); m[1] != strconv.FormatUint(from, 10) || m[2] != strconv.FormatUint(to, 10) {
		t.Errorf("tboxd: %s; want seqs_maybe_lost=%d..%d", l.text, from, to)
	}
	if ents, _ := filepath.Glob(filepath.Join(r.stateDir(), "outbox.db.corrupt-*")); len(ents) != 1 {
		t.Errorf("moved-aside databases %v, want the damaged one", ents)
	}
	third := outboxStats(t, r.stateDir())
	if third.Head <= second.Head || third.AckedThrough != third.Head || third.Depth != 0 {
		t.Fatalf("third drive: head %d (second %d), acked through %d, depth %d; want the chain continued and receipted to its last seq",
			third.Head, second.Head, third.AckedThrough, third.Depth)
	}
	r.col.noRefusals()
	rep := r.col.verdicts(r.device)
	if len(rep.Breaks) != 1 || rep.Breaks[0].From != from || rep.Breaks[0].To != to || rep.Breaks[0].Cause != "announced" {
		t.Errorf("chain breaks %+v, want one: %d .. %d, announced", rep.Breaks, from, to)
	}
	if len(rep.Forks) != 0 || len(rep.Held) != 0 {
		t.Errorf("%d forks, %d held; want none", len(rep.Forks), len(rep.Held))
	}
	if rep.Lost == nil || rep.Lost.From != from || rep.Lost.To != to {
		t.Errorf("loss announcement %+v, want %d .. %d", rep.Lost, from, to)
	}
	var want []uint64
	for seq := uint64(1); seq <= third.Head; seq++ {
		if seq < from || seq > to {
			want = append(want, seq)
		}
	}
	if got := rep.seqsOf(); rep.Head != third.Head || !equalSeqs(got, want) {
		t.Errorf("collector head %d, stored seqs %v; want head %d and seqs 1..%d, %d..%d", rep.Head, got, third.Head, first.Head, second.Head, third.Head)
	}
	t.Logf("seqs 1..%d receipted, %d..%d made offline, outbox.db damaged: %d..%d a chain break (announced), %d..%d receipted; test %v",
		first.Head, first.Head+1, second.Head, from, to, second.Head, third.Head, time.Since(t0).Round(100*time.Millisecond))
}

func equalSeqs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

var reResumedAt = regexp.MustCompile(`msg="reflashed device: chain resumed from the collector's retained receipt".* receipted_seq=(\d+) .*next_seq=(\d+)`)

// TestHeadLostRefusedThenRecovered is issue 14 (d) end to end: after a
// receipted drive, the newest bbolt meta page of outbox.db is torn and the
// sidecar damaged. Before the fix, Open rewrote the sidecar from the older
// transaction, the head moved back, and the next drive signed an already
// published seq again: a fork. Now tboxd refuses to open (exit 1, the
// files byte-identical) and the collector sees nothing from it. The
// operator's recovery (README "A car is never stranded"): move the state
// directory aside and start tboxd again with its key and the broker; it
// resumes from the collector's retained receipt, and the car goes on with
// no fork, no refusal, its receipt head at its last seq.
func TestHeadLostRefusedThenRecovered(t *testing.T) {
	r, s := newShippedRig(t)
	t0 := time.Now() // after the shared build
	sc := vehicle.Scenario{Seed: 24, Start: pastStart(3 * time.Hour), Duration: 30 * time.Minute, StartOdometer: 40_000_000}
	log1, tr1 := r.driveDir("d1", sc)
	sc.Seed, sc.Start, sc.StartOdometer = 25, pastStart(time.Hour), tr1.HighWater
	log2, _ := r.driveDir("d2", sc)

	r.col.start()
	cfg1 := r.writeTLSConfig(s, agentConf{Replay: log1})
	r.drive("first drive", cfg1)
	first := outboxStats(t, r.stateDir())
	if first.Head < 3 || first.AckedThrough != first.Head {
		t.Fatalf("first drive: head %d, acked through %d; want a few attestations, all receipted", first.Head, first.AckedThrough)
	}

	// The double fault: bbolt's newest meta page torn (its second half,
	// as a cut mid-write leaves it) and the sidecar damaged.
	tearNewestMeta(t, r.stateDir())
	damageAt(t, filepath.Join(r.stateDir(), "head"), 20, 8)
	before := dirFiles(t, r.stateDir())
	storedBefore := len(r.col.events())

	cfg2 := r.writeTLSConfig(s, agentConf{Replay: log2})
	a := r.startAgent(cfg2)
	if code := a.wait(30 * time.Second); code != 1 {
		t.Fatalf("tboxd on the torn meta page and damaged sidecar: exit status %d, want 1", code)
	}
	if !strings.Contains(a.stderr(), "chain head lost") || !strings.Contains(a.stderr(), "meta page") {
		t.Errorf("tboxd's stderr does not say why:\n%s", tail(a.stderr(), 5))
	}
	if !strings.Contains(a.stderr(), "move "+r.stateDir()+" aside") {
		t.Errorf("tboxd's stderr does not say how to recover:\n%s", tail(a.stderr(), 5))
	}
	if after := dirFiles(t, r.stateDir()); !maps.Equal(before, after) {
		t.Error("tboxd changed the state directory: nothing may be rewritten")
	}
	time.Sleep(500 * time.Millisecond) // anything it had published would have reached the collector by now
	if ev := r.col.events(); len(ev) != storedBefore {
		t.Errorf("the collector handled %d attestations after the refusal: %+v", len(ev)-storedBefore, ev[storedBefore:])
	}

	// The operator's recovery: the state directory moved aside, the key
	// kept; tboxd resumes from the collector's retained receipt.
	if err := os.Rename(r.stateDir(), r.stateDir()+".headlost"); err != nil {
		t.Fatal(err)
	}
	a = r.drive("the drive after the recovery", cfg2)
	l, ok := a.waitLine(reResumedAt, time.Time{}, time.Second)
	if !ok {
		t.Fatal("tboxd did not resume from the collector's retained receipt")
	}
	if m := reResumedAt.FindStringSubmatch(l.text); m[1] != strconv.FormatUint(first.Head, 10) || m[2] != strconv.FormatUint(first.Head+1, 10) {
		t.Errorf("tboxd: %s; want receipted_seq=%d next_seq=%d", l.text, first.Head, first.Head+1)
	}
	after := outboxStats(t, r.stateDir())
	if after.Head <= first.Head || after.AckedThrough != after.Head || after.Depth != 0 {
		t.Fatalf("after the recovery: head %d (first drive %d), acked through %d, depth %d; want the chain continued and receipted to its last seq",
			after.Head, first.Head, after.AckedThrough, after.Depth)
	}
	storedChain(t, r.col.events(), after.Head)
	r.col.noRefusals()
	rep := r.col.verdicts(r.device)
	if rep.Head != after.Head || len(rep.Records) != int(after.Head) || len(rep.Breaks) != 0 || len(rep.Forks) != 0 || len(rep.Held) != 0 {
		t.Errorf("collector: head %d, %d records, breaks %+v, %d forks, %d held; want head %d, every seq stored once, no break, no fork",
			rep.Head, len(rep.Records), rep.Breaks, len(rep.Forks), len(rep.Held), after.Head)
	}
	if st := r.col.stats(); st.Forks != 0 {
		t.Errorf("collector stats: %d forks", st.Forks)
	}
	r.col.audit()
	t.Logf("seqs 1..%d receipted; torn meta page + damaged sidecar: exit 1, files unchanged; after the state dir was moved aside: resumed at %d, receipted through %d, no fork; test %v",
		first.Head, first.Head+1, after.Head, time.Since(t0).Round(100*time.Millisecond))
}

// attacker is a device client of the shipped broker (mTLS, its
// certificate's CN its address) that signs what it likes with the rig's
// device key and reads the collector's signed replies.
type attacker struct {
	t       *testing.T
	key     *signer.FileKey
	client  mqtt.Client
	replies chan attReply
	batch   uint64
	seq     uint64
	prev    [32]byte
}

// attReply is a verified receipt (ack) or refusal (nack).
type attReply struct {
	kind   string // "ack" or "nack"
	seq    uint64
	reason string
}

func newAttacker(t *testing.T, r *rig, s *shippedTLS, collector signer.Address) *attacker {
	t.Helper()
	key, err := signer.LoadKeyFile(r.key)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(s.ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	kp, err := tls.LoadX509KeyPair(s.cert, s.key)
	if err != nil {
		t.Fatal(err)
	}
	a := &attacker{t: t, key: key, replies: make(chan attReply, 64), batch: uint64(time.Now().Unix())/600 - 20}
	dev := key.Address()
	on := func(kind string) mqtt.MessageHandler {
		return func(_ mqtt.Client, m mqtt.Message) {
			rep := attReply{kind: kind}
			if kind == "ack" {
				rc, err := signer.ParseReceipt(dev, m.Payload())
				if err == nil {
					_, err = signer.VerifyReceipt(20220807, rc, []signer.Address{collector})
				}
				if err != nil {
					t.Errorf("ack %s: %v", m.Payload(), err)
					return
				}
				rep.seq = rc.Seq
			} else {
				rf, err := signer.ParseRefusal(dev, m.Payload())
				if err != nil {
					t.Errorf("nack %s: %v", m.Payload(), err)
					return
				}
				rep.seq, rep.reason = rf.Seq, rf.Reason
			}
			a.replies <- rep
		}
	}
	opts := mqtt.NewClientOptions().AddBroker(r.broker.URL()).SetClientID(dev.String()).
		SetTLSConfig(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{kp}, MinVersion: tls.VersionTLS12}).
		SetCleanSession(true).SetAutoReconnect(false)
	a.client = mqtt.NewClient(opts)
	if tok := a.client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect to the shipped broker over mTLS: %v", tok.Error())
	}
	t.Cleanup(func() { a.client.Disconnect(100) })
	for _, kind := range []string{"ack", "nack"} {
		if tok := a.client.Subscribe("csop/v1/"+dev.String()+"/"+kind, 1, on(kind)); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe to %s: %v", kind, tok.Error())
		}
	}
	return a
}

// make signs the next attestation (seq + 1 after the last advanced one,
// in the next batch) without advancing the chain.
func (a *attacker) make(meters uint64) *signer.Attestation {
	a.t.Helper()
	at := &signer.Attestation{V: signer.Version, Device: a.key.Address(), Seq: a.seq + 1, Batch: a.batch + 1, Batches: 1,
		Meters: meters, Modes: []signer.ModeMeters{{Mode: "ECO", Meters: meters}}, Prev: a.prev}
	if err := signer.Sign(a.key, 20220807, at); err != nil {
		a.t.Fatal(err)
	}
	return at
}

// advance makes at the chain's last attestation.
func (a *attacker) advance(at *signer.Attestation) {
	a.seq, a.prev, a.batch = at.Seq, signer.Digest(20220807, at), at.Batch
}

func (a *attacker) publish(at *signer.Attestation) {
	a.t.Helper()
	tok := a.client.Publish("csop/v1/"+a.key.Address().String()+"/att", 1, false, at.AppendWire(nil))
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		a.t.Fatalf("publish seq %d: %v", at.Seq, tok.Error())
	}
}

// reply returns the next reply, or kind "" when none comes within wait.
func (a *attacker) reply(wait time.Duration) attReply {
	select {
	case r := <-a.replies:
		return r
	case <-time.After(wait):
		return attReply{}
	}
}

// TestAttackTableShippedCollector is the collector's attack table of
// issue 14 against the real `collector run` on the shipped broker over
// mTLS, with gap_timeout shortened to 1 s in its configuration file: a
// device signs, with its own key, impossible meters (stored and receipted,
// ineligible with the reason), a seq beyond a gap that is then filled
// (held without a reply, then both receipted by one ack), a second,
// different attestation for a stored seq (refused, recorded as a fork), and
// a gap never filled (the later seq held, then, resent after gap_timeout,
// stored with the missing seq recorded as a chain break; the missing seq
// arriving after its break is refused).
func TestAttackTableShippedCollector(t *testing.T) {
	r, s := newShippedRig(t)
	t0 := time.Now() // after the shared build
	const gapTimeout = time.Second
	f, err := os.OpenFile(r.col.cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = fmt.Fprintf(f, "gap_timeout = %q\n", gapTimeout.String())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	r.col.start()
	colAddr, err := signer.ParseAddress(r.col.addr)
	if err != nil {
		t.Fatal(err)
	}
	a := newAttacker(t, r, s, colAddr)
	expect := func(what string, want attReply, wait time.Duration) {
		t.Helper()
		got := a.reply(wait)
		if got.kind != want.kind || got.seq != want.seq || !strings.HasPrefix(got.reason, want.reason) {
			t.Fatalf("%s: reply %+v, want %+v", what, got, want)
		}
	}

	a1 := a.make(1000)
	a.publish(a1)
	a.advance(a1)
	expect("seq 1", attReply{kind: "ack", seq: 1}, 10*time.Second)

	// Impossible meters: stored and receipted, ineligible.
	a2 := a.make(85_840)
	a.publish(a2)
	a.advance(a2)
	expect("seq 2, 85,840 m in one batch", attReply{kind: "ack", seq: 2}, 10*time.Second)

	// A gap then filled: seq 4 before seq 3 is held, no reply; seq 3
	// stores both under one ack of seq 4.
	a3 := a.make(2000)
	a.advance(a3)
	a4 := a.make(3000)
	a.publish(a4)
	expect("seq 4 before seq 3", attReply{}, gapTimeout/2)
	a.publish(a3)
	a.advance(a4)
	expect("seq 3 filling the gap", attReply{kind: "ack", seq: 4}, 10*time.Second)

	// A fork: another seq 4, signed by the same key.
	a.seq, a.prev, a.batch = a3.Seq, signer.Digest(20220807, a3), a3.Batch
	fork := a.make(3001)
	a.advance(a4)
	a.publish(fork)
	expect("a second, different seq 4", attReply{kind: "nack", seq: 4, reason: "fork"}, 10*time.Second)

	// A gap never filled: seq 5 never comes; seq 6 is held, then resent
	// after gap_timeout (as the agent resends what is not receipted).
	a5 := a.make(900)
	a.advance(a5)
	a6 := a.make(800)
	held := time.Now()
	a.publish(a6)
	expect("seq 6 after seq 4", attReply{}, gapTimeout/2)
	// Resent every half second, as the agent resends what is not
	// receipted, until the collector gives up on seq 5.
	a.advance(a6)
	var got attReply
	for deadline := time.Now().Add(10 * time.Second); got.kind == "" && time.Now().Before(deadline); {
		a.publish(a6)
		got = a.reply(gapTimeout / 2)
	}
	if got != (attReply{kind: "ack", seq: 6}) {
		t.Fatalf("seq 6 resent until gap_timeout passed: reply %+v, want an ack of seq 6", got)
	}
	if waited := time.Since(held); waited < gapTimeout {
		t.Errorf("seq 6 receipted %v after it was first sent, before gap_timeout %v", waited, gapTimeout)
	}
	a7 := a.make(700)
	a.publish(a7)
	a.advance(a7)
	expect("seq 7 after the break", attReply{kind: "ack", seq: 7}, 10*time.Second)
	a.publish(a5)
	expect("seq 5 after its break", attReply{kind: "nack", seq: 5, reason: "chain break"}, 10*time.Second)

	rep := r.col.verdicts(r.device)
	if got := rep.seqsOf(); rep.Head != 7 || !equalSeqs(got, []uint64{1, 2, 3, 4, 6, 7}) {
		t.Errorf("collector head %d, stored seqs %v; want head 7, seqs 1..4, 6, 7", rep.Head, got)
	}
	var eligible uint64
	for _, rec := range rep.Records {
		if rec.Verdict.Eligible {
			eligible += rec.Meters
		}
		wantEligible := rec.Seq != 2
		if rec.Verdict.Eligible != wantEligible {
			t.Errorf("seq %d (%d m): verdict %+v, eligible should be %v", rec.Seq, rec.Meters, rec.Verdict, wantEligible)
		}
		if rec.Seq == 2 && !strings.HasPrefix(rec.Verdict.Reason, "impossible meters: 85840 m in 1 batch") {
			t.Errorf("seq 2 reason %q, want impossible meters: 85840 m in 1 batch...", rec.Verdict.Reason)
		}
	}
	if len(rep.Breaks) != 1 || rep.Breaks[0].From != 5 || rep.Breaks[0].To != 5 || rep.Breaks[0].Cause != "gap_timeout" {
		t.Errorf("chain breaks %+v, want seq 5 by gap_timeout", rep.Breaks)
	}
	if len(rep.Forks) != 1 || len(rep.Held) != 0 {
		t.Errorf("%d forks, %d held; want the one fork, none held", len(rep.Forks), len(rep.Held))
	}
	if eligible != 1000+2000+3000+800+700 {
		t.Errorf("eligible meters %d, want %d (all but seq 2's)", eligible, 1000+2000+3000+800+700)
	}
	if st := r.col.stats(); len(st.Devices) != 1 || st.Devices[0].Meters != 1000+85_840+2000+3000+800+700 || st.Forks != 1 {
		t.Errorf("collector stats %+v: want the %d m stored and one fork", st, 1000+85_840+2000+3000+800+700)
	}
	t.Logf("attack table through collector run over mTLS: test %v", time.Since(t0).Round(100*time.Millisecond))
}
