package cantest

import (
	"context"
	"net"
	"time"

	"github.com/csop/tbox/can"
)

// ReadFrame waits for the next frame like Receive, and also until ctx is
// done: the shape of socketcan.Conn.ReadFrame. A closed receiver or bus
// gives net.ErrClosed.
func (r *Receiver) ReadFrame(ctx context.Context) (can.Frame, error) {
	var done <-chan struct{}
	if r.ctx != nil {
		done = r.ctx.Done()
	}
	for {
		r.mu.Lock()
		switch {
		case r.stopped:
			r.mu.Unlock()
			return can.Frame{}, net.ErrClosed
		case len(r.queue) > 0:
			f := r.queue[0]
			r.queue = r.queue[1:]
			r.mu.Unlock()
			return f, nil
		case r.drain:
			r.mu.Unlock()
			return can.Frame{}, net.ErrClosed
		}
		r.mu.Unlock()
		select {
		case <-r.wake:
		case <-ctx.Done():
			return can.Frame{}, ctx.Err()
		case <-done:
			return can.Frame{}, r.ctx.Err()
		}
	}
}

// Port is one node's connection to a Bus: it reads what its filter passes
// and writes to every receiver, like a SocketCAN socket.
type Port struct {
	*Receiver
	bus *Bus
}

// NewPort attaches a node to the bus.
func (b *Bus) NewPort(opts ...Option) *Port {
	return &Port{Receiver: b.NewReceiver(opts...), bus: b}
}

// WriteFrame sends a copy of f, stamped with the wall clock when it has no
// time.
func (p *Port) WriteFrame(f *can.Frame) error {
	c := *f
	if c.Time.IsZero() {
		c.Time = time.Now()
	}
	p.bus.Send(c)
	return nil
}
