// Package cantest provides a loopback CAN bus for tests.
package cantest

import (
	"context"
	"sync"

	"github.com/csop/tbox/can"
)

// Bus is an in-memory CAN bus: every frame sent is delivered to every open
// Receiver whose filter passes it, in the order sent. Delivery never blocks
// the sender and drops nothing (each Receiver queues without bound). A Bus
// is safe for concurrent use; its zero value is not usable, call NewBus.
type Bus struct {
	mu     sync.Mutex
	rxs    map[*Receiver]struct{}
	closed bool
}

// NewBus returns an open bus with no receivers.
func NewBus() *Bus { return &Bus{rxs: make(map[*Receiver]struct{})} }

// Send delivers a copy of f to every open receiver that passes it. The
// frame is delivered as given: Send stamps no time and checks nothing. After
// Close, Send does nothing.
func (b *Bus) Send(f can.Frame) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	for r := range b.rxs {
		if r.useFilter && !r.filter.Match(&f) {
			continue
		}
		r.push(f)
	}
}

// Close ends the bus: every receiver returns the frames already queued for
// it, then Receive returns false with a nil Err. Receivers made after Close
// end at once.
func (b *Bus) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for r := range b.rxs {
		r.end(false)
	}
	clear(b.rxs)
	return nil
}

// Option configures a Receiver.
type Option func(*Receiver)

// WithFilter makes the receiver see only the frames f passes, as a socket
// with f's kernel filter would: remote and error frames never pass, and a nil
// or empty f passes nothing. Without this option the receiver sees every
// frame sent, error frames included.
func WithFilter(f *can.Filter) Option {
	return func(r *Receiver) { r.filter, r.useFilter = f, true }
}

// WithContext ends the receiver when ctx is done: a blocked Receive returns
// false and Err returns ctx.Err().
func WithContext(ctx context.Context) Option {
	return func(r *Receiver) { r.ctx = ctx }
}

// Receiver reads frames from a Bus like bufio.Scanner, with the same shape
// as can.Reader and socketcan.Conn:
//
//	for r.Receive() { f := r.Frame() ... }; err := r.Err()
//
// Receive blocks until a frame arrives, the receiver or the bus is closed,
// or its context is done. One goroutine receives; Close may be called from
// any.
type Receiver struct {
	bus       *Bus
	filter    *can.Filter
	useFilter bool
	ctx       context.Context
	wake      chan struct{} // capacity 1: "something changed"
	frame     can.Frame     // owned by the receiving goroutine

	mu      sync.Mutex
	queue   []can.Frame
	drain   bool // bus closed: return what is queued, then stop
	stopped bool // closed or context done: stop now
	err     error
}

// NewReceiver attaches a receiver to the bus. It sees the frames sent from
// now on.
func (b *Bus) NewReceiver(opts ...Option) *Receiver {
	r := &Receiver{bus: b, wake: make(chan struct{}, 1)}
	for _, opt := range opts {
		opt(r)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		r.drain = true
	} else {
		b.rxs[r] = struct{}{}
	}
	return r
}

func (r *Receiver) push(f can.Frame) {
	r.mu.Lock()
	if !r.stopped && !r.drain {
		r.queue = append(r.queue, f)
	}
	r.mu.Unlock()
	r.signal()
}

func (r *Receiver) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// end stops the receiver: now (Close, context) or after the queue (bus closed).
func (r *Receiver) end(now bool) {
	r.mu.Lock()
	if now {
		r.stopped = true
		r.queue = nil
	} else {
		r.drain = true
	}
	r.mu.Unlock()
	r.signal()
}

// Receive waits for the next frame. It returns false once the receiver is
// closed, the bus is closed and the frames queued before have been
// returned, or the context is done.
func (r *Receiver) Receive() bool {
	var done <-chan struct{}
	if r.ctx != nil {
		done = r.ctx.Done()
	}
	for {
		select {
		case <-done:
			r.mu.Lock()
			if !r.stopped {
				r.stopped, r.err, r.queue = true, r.ctx.Err(), nil
			}
			r.mu.Unlock()
			r.detach()
			return false
		default:
		}
		r.mu.Lock()
		switch {
		case r.stopped:
			r.mu.Unlock()
			return false
		case len(r.queue) > 0:
			r.frame = r.queue[0]
			r.queue = r.queue[1:]
			r.mu.Unlock()
			return true
		case r.drain:
			r.mu.Unlock()
			return false
		}
		r.mu.Unlock()
		select {
		case <-r.wake:
		case <-done:
		}
	}
}

// Frame returns the frame of the last successful Receive; the next Receive
// overwrites it.
func (r *Receiver) Frame() *can.Frame { return &r.frame }

// Err returns ctx.Err() if the receiver's context ended it, else nil.
func (r *Receiver) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Close detaches the receiver from the bus and drops its queued frames; a
// blocked Receive returns false with a nil Err. Close is idempotent.
func (r *Receiver) Close() error {
	r.end(true)
	r.detach()
	return nil
}

func (r *Receiver) detach() {
	r.bus.mu.Lock()
	delete(r.bus.rxs, r)
	r.bus.mu.Unlock()
}
