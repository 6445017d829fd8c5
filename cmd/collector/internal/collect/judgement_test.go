package collect

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/csop/tbox/agent/uplink/mqtttest"
	"github.com/csop/tbox/cmd/collector/internal/draw"
	"github.com/csop/tbox/cmd/collector/internal/ledger"
	"github.com/csop/tbox/signer"
)

// publish sends wire once, as the agent does (QoS 1).
func (d *device) publish(topic string, payload []byte, retained bool) {
	d.t.Helper()
	tok := d.client.Publish(topic, 1, retained, payload)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		d.t.Fatalf("publish: %v", tok.Error())
	}
}

// drainReplies forgets the replies received so far (repeats of an ack
// that send's resending caused).
func (d *device) drainReplies() {
	for {
		select {
		case <-d.replies:
		default:
			return
		}
	}
}

// quiet asserts that no reply comes within wait.
func (d *device) quiet(wait time.Duration, why string) {
	d.t.Helper()
	select {
	case r := <-d.replies:
		d.t.Fatalf("%s: got %+v, want no reply", why, r)
	case <-time.After(wait):
	}
}

// await returns the next reply, failing after 20 s.
func (d *device) await(what string) reply {
	d.t.Helper()
	select {
	case r := <-d.replies:
		return r
	case <-time.After(20 * time.Second):
		d.t.Fatalf("no reply: %s", what)
		return reply{}
	}
}

// span is one attestation of a drive: its meters, flags, and the verdict
// code the collector must give it.
type span struct {
	meters uint64
	flags  uint32
	want   string
	reason string // a substring the reason must hold
}

// TestNeverStrandedOverMQTT: the cars of issue 14 through a real
// mosquitto: whatever the meters and flags of a span that chains, it is
// stored and receipted, judged ineligible with its reason when it must
// be, and every later seq is receipted and judged on its own.
func TestNeverStrandedOverMQTT(t *testing.T) {
	broker := mqtttest.Start(t)
	l := newLedger(t, false)
	allow := allowSet{}
	var mu sync.Mutex
	c, err := New(l, Config{ChainID: testChainID, Allow: allowFunc(func(a signer.Address) bool { mu.Lock(); defer mu.Unlock(); return allow[a] })}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		spans []span
	}{
		{"impossible meters, then a normal span", []span{
			{meters: 1000, want: Eligible},
			{meters: 85_840, want: IneligibleImpossible, reason: "impossible meters: 85840 m in 1 batch"},
			{meters: 1200, want: Eligible},
		}},
		{"issue 14 (a): one glitch frame, then a lasting ROLLBACK from the old agent", []span{
			{meters: 8000, want: Eligible},
			{meters: 9000, want: Eligible},
			{meters: 7000, want: Eligible},
			{meters: 8000, want: Eligible},
			{meters: 9000, want: Eligible},
			{meters: 7000, want: Eligible},
			{meters: 42_803_053_630, flags: signer.FlagJump, want: IneligibleImpossible, reason: "42803053630 m in 1 batch"},
			{meters: 0, flags: signer.FlagRollback, want: Eligible},
			{meters: 0, flags: signer.FlagRollback, want: Eligible},
			{meters: 0, flags: signer.FlagRollback, want: Eligible},
			{meters: 6000, want: Eligible}, // an agent with the candidate rule
			{meters: 5000, flags: signer.FlagJump, want: Eligible},
		}},
		{"issue 14 (b): a new T-Box drove 2 h with its clock unset", []span{
			{meters: 68_440, flags: signer.FlagClock, want: IneligibleImpossible, reason: "68440 m in 1 batch; at most 50000 m per batch at 300 km/h; clock untrusted"},
			{meters: 20_000, flags: signer.FlagClock, want: Eligible},
			{meters: 30_000, want: Eligible},
			{meters: 15_000, want: Eligible},
		}},
	}
	startCollector(t, c, MQTT{Broker: broker.URL(), ClientID: "collector-stranded"})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := newDevice(t, nowBatch()-uint64(len(tc.spans))-1)
			mu.Lock()
			allow[d.addr] = true
			mu.Unlock()
			d.connect(broker.URL())
			var eligible uint64
			for i, s := range tc.spans {
				seq := uint64(i + 1)
				w := d.next(0, func(a *signer.Attestation) {
					a.Meters, a.Flags, a.Modes = s.meters, s.flags, nil
					if s.meters > 0 {
						a.Modes = []signer.ModeMeters{{Mode: "ECO", Meters: s.meters}}
					}
				})
				d.batch++
				d.drainReplies()
				if r := d.send(w); r != (reply{Kind: "ack", Seq: seq}) {
					t.Fatalf("seq %d (%d m, flags 0x%02x): reply %+v, want an ack of seq %d", seq, s.meters, s.flags, r, seq)
				}
				v := verdictOf(t, l, d.addr, seq)
				if v.Code != s.want || v.Eligible != (s.want == Eligible) || !strings.Contains(v.Reason, s.reason) {
					t.Errorf("seq %d verdict %+v, want %q with reason containing %q", seq, v, s.want, s.reason)
				}
				if v.Eligible {
					eligible += s.meters
				}
			}
			h := headOf(t, l, d.addr)
			if h.Seq != uint64(len(tc.spans)) || h.EligibleMeters != eligible {
				t.Errorf("head seq %d with %d eligible meters, want %d and %d", h.Seq, h.EligibleMeters, len(tc.spans), eligible)
			}
		})
	}
	if n := c.Counts().Refused; n != 0 {
		t.Errorf("%d refused, want none", n)
	}
}

// TestGapFilledOverMQTT: a seq beyond the head is held without a reply,
// another attestation for the held seq is refused as a fork, and when the
// missing seq comes both are stored in order and receipted; a copy of a
// stored one is receipted again.
func TestGapFilledOverMQTT(t *testing.T) {
	broker := mqtttest.Start(t)
	l := newLedger(t, false)
	d := newDevice(t, nowBatch()-5)
	c, err := New(l, Config{ChainID: testChainID, Allow: allowSet{d.addr: true}}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	startCollector(t, c, MQTT{Broker: broker.URL(), ClientID: "collector-gap"})
	d.connect(broker.URL())
	if r := d.send(d.next(1000)); r != (reply{Kind: "ack", Seq: 1}) {
		t.Fatalf("seq 1: %+v", r)
	}
	d.batch++
	a2 := d.make(2000)
	d.advance(a2)
	d.batch++
	a3 := d.make(3000)
	d.publish(d.topic("att"), a3.AppendWire(nil), false)
	d.quiet(time.Second, "seq 3 before seq 2")
	rep, err := l.Device(d.addr)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Head != 1 || len(rep.Held) != 1 || rep.Held[0].Seq != 3 {
		t.Fatalf("after seq 3: head %d, held %+v; want head 1, seq 3 held", rep.Head, rep.Held)
	}
	fork := d.make(3001)
	d.publish(d.topic("att"), fork.AppendWire(nil), false)
	if r := d.await("a second seq 3"); r.Kind != "nack" || r.Seq != 3 || !strings.HasPrefix(r.Reason, ErrFork.Error()) {
		t.Errorf("a second, different seq 3: %+v, want a nack %q", r, ErrFork)
	}
	if n := forksOf(t, l, d.addr); n != 1 {
		t.Errorf("%d forks recorded, want 1", n)
	}
	d.advance(a3)
	d.drainReplies()
	if r := d.send(a2.AppendWire(nil)); r != (reply{Kind: "ack", Seq: 3}) {
		t.Fatalf("seq 2 filling the gap: %+v, want the cumulative ack of seq 3", r)
	}
	err = l.View(func(tx ledger.Tx) error {
		for seq, want := range map[uint64]*signer.Attestation{2: a2, 3: a3} {
			if digest, _, ok := tx.Stored(d.addr, seq); !ok || digest != signer.Digest(testChainID, want) {
				t.Errorf("seq %d not stored as sent", seq)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := l.Device(d.addr); err != nil || len(rep.Held) != 0 || len(rep.Breaks) != 0 {
		t.Errorf("held %+v, breaks %+v, err %v; want none", rep.Held, rep.Breaks, err)
	}
	d.drainReplies()
	if r := d.send(a2.AppendWire(nil)); r != (reply{Kind: "ack", Seq: 3}) {
		t.Errorf("a copy of seq 2: %+v, want an ack of seq 3", r)
	}
}

// TestGapNeverFilledOverMQTT: the missing seqs never come; after
// gap_timeout (shortened) a resent later seq records the chain break and
// the chain continues; a missing seq arriving after its break is refused.
func TestGapNeverFilledOverMQTT(t *testing.T) {
	broker := mqtttest.Start(t)
	l := newLedger(t, false)
	d := newDevice(t, nowBatch()-5)
	const gapTimeout = 1500 * time.Millisecond
	c, err := New(l, Config{ChainID: testChainID, Allow: allowSet{d.addr: true}, GapTimeout: gapTimeout}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	startCollector(t, c, MQTT{Broker: broker.URL(), ClientID: "collector-break"})
	d.connect(broker.URL())
	if r := d.send(d.next(1000)); r != (reply{Kind: "ack", Seq: 1}) {
		t.Fatalf("seq 1: %+v", r)
	}
	lost := d.make(900) // seq 2
	d.advance(lost)
	d.advance(d.make(800)) // seq 3
	d.batch++
	w4 := d.next(700)
	start := time.Now()
	d.publish(d.topic("att"), w4, false)
	d.quiet(gapTimeout/2, "seq 4 after seq 1")
	if r := d.send(w4); r != (reply{Kind: "ack", Seq: 4}) { // the agent resends what is not acked
		t.Fatalf("seq 4 resent: %+v, want an ack of seq 4", r)
	}
	if waited := time.Since(start); waited < gapTimeout {
		t.Errorf("seq 4 acked after %s, before gap_timeout %s", waited, gapTimeout)
	}
	rep, err := l.Device(d.addr)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Breaks) != 1 || rep.Breaks[0].From != 2 || rep.Breaks[0].To != 3 || rep.Breaks[0].Cause != ledger.CauseTimeout {
		t.Fatalf("breaks %+v, want seqs 2 .. 3 by gap_timeout", rep.Breaks)
	}
	if !rep.Records[1].Verdict.Eligible || rep.Records[1].Seq != 4 {
		t.Errorf("seq 4 record %+v, want stored and eligible", rep.Records[1])
	}
	d.batch++
	d.drainReplies()
	if r := d.send(d.next(600)); r != (reply{Kind: "ack", Seq: 5}) {
		t.Errorf("seq 5 after the break: %+v, want an ack of seq 5", r)
	}
	d.drainReplies()
	if r := d.send(lost.AppendWire(nil)); r.Kind != "nack" || r.Seq != 2 || !strings.HasPrefix(r.Reason, ErrBroken.Error()) {
		t.Errorf("seq 2 after its break: %+v, want a nack %q", r, ErrBroken)
	}
	if n := forksOf(t, l, d.addr); n != 0 {
		t.Errorf("%d forks recorded, want none", n)
	}
	if cs := c.Counts(); cs.Breaks != 1 {
		t.Errorf("counts %+v, want 1 break", cs)
	}
}

// TestLossAnnouncedOverMQTT: issue 14 (c). A T-Box whose damaged outbox was
// re-seeded from its sidecar lost seqs 5 .. 93 and says so in its retained
// health report; its seq 94 (whose prev the collector never saw) is held,
// then stored as soon as the announcement arrives, with the range
// recorded as a chain break, not a fork, and without waiting for
// gap_timeout (1 h here).
func TestLossAnnouncedOverMQTT(t *testing.T) {
	broker := mqtttest.Start(t)
	l := newLedger(t, false)
	d := newDevice(t, nowBatch()-10)
	c, err := New(l, Config{ChainID: testChainID, Allow: allowSet{d.addr: true}}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	startCollector(t, c, MQTT{Broker: broker.URL(), ClientID: "collector-loss"})
	d.connect(broker.URL())
	for i := uint64(1); i <= 4; i++ {
		d.drainReplies()
		if r := d.send(d.next(1000)); r != (reply{Kind: "ack", Seq: i}) {
			t.Fatalf("seq %d: %+v", i, r)
		}
	}
	for range 89 { // seqs 5 .. 93, signed, never received
		d.advance(d.make(100))
	}
	d.batch++
	w94 := d.next(1500)
	d.drainReplies()
	d.publish(d.topic("att"), w94, false)
	d.quiet(time.Second, "seq 94 after seq 4")
	health := `{"status":"online","device":"` + d.addr.String() + `","agent":{"maybe_lost":{"from":5,"to":93}}}`
	d.publish(d.topic("health"), []byte(health), true)
	if r := d.await("the loss announcement"); r != (reply{Kind: "ack", Seq: 94}) {
		t.Fatalf("after the announcement: %+v, want an ack of seq 94", r)
	}
	rep, err := l.Device(d.addr)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Breaks) != 1 || rep.Breaks[0].From != 5 || rep.Breaks[0].To != 93 || rep.Breaks[0].Cause != ledger.CauseAnnounced {
		t.Errorf("breaks %+v, want 5 .. 93 announced", rep.Breaks)
	}
	if len(rep.Forks) != 0 || rep.Lost == nil || rep.Lost.From != 5 {
		t.Errorf("forks %+v, lost %+v; want no fork and the announcement", rep.Forks, rep.Lost)
	}
	d.batch++
	d.drainReplies()
	if r := d.send(d.next(1000)); r != (reply{Kind: "ack", Seq: 95}) {
		t.Errorf("seq 95: %+v", r)
	}
}

// TestHeldSurvivesRestart: a held seq is in the ledger file: a collector
// restarted on it stores the held seq when the missing one comes, and
// counts gap_timeout from the held seq's first arrival.
func TestHeldSurvivesRestart(t *testing.T) {
	path := t.TempDir() + "/collector.db"
	d := newDevice(t, nowBatch()-10)
	clock := &fakeClock{time.Now()}
	open := func() (ledger.Ledger, *Collector) {
		l, err := ledger.Open(path, &ledger.Options{ChainID: testChainID})
		if err != nil {
			t.Fatal(err)
		}
		c, err := New(l, Config{ChainID: testChainID, Allow: allowSet{d.addr: true}, Now: clock.Now}, testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		return l, c
	}
	l, c := open()
	mustAck(t, c, d.msg(d.next(100)), 1)
	a2 := d.make(200)
	d.advance(a2)
	w3 := d.next(300)
	a4 := d.make(400)
	d.advance(a4)
	w5 := d.next(500)
	for _, w := range [][]byte{w3, w5} {
		if rs, err := c.Process([]Message{d.msg(w)}); err != nil || len(rs) != 0 {
			t.Fatalf("held seq: replies %+v, err %v; want none", rs, err)
		}
	}
	l.Close()

	clock.t = clock.t.Add(30 * time.Minute)
	l, c = open()
	mustAck(t, c, d.msg(a2.AppendWire(nil)), 3) // 2, then the held 3; 5 waits for 4
	clock.t = clock.t.Add(31 * time.Minute)     // 61 min after seq 5 was first held
	mustAck(t, c, d.msg(w5), 5)
	if err := l.Audit(); err != nil {
		t.Fatal(err)
	}
	rep, err := l.Device(d.addr)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Breaks) != 1 || rep.Breaks[0].From != 4 || rep.Breaks[0].To != 4 || len(rep.Held) != 0 || len(rep.Records) != 4 {
		t.Errorf("breaks %+v, held %+v, %d records; want seq 4 broken, none held, 4 stored", rep.Breaks, rep.Held, len(rep.Records))
	}
	l.Close()
}

// TestDrawIgnoresIneligible: ineligible meters are stored but are not
// tickets: the draw of their batch counts only the eligible ones, and its
// re-run from the stored attestations gives the recorded result.
func TestDrawIgnoresIneligible(t *testing.T) {
	G := draw.Genesis + 500
	clock := &fakeClock{batchTime(G + 3)}
	l := newLedger(t, false)
	A, B := newDevice(t, G), newDevice(t, G)
	seed := draw.Seed{0x14}
	c, err := New(l, Config{ChainID: testChainID, Allow: allowSet{A.addr: true, B.addr: true}, Seed: seed, Winners: 50, Now: clock.Now}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	mustAck(t, c, A.msg(A.next(1000)), 1)
	mustAck(t, c, B.msg(B.next(42_803_053_630, func(a *signer.Attestation) { a.Flags = signer.FlagJump })), 1)
	mustAck(t, c, B.msg(B.next(68_440, func(a *signer.Attestation) { a.Flags = signer.FlagClock })), 2)
	if v := verdictOf(t, l, B.addr, 1); v.Eligible {
		t.Fatalf("B seq 1 verdict %+v, want ineligible", v)
	}
	got, err := c.DrawClosed()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Batch != G || got[0].Total != 1000 || got[0].Entries != 1 {
		t.Fatalf("draws %+v, want batch G with A's 1000 tickets only", got)
	}
	for _, a := range got[0].Awards {
		if a.Device != A.addr {
			t.Errorf("award to %s, whose meters are ineligible", a.Device)
		}
	}
	r, err := Redraw(l, seed, 50, G)
	if err != nil || !r.Match() {
		t.Errorf("re-run: %+v, %v; want the recorded draw", r, err)
	}
}

// TestAnyOrderAcrossCollectors: two collectors on one broker and one
// ledger receive a device's seqs in shuffled order (README §C7: "in
// whatever order"); every seq is stored exactly once, in seq order, with
// no chain break, and the device gets the ack of its last seq.
func TestAnyOrderAcrossCollectors(t *testing.T) {
	broker := mqtttest.Start(t)
	l := newLedger(t, false)
	const n = 20
	d := newDevice(t, nowBatch()-n-2)
	var cs []*Collector
	for i := range 2 {
		c, err := New(l, Config{ChainID: testChainID, Allow: allowSet{d.addr: true}}, testLog(t).With("collector", i))
		if err != nil {
			t.Fatal(err)
		}
		startCollector(t, c, MQTT{Broker: broker.URL(), ClientID: "collector-order-" + string(rune('a'+i))})
		cs = append(cs, c)
	}
	d.connect(broker.URL())
	wires := make([][]byte, n)
	for i := range wires {
		wires[i] = d.next(uint64(100 * (i + 1)))
		d.batch++
	}
	order := []int{19, 3, 0, 7, 12, 1, 18, 2, 5, 4, 9, 8, 6, 11, 10, 15, 13, 17, 14, 16}
	for _, i := range order {
		d.publish(d.topic("att"), wires[i], false)
	}
	deadline := time.After(20 * time.Second)
	for done := false; !done; {
		select {
		case r := <-d.replies:
			if r.Kind != "ack" {
				t.Fatalf("reply %+v, want only acks", r)
			}
			done = r.Seq == n
		case <-deadline:
			t.Fatalf("no ack of seq %d; head %d", n, headOf(t, l, d.addr).Seq)
		}
	}
	var stored, held uint64
	for _, c := range cs {
		stored += c.Counts().Accepted
		held += c.Counts().Held
	}
	rep, err := l.Device(d.addr)
	if err != nil {
		t.Fatal(err)
	}
	if stored != n || len(rep.Records) != n || len(rep.Breaks) != 0 || len(rep.Held) != 0 {
		t.Errorf("%d stored by the collectors, %d records, breaks %+v, held %+v; want %d, %d, none, none", stored, len(rep.Records), rep.Breaks, rep.Held, n, n)
	}
	if held == 0 {
		t.Errorf("nothing was held: the order was not shuffled")
	}
}
