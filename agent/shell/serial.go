package shell

import (
	"context"
	"errors"
	"time"

	"go.bug.st/serial"
)

// ErrNoDevice is returned by Run when Config.Device is empty.
var ErrNoDevice = errors.New("no serial device configured")

const (
	// stableSession is how long a session must last for the next reopen
	// to start again from ReopenMin.
	stableSession = 5 * time.Second
	// closeWait bounds the wait for the session's reader and writer after
	// the port is closed: a write blocked in the kernel (a pty nobody
	// reads) may not end at close, and the agent must not wait for it.
	closeWait = 2 * time.Second
)

// Run serves the shell on the serial device cfg.Device (8N1 at cfg.Baud;
// no modem-control lines are touched, so a pty or a virtio console works
// too). When the port fails or vanishes (a USB adapter unplugged) it
// reopens it with backoff, for as long as ctx lasts; it returns ctx.Err()
// and no other error, except ErrNoDevice at once.
func (s *Shell) Run(ctx context.Context) error {
	if s.cfg.Device == "" {
		return ErrNoDevice
	}
	delay := s.cfg.ReopenMin
	var lastErr string
	for ctx.Err() == nil {
		port, err := serial.Open(s.cfg.Device, &serial.Mode{BaudRate: s.cfg.Baud})
		if err != nil {
			if msg := err.Error(); msg != lastErr {
				s.log.Warn("diagnostic shell: cannot open the serial device; retrying", "device", s.cfg.Device, "err", err)
				lastErr = msg
			} else {
				s.log.Debug("diagnostic shell: serial device still not there", "device", s.cfg.Device, "err", err)
			}
		} else {
			lastErr = ""
			s.log.Info("diagnostic shell listening", "device", s.cfg.Device, "baud", s.cfg.Baud)
			start := time.Now()
			err = s.servePort(ctx, port)
			if ctx.Err() != nil {
				break
			}
			s.log.Warn("diagnostic shell: serial port failed; reopening", "device", s.cfg.Device, "err", err)
			if time.Since(start) >= stableSession {
				delay = s.cfg.ReopenMin
			}
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
		delay = min(delay*2, s.cfg.ReopenMax)
	}
	return ctx.Err()
}

// servePort runs a session on port, then closes it.
func (s *Shell) servePort(ctx context.Context, port serial.Port) error {
	wait, err := s.serve(ctx, port)
	port.Close()
	done := make(chan struct{})
	go func() {
		wait()
		close(done)
	}()
	t := time.NewTimer(closeWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.log.Warn("diagnostic shell: a write to the closed port is still blocked", "device", s.cfg.Device)
	}
	return err
}
