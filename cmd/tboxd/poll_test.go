package main

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/csop/tbox/agent/poll"
	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/can"
	"github.com/csop/tbox/can/cantest"
	"github.com/csop/tbox/can/isotp"
)

// A technician (or an attacker on the serial line, in service mode too)
// tries every shell command and a few that do not exist, with arguments
// that look like frames, while the agent polls a UDS odometer: the agent
// writes nothing on the bus but its request and one flow control per
// answer, to the request ID, at the profile's period at most.
func TestShellCannotMakeThePollerSend(t *testing.T) {
	f := newShellFixture(t, "[shell]\ndevice = \"/dev/ttyS1\"\nservice_pubkey = %[1]q\n")
	p, err := profile.Load(filepath.Join("..", "..", "agent", "profile", "testdata", "ev_uds.toml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := p.Poll()
	f.parts.Profile = p
	bus := cantest.NewBus()
	defer bus.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The ECU answers every request with a two-frame answer.
	ecu := bus.NewPort(cantest.WithFilter(can.NewFilter(cfg.Request)))
	answer, _ := isotp.Segment(cfg.Response, cfg.Query.Response(12345678))
	go func() {
		for {
			fr, err := ecu.ReadFrame(ctx)
			if err != nil {
				return
			}
			if isotp.IsFlowControl(fr.Data[:fr.Len]) {
				ecu.WriteFrame(&answer[1])
			} else {
				ecu.WriteFrame(&answer[0])
			}
		}
	}()
	var mu sync.Mutex
	var written []can.Frame
	all := bus.NewReceiver(cantest.WithContext(ctx))
	go func() {
		for all.Receive() {
			if fr := all.Frame(); fr.ID != cfg.Response.ID {
				mu.Lock()
				written = append(written, *fr)
				mu.Unlock()
			}
		}
	}()
	tr, err := poll.NewRawTransport(bus.NewPort(cantest.WithFilter(can.NewFilter(cfg.Response))), cfg)
	if err != nil {
		t.Fatal(err)
	}
	pl := &poller{p: poll.New(cfg, tr), cfg: cfg, transport: "user", iface: "vcan0", close: func() error { return nil }, guard: tr.Guard()}
	f.parts.Poller = pl
	stop := pl.start(ctx)

	term := openShellTerm(t, f.shell(t))
	term.unlock(f.service)
	attempts := []string{
		"help", "status", "att last", "att show 1", "id", "config", "profile", "selftest", "log 5",
		"upload now", "reconnect", "reopen can", "reopen can vcan0", "outbox retry-nacked", "flush",
		"send 7E0#0211010000000000", "cansend vcan0 7E0#1101", "poll 0x7E0 0x2E 0xF1 0xA0", "uds 11 01",
		"obd 04", "request 7DF#0204", "write 7E0#3E00", "profile reload", "config set can.isotp user",
		"att show 7E0#1101", "log 7E0#2EF1A0", "reopen can 7E0#1101", "help 7E0#1101",
		strings.Repeat("7E0#1101 ", 40),
	}
	var status, prof string
	for _, a := range attempts {
		out := term.run(a)
		switch a {
		case "status":
			status = out
		case "profile":
			prof = out
		}
	}
	time.Sleep(3 * cfg.Period)
	stop()

	if !strings.Contains(status, "poll      uds 0x7E0 -> 0x7E8 on vcan0 every 200ms (user ISO-TP): answering") {
		t.Errorf("status has no poll line:\n%s", status)
	}
	if !strings.Contains(prof, "asks       uds request 22 F1 A0 to id 7E0, answer from id 7E8") {
		t.Errorf("profile does not show the request:\n%s", prof)
	}
	req, _ := isotp.SingleFrame(cfg.Request, cfg.Payload())
	fc := isotp.FlowControl(cfg.Request)
	mu.Lock()
	defer mu.Unlock()
	var reqs, fcs int
	var last time.Time
	for _, fr := range written {
		switch {
		case fr.String() == req.String():
			reqs++
			if !last.IsZero() && fr.Time.Sub(last) < profile.MinPollPeriod {
				t.Errorf("two requests %v apart", fr.Time.Sub(last))
			}
			last = fr.Time
		case fr.String() == fc.String():
			fcs++
		default:
			t.Errorf("the agent wrote %s", fr.String())
		}
	}
	if reqs < 2 || fcs > reqs {
		t.Errorf("%d requests, %d flow controls", reqs, fcs)
	}
	if pl.p.S.Answers.Load() == 0 {
		t.Error("no answer read")
	}
}
