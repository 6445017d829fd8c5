package collect

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/csop/tbox/cmd/collector/internal/draw"
	"github.com/csop/tbox/cmd/collector/internal/ledger"
	"github.com/csop/tbox/cmd/collector/internal/ledger/pgledger"
	"github.com/csop/tbox/cmd/collector/internal/ledger/pgledger/pgtest"
)

// ledgers are the two ledger implementations, each opened twice as two
// collector processes would (bbolt: one *Bolt shared, the file admits one
// process).
var ledgers = []struct {
	name string
	open func(t *testing.T) (ledger.Ledger, ledger.Ledger)
}{
	{"bbolt", func(t *testing.T) (ledger.Ledger, ledger.Ledger) {
		l := newLedger(t, true)
		return l, l
	}},
	{"postgres", func(t *testing.T) (ledger.Ledger, ledger.Ledger) {
		url := pgtest.DB(t)
		var ls [2]ledger.Ledger
		for i := range ls {
			l, err := pgledger.Open(context.Background(), url, &pgledger.Options{ChainID: testChainID})
			if err != nil {
				t.Fatal(err)
			}
			ls[i] = l
		}
		t.Cleanup(func() {
			if err := ls[0].Audit(); err != nil {
				t.Errorf("ledger audit: %v", err)
			}
			ls[0].Close()
			ls[1].Close()
		})
		return ls[0], ls[1]
	}},
}

// TestSideBySide: two collectors on one ledger, each given a random half
// of every device's seqs in a random order and in groups, at the same
// time: every seq is stored exactly once, no nack, every device's
// cumulative ack reaches its last seq, and nothing stays held.
func TestSideBySide(t *testing.T) {
	for _, lc := range ledgers {
		t.Run(lc.name, func(t *testing.T) {
			la, lb := lc.open(t)
			const devices, seqs = 10, 25
			allow := allowSet{}
			var msgs []Message
			for i := 0; i < devices; i++ {
				d := newDevice(t, nowBatch()-seqs-2)
				allow[d.addr] = true
				for s := 0; s < seqs; s++ {
					msgs = append(msgs, d.msg(d.next(1000)))
					d.batch++
				}
			}
			rand.Shuffle(len(msgs), func(i, j int) { msgs[i], msgs[j] = msgs[j], msgs[i] })
			var halves [2][]Message
			for _, m := range msgs {
				k := rand.IntN(2)
				halves[k] = append(halves[k], m)
			}
			var cs [2]*Collector
			for i, l := range []ledger.Ledger{la, lb} {
				c, err := New(l, Config{ChainID: testChainID, Allow: allow}, testLog(t))
				if err != nil {
					t.Fatal(err)
				}
				cs[i] = c
			}
			var mu sync.Mutex
			acked := map[string]uint64{}
			var nacks []Reply
			var wg sync.WaitGroup
			for i := range cs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					in := halves[i]
					for len(in) > 0 {
						n := min(1+rand.IntN(16), len(in))
						rs, err := cs[i].Process(in[:n])
						if err != nil {
							t.Error(err)
							return
						}
						in = in[n:]
						mu.Lock()
						for _, r := range rs {
							if !r.Ack() {
								nacks = append(nacks, r)
							} else if r.Seq > acked[r.Topic] {
								acked[r.Topic] = r.Seq
							}
						}
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			for _, r := range nacks {
				t.Errorf("nack %s seq %d: %v", r.Topic, r.Seq, r.Err)
			}
			if len(acked) != devices {
				t.Errorf("%d devices acked, want %d", len(acked), devices)
			}
			for topic, seq := range acked {
				if seq != seqs {
					t.Errorf("%s: acked up to %d, want %d", topic, seq, seqs)
				}
			}
			if got := cs[0].Counts().Accepted + cs[1].Counts().Accepted; got != devices*seqs {
				t.Errorf("%d stored by the two collectors, want %d", got, devices*seqs)
			}
			s, err := la.Stats()
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range s.Devices {
				if d.Head != seqs || d.Attestations != seqs || d.Held != 0 || d.Breaks != 0 {
					t.Errorf("device %s: head %d, %d stored, %d held, %d breaks", d.Device, d.Head, d.Attestations, d.Held, d.Breaks)
				}
			}
			if s.Forks != 0 {
				t.Errorf("%d forks", s.Forks)
			}
		})
	}
}

// TestDrawOnce: two collectors on one ledger draw the closed batches at
// the same time, while a third stores late attestations for them: each
// batch is drawn exactly once, and re-running any draw from the stored
// attestations gives the recorded one.
func TestDrawOnce(t *testing.T) {
	for _, lc := range ledgers {
		t.Run(lc.name, func(t *testing.T) {
			la, lb := lc.open(t)
			const devices, seqs = 6, 8
			allow := allowSet{}
			var msgs, late []Message
			b0 := nowBatch() - 40
			for i := 0; i < devices; i++ {
				d := newDevice(t, b0)
				allow[d.addr] = true
				for s := 0; s < seqs; s++ {
					msgs = append(msgs, d.msg(d.next(1000)))
					d.batch++
				}
				d.batch = b0 + seqs - 1 // the last batch again: tickets for a batch being drawn
				for s := 0; s < 3; s++ {
					late = append(late, d.msg(d.next(100)))
				}
			}
			seed := draw.Seed{7}
			far := func() time.Time { return time.Now().Add(24 * time.Hour) }
			var cs [3]*Collector
			for i, l := range []ledger.Ledger{la, lb, lb} {
				c, err := New(l, Config{ChainID: testChainID, Allow: allow, Seed: seed, Winners: 5, Now: far}, testLog(t))
				if err != nil {
					t.Fatal(err)
				}
				cs[i] = c
			}
			if _, err := cs[0].Process(msgs); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			var mu sync.Mutex
			drawn := map[uint64]int{}
			for i := 0; i < 2; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					res, err := cs[i].DrawClosed()
					if err != nil {
						t.Error(err)
					}
					mu.Lock()
					for _, r := range res {
						drawn[r.Batch]++
					}
					mu.Unlock()
				}()
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, m := range late {
					if rs, err := cs[2].Process([]Message{m}); err != nil {
						t.Error(err)
					} else if len(rs) != 1 || !rs[0].Ack() {
						t.Errorf("late attestation: %+v", rs)
					}
				}
			}()
			wg.Wait()
			for b := b0; b < b0+seqs; b++ {
				if drawn[b] != 1 {
					t.Errorf("batch %d drawn %d times, want once", b, drawn[b])
				}
				r, err := Redraw(la, seed, 5, b)
				if err != nil {
					t.Fatal(err)
				}
				if !r.Match() {
					t.Errorf("batch %d: re-run %+v differs from the recorded %+v", b, r.Result, r.Recorded)
				}
			}
			s, err := la.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if s.Draws != seqs || s.Undrawn != 0 {
				t.Errorf("%d draws, %d undrawn; want %d, 0", s.Draws, s.Undrawn, seqs)
			}
		})
	}
}
