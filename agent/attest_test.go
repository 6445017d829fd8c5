package agent_test

import (
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/csop/tbox/agent"
	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/can"
	"github.com/csop/tbox/hil/vehicle"
	"github.com/csop/tbox/signer"
	"github.com/csop/tbox/store"
)

const chainID = 20220807

var start = time.Unix(1700000000, 0)

func loadEV(t testing.TB) *profile.Profile {
	t.Helper()
	p, err := profile.Load(filepath.Join("profile", "testdata", "ev.toml"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newKey(t testing.TB) *signer.FileKey {
	t.Helper()
	path := filepath.Join(t.TempDir(), "device.key")
	if _, err := signer.GenerateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	k, err := signer.LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// drive returns the frames of a scenario (kept: they are few at these
// rates) and its ground truth.
func drive(t testing.TB, p *profile.Profile, s vehicle.Scenario) ([]can.Frame, vehicle.Truth) {
	t.Helper()
	var frames []can.Frame
	tr, err := s.Frames(p, func(f *can.Frame) error {
		frames = append(frames, *f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return frames, tr
}

// chain collects attestations as OnDurable reports them and checks each
// against the one before: seq+1, prev = digest of seq-1, signature good.
type chain struct {
	t    testing.TB
	atts []*signer.Attestation
	last [32]byte
}

func (c *chain) onDurable(rec store.Record, a *signer.Attestation) {
	c.t.Helper()
	if want := uint64(len(c.atts)) + 1; a.Seq != want || rec.Seq != want {
		c.t.Errorf("attestation seq %d (record %d), want %d", a.Seq, rec.Seq, want)
	}
	if a.Prev != c.last {
		c.t.Errorf("seq %d: prev 0x%x, want the digest of seq %d, 0x%x", a.Seq, a.Prev, a.Seq-1, c.last)
	}
	if err := signer.Verify(chainID, a); err != nil {
		c.t.Errorf("seq %d: %v", a.Seq, err)
	}
	parsed, err := signer.ParseWire(rec.Wire)
	if err != nil || signer.Digest(chainID, parsed) != rec.Digest {
		c.t.Errorf("seq %d: record wire/digest disagree: %v", a.Seq, err)
	}
	c.last = signer.Digest(chainID, a)
	c.atts = append(c.atts, a)
}

func (c *chain) meters() int64 {
	var m int64
	for _, a := range c.atts {
		m += int64(a.Meters)
	}
	return m
}

// feed gives the attester the frames from ResumeTime on, as a replay does.
func feed(t testing.TB, att *agent.Attester, frames []can.Frame) {
	t.Helper()
	resume := att.ResumeTime()
	for i := range frames {
		if frames[i].Time.Before(resume) {
			continue
		}
		if err := att.Frame(&frames[i]); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
}

func openStore(t testing.TB, dir string, opts *store.Options) *store.Store {
	t.Helper()
	st, err := store.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestAttesterRestart cuts a drive into four runs of the Attester over one
// outbox: each run resumes the chain (seq continues, prev links) and the
// meters of all runs add up to the ground truth. A run ends with Stop (a
// SIGTERM) or without (the power gone; the outbox keeps its last state).
func TestAttesterRestart(t *testing.T) {
	p := loadEV(t)
	key := newKey(t)
	frames, truth := drive(t, p, vehicle.Scenario{
		Seed: 3, Start: start, Duration: 3 * time.Hour, ModeChanges: true, StopAndGo: true,
		OdometerHz: 5, SpeedHz: 5, ModeHz: 1,
	})
	cuts := []int{0, len(frames) / 5, len(frames) / 2, 2 * len(frames) / 3, len(frames)}

	for _, tc := range []struct {
		name string
		open func(t *testing.T) (agent.Outbox, func())
		stop bool
	}{
		{"memory outbox, stop", memoryOutbox(), true},
		{"memory outbox, no stop", memoryOutbox(), false},
		{"store, stop", realStore(), true},
		{"store, no stop", realStore(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &chain{t: t}
			for run := 0; run+1 < len(cuts); run++ {
				ob, closeOb := tc.open(t)
				att, err := agent.NewAttester(agent.AttesterConfig{ChainID: chainID, Profile: p, OnDurable: c.onDurable}, key, ob)
				if err != nil {
					t.Fatal(err)
				}
				if att.Restarted() != (run > 0) {
					t.Errorf("run %d: Restarted() = %v", run, att.Restarted())
				}
				if run > 0 && !att.ResumeTime().After(frames[0].Time) {
					t.Errorf("run %d: resumes at %v, before the drive's first frame", run, att.ResumeTime())
				}
				before := len(c.atts)
				chunk := frames[cuts[run]:cuts[run+1]]
				if run > 0 {
					// The frames of the previous run after its last
					// checkpoint come again, as a replay of the log would.
					chunk = frames[:cuts[run+1]]
				}
				feed(t, att, chunk)
				if tc.stop || run+2 == len(cuts) {
					if err := att.Stop(chunk[len(chunk)-1].Time); err != nil {
						t.Fatal(err)
					}
				}
				if len(c.atts) == before {
					t.Errorf("run %d made no attestation", run)
				}
				if att.Made() != uint64(len(c.atts)-before) {
					t.Errorf("run %d: Made() = %d, OnDurable saw %d", run, att.Made(), len(c.atts)-before)
				}
				closeOb()
			}
			if got := c.meters(); got != truth.Meters {
				t.Errorf("meters %d over %d attestations, ground truth %d", got, len(c.atts), truth.Meters)
			}
		})
	}
}

func memoryOutbox() func(t *testing.T) (agent.Outbox, func()) {
	var ob *agent.MemoryOutbox
	return func(t *testing.T) (agent.Outbox, func()) {
		if ob == nil {
			ob = &agent.MemoryOutbox{}
		}
		return ob, func() {}
	}
}

func realStore() func(t *testing.T) (agent.Outbox, func()) {
	var dir string
	return func(t *testing.T) (agent.Outbox, func()) {
		if dir == "" {
			dir = t.TempDir()
		}
		st := openStore(t, dir, nil)
		return st, func() {
			if err := st.Close(); err != nil {
				t.Error(err)
			}
		}
	}
}

// fullOutbox is a store whose Append fails with store.ErrFull while full is
// set, though its Stats say there is room: the worst case, a span in hand
// and no room for it.
type fullOutbox struct {
	*store.Store
	full    atomic.Bool
	refused int
}

func (f *fullOutbox) Append(rec store.Record, state []byte) error {
	if f.full.Load() {
		f.refused++
		return store.ErrFull
	}
	return f.Store.Append(rec, state)
}

// TestAttesterPendingFlushedOnRestart: a span the outbox refused is kept
// pending in the saved state; the next start makes it durable before
// anything else, and no meter is lost or counted twice.
func TestAttesterPendingFlushedOnRestart(t *testing.T) {
	p := loadEV(t)
	key := newKey(t)
	frames, truth := drive(t, p, vehicle.Scenario{
		Seed: 4, Start: start, Duration: 2 * time.Hour, ModeChanges: true,
		OdometerHz: 5, SpeedHz: 5, ModeHz: 1,
	})
	dir := t.TempDir()
	c := &chain{t: t}
	cfg := agent.AttesterConfig{ChainID: chainID, Profile: p, OnDurable: c.onDurable}

	ob := &fullOutbox{Store: openStore(t, dir, nil)}
	att, err := agent.NewAttester(cfg, key, ob)
	if err != nil {
		t.Fatal(err)
	}
	half := len(frames) / 2
	feed(t, att, frames[:half])
	made := len(c.atts)
	if made == 0 {
		t.Fatal("no attestation in the first hour")
	}
	ob.full.Store(true)
	end := half + len(frames)/8 // 15 more minutes: a batch boundary at least
	for i := half; i < end; i++ {
		if err := att.Frame(&frames[i]); err != nil {
			t.Fatalf("frame %d with the outbox full: %v", i, err)
		}
	}
	if err := att.Stop(frames[end-1].Time); err != nil {
		t.Fatalf("stop with the outbox full: %v", err)
	}
	if ob.refused == 0 {
		t.Fatal("the outbox never refused an attestation: nothing is pending")
	}
	if len(c.atts) != made {
		t.Fatalf("%d attestations made while the outbox was full", len(c.atts)-made)
	}
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}

	// Restart with room: the pending span is stored at once, by NewAttester.
	st := openStore(t, dir, nil)
	defer st.Close()
	att, err = agent.NewAttester(cfg, key, st)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.atts) == made {
		t.Fatal("the pending span was not made durable at start-up")
	}
	if head, _ := st.Last(); head != uint64(len(c.atts)) {
		t.Errorf("store head %d, %d attestations reported durable", head, len(c.atts))
	}
	feed(t, att, frames)
	if err := att.Stop(frames[len(frames)-1].Time); err != nil {
		t.Fatal(err)
	}
	if got := c.meters(); got != truth.Meters {
		t.Errorf("meters %d, ground truth %d", got, truth.Meters)
	}
}

// TestAttesterOutboxCap fills a small store to its cap while driving: the
// Attester holds the distance instead of failing; after the collector's ack
// (store.Ack) drains the outbox, one CATCHUP span (flag 0x10, batches > 1)
// covers the held batches with exactly their meters, and nothing is lost.
func TestAttesterOutboxCap(t *testing.T) {
	p := loadEV(t)
	key := newKey(t)
	frames, truth := drive(t, p, vehicle.Scenario{
		Seed: 5, Start: start, Duration: 4 * time.Hour, ModeChanges: true, StopAndGo: true,
		OdometerHz: 5, SpeedHz: 5, ModeHz: 1,
	})
	const maxRecords = 8
	st := openStore(t, t.TempDir(), &store.Options{MaxRecords: maxRecords})
	defer st.Close()
	c := &chain{t: t}
	var online bool // the collector acks each attestation as it comes
	onDurable := func(rec store.Record, a *signer.Attestation) {
		c.onDurable(rec, a)
		if online {
			if _, err := st.Ack(rec.Seq); err != nil {
				t.Error(err)
			}
		}
	}
	att, err := agent.NewAttester(agent.AttesterConfig{ChainID: chainID, Profile: p, OnDurable: onDurable}, key, st)
	if err != nil {
		t.Fatal(err)
	}
	// Drive with the collector away until the outbox holds back: no
	// attestation for an hour.
	i := 0
	var heldSince time.Time
	for ; i < len(frames); i++ {
		n := len(c.atts)
		if err := att.Frame(&frames[i]); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if len(c.atts) != n || heldSince.IsZero() {
			heldSince = frames[i].Time
		}
		if frames[i].Time.Sub(heldSince) > time.Hour {
			break
		}
	}
	if i == len(frames) {
		t.Fatal("the outbox never filled")
	}
	s := st.Stats()
	if s.Depth == 0 || s.Depth > maxRecords {
		t.Fatalf("outbox depth %d at the cap %d", s.Depth, maxRecords)
	}
	held := len(c.atts)

	// The collector is back and acks everything; the agent's next tick
	// sees the room.
	online = true
	head, _ := st.Last()
	if _, err := st.Ack(head); err != nil {
		t.Fatal(err)
	}
	if err := att.Tick(frames[i].Time); err != nil {
		t.Fatal(err)
	}
	for i++; i < len(frames); i++ {
		if err := att.Frame(&frames[i]); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	if err := att.Stop(frames[len(frames)-1].Time); err != nil {
		t.Fatal(err)
	}
	if len(c.atts) == held {
		t.Fatal("nothing attested after the ack")
	}
	catchup := c.atts[held]
	if catchup.Flags&signer.FlagCatchup == 0 || catchup.Batches <= 1 {
		t.Fatalf("first attestation after the ack: flags %v, batches %d; want CATCHUP over several batches",
			signer.FlagNames(catchup.Flags), catchup.Batches)
	}
	if catchup.Batches < 6 {
		t.Errorf("the CATCHUP span covers %d batches, the outbox held back for over an hour", catchup.Batches)
	}
	// Its meters are the ground truth's over the batches it covers.
	var want int64
	for _, b := range truth.Batches {
		if uint64(b.Batch) >= catchup.Batch && uint64(b.Batch) < catchup.Batch+uint64(catchup.Batches) {
			want += b.Meters
		}
	}
	if int64(catchup.Meters) != want {
		t.Errorf("CATCHUP span over batches %d..%d: %d m, ground truth %d m",
			catchup.Batch, catchup.Batch+uint64(catchup.Batches)-1, catchup.Meters, want)
	}
	// No other attestation overlaps it, and after it, one batch each.
	for _, a := range c.atts {
		if a != catchup && a.Batch >= catchup.Batch && a.Batch < catchup.Batch+uint64(catchup.Batches) {
			t.Errorf("seq %d (batch %d) overlaps the CATCHUP span", a.Seq, a.Batch)
		}
	}
	for _, a := range c.atts[held+1:] {
		if a.Batches != 1 {
			t.Errorf("seq %d after the catch-up covers %d batches", a.Seq, a.Batches)
		}
	}
	if got := c.meters(); got != truth.Meters {
		t.Errorf("meters %d, ground truth %d", got, truth.Meters)
	}
	if s := st.Stats(); s.Full || s.Depth > maxRecords {
		t.Errorf("outbox at the end: depth %d, full %v", s.Depth, s.Full)
	}
}

// TestAttesterNoProfile: a config without a profile is refused.
func TestAttesterNoProfile(t *testing.T) {
	_, err := agent.NewAttester(agent.AttesterConfig{ChainID: chainID}, newKey(t), &agent.MemoryOutbox{})
	if err == nil {
		t.Fatal("NewAttester without a profile: no error")
	}
}

// TestMemoryOutboxSeq: the MemoryOutbox refuses a seq that is not head+1,
// as the store does.
func TestMemoryOutboxSeq(t *testing.T) {
	var ob agent.MemoryOutbox
	if err := ob.Append(store.Record{Seq: 1, Wire: []byte("a")}, []byte("s1")); err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint64{1, 3} {
		err := ob.Append(store.Record{Seq: seq}, nil)
		var se *store.SeqError
		if !errors.As(err, &se) || se.Want != 2 {
			t.Errorf("append seq %d after seq 1: %v, want a SeqError wanting 2", seq, err)
		}
	}
	if s, _ := ob.State(); string(s) != "s1" {
		t.Errorf("state %q after a refused append, want %q", s, "s1")
	}
	if _, err := ob.Get(2); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(2): %v, want ErrNotFound", err)
	}
}
