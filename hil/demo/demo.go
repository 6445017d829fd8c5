package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/csop/tbox/hil/rig"
	"github.com/csop/tbox/signer"
)

// clockMargin: the compressed drive ends about this long, less the
// compressed start-up and shutdown, before the host's now.
const clockMargin = 30 * time.Minute

// run is the whole demo. It returns a report (with Problems when a check
// failed) or an error when the demo could not run to its end.
func run(ctx context.Context, cfg Config) (rep *Report, err error) {
	start := time.Now()
	out := cfg.Out
	if out == nil {
		out = io.Discard
	}
	p := &printer{w: out, start: start}
	p.say("tbox demo: a %v drive of the seeded vehicle simulator (seed %d) at %gx, in the emulated ARM T-Box", cfg.Drive, cfg.Seed, cfg.Pace)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// 1. The rig: the kit (installs qemu and the guest's packages on a
	// fresh machine), the binaries, the device key on the collector's
	// allowlist.
	r, err := rig.New(ctx, rig.Options{Dir: cfg.Keep, Log: p.say, Verbose: cfg.Verbose})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	p.say("device key made: the T-Box is %s (on the collector's allowlist)", r.Device)

	// 2. Host side: broker, collector, and a capture of the topics.
	broker, err := r.StartBroker(ctx)
	if err != nil {
		return nil, err
	}
	w := &watcher{p: p}
	capt, err := r.CaptureMQTT(broker, "mqtt.jsonl", w.onMessage)
	if err != nil {
		return nil, err
	}
	coll, err := r.StartCollector(ctx, broker, rig.CollectorOptions{})
	if err != nil {
		return nil, err
	}
	p.say("collector running (seed %s…, %d winners per batch, draws each batch once it has ended)", rig.DrawSeed[:10], rig.Winners)

	// 3. The guest.
	g := newGuest(cfg, p)
	p.say("booting the T-Box: guest clock %s UTC (host's now - %v - %v), drive starts about %s",
		g.clock.UTC().Format("2006-01-02 15:04:05"), cfg.Drive, clockMargin, g.drive.Start.UTC().Format("15:04"))
	t := time.Now()
	facts, res, gerr := g.boot(ctx, r, broker)
	if res != nil {
		p.say("guest powered off after %v (booted in %v)", since(t), res.BootTime.Round(time.Millisecond))
	}

	if ctx.Err() != nil {
		return nil, fmt.Errorf("interrupted: %w", ctx.Err())
	}
	rep = &Report{Seed: cfg.Seed, Drive: cfg.Drive, Pace: cfg.Pace, Device: r.Device}
	defer func() {
		if rep != nil {
			rep.Elapsed = time.Since(start)
		}
	}()
	if gerr != nil {
		rep.problem("guest: %v", gerr)
	}
	rep.guestFacts(facts)

	// 4. Let the collector finish: every attestation acked, every batch
	// drawn; then stop it so that its database can be read.
	settle(ctx, capt, coll, r.Device, 20*time.Second)
	if err := coll.Stop(10 * time.Second); err != nil {
		rep.problem("collector: %v", err)
	}
	capt.Close()
	tr := rig.Analyze(capt.Messages(), r.Device)
	for _, seq := range tr.Order {
		a := tr.Atts[seq]
		rep.Attestations = append(rep.Attestations, &seenAtt{att: a, verified: signer.Verify(rig.ChainID, a), copies: tr.Copies[seq]})
	}
	slices.SortFunc(rep.Attestations, func(a, b *seenAtt) int { return int(a.att.Seq) - int(b.att.Seq) })
	rep.Nacks = tr.Nacks
	rep.AckedThrough = tr.AckedThrough
	for _, pr := range tr.Problems {
		rep.problem("mqtt: %s", pr)
	}

	// 5. The collector's view: stats and every batch's draw.
	if err := collectorResults(ctx, r, rep); err != nil {
		rep.problem("collector results: %v", err)
	}

	// 6. The simulator's truth, and every check.
	al, err := rig.AlignTruth(r.Profile, g.drive, facts.Epoch(), facts.FirstFrame, facts.Truth)
	if err != nil {
		rep.problem("truth: %v", err)
	} else {
		rep.Shift, rep.Expected, rep.TruthMeters = al.Shift, al.Expected, facts.Truth.Meters
	}
	rep.check(cfg)
	return rep, nil
}

// watcher shows the collector's replies as the capture sees them.
type watcher struct {
	p   *printer
	mu  sync.Mutex
	ack uint64
}

func (w *watcher) onMessage(m rig.Message) {
	switch {
	case strings.HasSuffix(m.Topic, "/ack"):
		var r struct {
			Seq uint64 `json:"seq"`
		}
		if json.Unmarshal(m.Bytes(), &r) != nil {
			return
		}
		w.mu.Lock()
		up := r.Seq > w.ack
		w.ack = max(w.ack, r.Seq)
		w.mu.Unlock()
		if up {
			w.p.say("collector: verified, stored and acked through seq %d", r.Seq)
		}
	case strings.HasSuffix(m.Topic, "/nack"):
		w.p.say("collector: REFUSED %s", m.Bytes())
	}
}

// settle waits until the collector has acked every attestation published
// and drawn every batch they cover, or until d has passed.
func settle(ctx context.Context, capt *rig.Capture, coll *rig.Collector, device signer.Address, d time.Duration) {
	capt.Wait(ctx, d, func(msgs []rig.Message) bool {
		tr := rig.Analyze(msgs, device)
		drawn := coll.Drawn()
		var maxSeq uint64
		for seq, a := range tr.Atts {
			maxSeq = max(maxSeq, seq)
			for i := uint32(0); i < a.Batches; i++ {
				if !drawn[a.Batch+uint64(i)] {
					return false
				}
			}
		}
		return tr.AckedThrough >= maxSeq
	})
}

// collectorResults reads the stopped collector's database: its stats and
// the draw of every batch the attestations cover.
func collectorResults(ctx context.Context, r *rig.Rig, rep *Report) error {
	st, err := r.CollectorStats(ctx)
	if err != nil {
		return err
	}
	rep.Stats = st
	rep.Draws = map[uint64]*rig.Draw{}
	for _, s := range rep.Attestations {
		for i := uint32(0); i < s.att.Batches; i++ {
			bn := s.att.Batch + uint64(i)
			if rep.Draws[bn] != nil {
				continue
			}
			d, err := r.CollectorDraw(ctx, bn)
			if err != nil {
				return err
			}
			rep.Draws[bn] = d
		}
	}
	return nil
}

// printer writes progress lines stamped with the time since the start.
type printer struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

func (p *printer) say(format string, a ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "[%5.1fs] %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, a...))
}

func since(t time.Time) time.Duration { return time.Since(t).Round(100 * time.Millisecond) }
