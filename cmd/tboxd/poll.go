package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/csop/tbox/agent/poll"
	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/agent/shell"
	"github.com/csop/tbox/can"
	"github.com/csop/tbox/can/socketcan"
)

// poller is the odometer request of a profile whose odometer is asked for
// (source "obd" or "uds"): the poller and the socket it writes through.
type poller struct {
	p         *poll.Poller
	cfg       *profile.Poll
	transport string // "kernel" or "user", for the shell
	iface     string
	close     func() error
	guard     *poll.Guard
}

// openPoller opens the request's transport on the profile's bus: the
// kernel's ISO-TP socket (can.isotp = "kernel", or "auto" where the kernel
// has it), else userspace ISO-TP on a raw socket of its own ("user"). A
// log replay asks nothing: nil.
func openPoller(cfg *Config, p *profile.Profile, log *slog.Logger) (*poller, error) {
	pc, ok := p.Poll()
	if !ok || cfg.CAN.Replay != "" {
		return nil, nil
	}
	iface := pc.Bus
	if iface == "" {
		iface = cfg.CAN.Interface
	}
	log = log.With("bus", iface, "request_id", "0x"+pc.Request.String(), "response_id", "0x"+pc.Response.String())
	mode := cfg.CAN.ISOTP
	if mode == "auto" || mode == "kernel" {
		c, err := socketcan.DialISOTP(iface, pc.Request, pc.Response)
		switch {
		case err == nil:
			log.Info("odometer asked over the kernel's ISO-TP", "source", pc.Source, "period", pc.Period)
			return &poller{p: poll.New(pc, c, poll.WithLogger(log)), cfg: pc, transport: "kernel", iface: iface, close: c.Close}, nil
		case mode == "kernel" || !errors.Is(err, socketcan.ErrNoISOTP):
			return nil, errorf("odometer request on %s: %w", iface, err)
		}
		log.Info("kernel ISO-TP not available (module can-isotp): userspace ISO-TP", "err", err)
	}
	c, err := socketcan.Open(iface, rawOptions(can.NewFilter(pc.Response), 2*time.Second, log)...)
	if err != nil {
		return nil, errorf("odometer request on %s: %w", iface, err)
	}
	tr, err := poll.NewRawTransport(c, pc)
	if err != nil {
		c.Close()
		return nil, err
	}
	log.Info("odometer asked over userspace ISO-TP", "source", pc.Source, "period", pc.Period)
	return &poller{p: poll.New(pc, tr, poll.WithLogger(log)), cfg: pc, transport: "user", iface: iface, close: c.Close, guard: tr.Guard()}, nil
}

// start runs the poller until the returned stop is called.
func (pl *poller) start(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pl.p.Run(ctx)
	}()
	return func() {
		cancel()
		wg.Wait()
		pl.close()
	}
}

// status is the poller's line of the shell's status.
func (pl *poller) status() shell.PollStatus {
	s := &pl.p.S
	ps := shell.PollStatus{
		Known: true, Source: pl.cfg.Source, Bus: pl.iface, Transport: pl.transport,
		Request: pl.cfg.Request.String(), Response: pl.cfg.Response.String(), Period: pl.cfg.Period,
		Requests: s.Requests.Load(), Answers: s.Answers.Load(), Timeouts: s.Timeouts.Load(),
		Negative: s.Negative.Load(), Pending: s.Pending.Load(), Refused: s.Refused.Load(), SendErrors: s.SendErrs.Load(),
		LastNRC: byte(s.LastNRC.Load()), Silent: s.Silent.Load(),
	}
	if t := s.LastReply.Load(); t != 0 {
		ps.LastAnswer = fromNanos(t)
	}
	if pl.guard != nil {
		ps.Blocked = pl.guard.Refused.Load()
	}
	return ps
}
