//go:build linux

package socketcan

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/csop/tbox/can"
)

// Conn is a CAN_RAW socket bound to one interface. One goroutine reads
// (Receive, ReadFrame); any number may write and call Stats.
//
// The socket is not on the Go runtime's poller: there, every frame queued
// wakes the poller's thread (edge-triggered epoll) even while the reader
// lets frames gather (WithCoalesce). The reader takes frames with
// non-blocking recvmmsg and, when the socket is empty, waits in poll(2) on
// its own thread, beside an eventfd that Close, Reopen, a lost interface
// and a cancelled context signal.
type Conn struct {
	iface string
	opts  options

	mu           sync.Mutex
	f            *os.File // nil while the interface is down and not yet reopened
	rc           syscall.RawConn
	down         bool // a Down event was sent and no Up since
	eventsClosed bool
	closed       atomic.Bool
	done         chan struct{} // closed by Close: stops the reopen loop
	events       chan Event

	// Reader state, owned by the reading goroutine. One recvmmsg fills up
	// to rxBatch slots; read hands them out one by one before the next call.
	rx       [rxBatch]rxSlot
	iovs     [rxBatch]unix.Iovec
	msgs     [rxBatch]unix.Mmsghdr
	nmsg     int       // messages the last recvmmsg returned
	next     int       // the next of them to decode
	rxFile   *os.File  // the socket they came from
	short    bool      // the last batch emptied the socket's queue
	rxAt     time.Time // when it was taken (WithCoalesce)
	coalesce *time.Timer
	pfds     [2]unix.PollFd

	// The reader's wake-up: an eventfd, -1 once closed. rmu is held by the
	// reader for a whole read, so that Close frees the eventfd only when
	// no read can poll it; wkmu orders writes to it with its closing.
	wake     int
	wkmu     sync.Mutex
	rmu      sync.Mutex
	rerr     error
	readFn   func(uintptr) bool
	frame    can.Frame
	err      error
	lastOvfl uint32   // the kernel's drop counter at the last frame of ovflFile
	ovflFile *os.File // the socket lastOvfl belongs to

	// Writer state, guarded by wmu.
	wmu     sync.Mutex
	wbuf    [fdMTU]byte
	wlen    int
	werr    error
	writeFn func(uintptr) bool

	n counters
}

// rxBatch is how many messages one recvmmsg may return. Under load the
// socket queue holds several frames when the reader wakes: taking them in
// one system call, not one call (and one poller round trip) each, is what
// keeps the CPU per frame at or below candump's. 32 slots are 6.4 KiB.
const rxBatch = 32

// rxSlot is the memory of one received message: the frame and its control
// data (a timestamp and the drop counter need 56 bytes on 64-bit).
type rxSlot struct {
	buf [fdMTU]byte
	oob [128]byte
}

// Write retry on ENOBUFS (a full TX queue).
const (
	writeRetryBudget = time.Second
	writeRetryMin    = 100 * time.Microsecond
	writeRetryMax    = 10 * time.Millisecond
)

// errWoken is the read callback's result when the eventfd ended the wait.
var errWoken = errors.New("woken")

// Open opens a CAN_RAW socket on the interface. It fails, naming the
// interface, when the interface does not exist (ErrNoInterface), is down
// (ErrDown) or is not a CAN device.
func Open(iface string, opts ...Option) (*Conn, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	c := &Conn{iface: iface, opts: o, done: make(chan struct{}), events: make(chan Event, o.eventBuf)}
	c.readFn = c.recv
	c.writeFn = c.send
	for i := range c.msgs {
		c.iovs[i].Base = &c.rx[i].buf[0]
		c.iovs[i].SetLen(fdMTU)
		c.msgs[i].Hdr.Iov = &c.iovs[i]
		c.msgs[i].Hdr.SetIovlen(1)
	}
	f, rc, err := c.openSocket()
	if err != nil {
		return nil, opError("open", iface, err)
	}
	c.wake, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		f.Close()
		return nil, opError("open", iface, errorf("eventfd: %w", err))
	}
	c.f, c.rc = f, rc
	return c, nil
}

// Interface returns the name of the interface the Conn is bound to.
func (c *Conn) Interface() string { return c.iface }

// openSocket creates, configures and binds a socket on c.iface.
func (c *Conn) openSocket() (*os.File, syscall.RawConn, error) {
	ifi, err := net.InterfaceByName(c.iface)
	if err != nil {
		return nil, nil, ErrNoInterface
	}
	if ifi.Flags&net.FlagUp == 0 {
		return nil, nil, ErrDown
	}
	if c.opts.fd {
		if err := checkFDMTU(c.iface, ifi.MTU); err != nil {
			return nil, nil, err
		}
	}
	// A blocking socket, so that os.NewFile leaves it off the runtime's
	// poller; every receive and send passes MSG_DONTWAIT and never blocks.
	fd, err := unix.Socket(unix.AF_CAN, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.CAN_RAW)
	if err != nil {
		return nil, nil, errorf("socket: %w", err)
	}
	if err := c.configure(fd); err != nil {
		unix.Close(fd)
		return nil, nil, err
	}
	if err := unix.Bind(fd, &unix.SockaddrCAN{Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return nil, nil, errorf("bind: %w", err)
	}
	f := os.NewFile(uintptr(fd), "socketcan:"+c.iface)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, nil, errorf("raw conn: %w", err)
	}
	return f, rc, nil
}

// configure installs the options on a fresh socket.
func (c *Conn) configure(fd int) error {
	o := &c.opts
	if o.fd {
		if err := unix.SetsockoptInt(fd, unix.SOL_CAN_RAW, unix.CAN_RAW_FD_FRAMES, 1); err != nil {
			return errorf("CAN_RAW_FD_FRAMES: %w", err)
		}
	}
	if o.filter != nil {
		rules := o.filter.Rules()
		kf := make([]unix.CanFilter, len(rules))
		for i, r := range rules {
			kf[i] = unix.CanFilter{Id: r.ID, Mask: r.Mask}
		}
		if err := unix.SetsockoptCanRawFilter(fd, unix.SOL_CAN_RAW, unix.CAN_RAW_FILTER, kf); err != nil {
			return errorf("CAN_RAW_FILTER (%d rules): %w", len(kf), err)
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_CAN_RAW, unix.CAN_RAW_ERR_FILTER, int(o.errMask)); err != nil {
		return errorf("CAN_RAW_ERR_FILTER: %w", err)
	}
	// 64-bit timestamps where the kernel has them (>= 5.1), else the native timespec.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS_NEW, 1); err != nil {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
			return errorf("SO_TIMESTAMPNS: %w", err)
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1); err != nil {
		return errorf("SO_RXQ_OVFL: %w", err)
	}
	if o.rcvbuf > 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, o.rcvbuf); err != nil {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, o.rcvbuf); err != nil {
				return errorf("SO_RCVBUF %d: %w", o.rcvbuf, err)
			}
		}
	}
	return nil
}

// current returns the open socket, nil while reopening.
func (c *Conn) current() (*os.File, syscall.RawConn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.f, c.rc
}

// Receive reads the next data frame, blocking until one arrives. It returns
// false when the Conn was closed (Err is nil then) or on an error (Err says
// which). Error frames are not returned: they become Events.
func (c *Conn) Receive() bool {
	if c.err != nil {
		return false
	}
	if err := c.read(context.Background()); err != nil {
		if !errors.Is(err, ErrClosed) {
			c.err = err
		}
		return false
	}
	return true
}

// Frame returns the frame read by the last successful Receive. It is
// overwritten by the next Receive or ReadFrame.
func (c *Conn) Frame() *can.Frame { return &c.frame }

// Err returns the error that ended Receive, nil if the Conn was closed.
func (c *Conn) Err() error { return c.err }

// ReadFrame reads the next data frame. Cancelling ctx makes it return
// promptly with ctx's error; closing the Conn with an error matching
// net.ErrClosed.
func (c *Conn) ReadFrame(ctx context.Context) (can.Frame, error) {
	if err := c.read(ctx); err != nil {
		return can.Frame{}, err
	}
	return c.frame, nil
}

// read reads until a data frame is in c.frame, reopening the socket when the
// interface goes away. Messages left from the last batch come first: they
// were received before anything that happened to the socket since.
func (c *Conn) read(ctx context.Context) error {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		if c.closed.Load() {
			return opError("read", c.iface, ErrClosed)
		}
		if err := ctx.Err(); err != nil {
			return opError("read", c.iface, err)
		}
		if c.next < c.nmsg {
			i := c.next
			c.next++
			if c.rxFile != c.ovflFile {
				c.ovflFile, c.lastOvfl = c.rxFile, 0 // a new socket counts from zero
			}
			if c.decode(i) {
				return nil
			}
			continue
		}
		f, rc := c.current()
		if f == nil {
			if err := c.reopen(ctx); err != nil {
				return opError("read", c.iface, err)
			}
			continue
		}
		if c.short && c.opts.coalesce > 0 {
			c.short = false
			if err := c.gather(ctx); err != nil {
				return opError("read", c.iface, err)
			}
			continue // closed or reopened meanwhile: look again
		}
		var stop func() bool
		if ctx.Done() != nil {
			stop = context.AfterFunc(ctx, c.wakeReader)
		}
		err := rc.Read(c.readFn)
		if stop != nil {
			stop()
		}
		if err == nil {
			err = c.rerr
		}
		if err != nil {
			if c.closed.Load() {
				return opError("read", c.iface, ErrClosed)
			}
			if cur, _ := c.current(); cur != f {
				continue // a writer or Reopen replaced the socket
			}
			if errors.Is(err, errWoken) {
				// ctx is checked at the top; else a late wake-up of an
				// earlier read's cancellation: wait again.
				continue
			}
			if isDownErr(err) && c.opts.reopen {
				c.markDown(f, err)
				continue
			}
			return opError("read", c.iface, err)
		}
		c.rxFile = f
	}
}

// recv is the read callback: it takes whatever the socket holds, up to
// rxBatch messages, in one recvmmsg without allocation, and when there is
// nothing waits in poll until the socket is readable or has an error, or
// the eventfd is signalled (c.rerr = errWoken). Without coalescing, a short
// batch means the queue was empty, so the next call polls first (poll is
// level-triggered: a frame queued meanwhile returns at once). It always
// returns true: the file is not on the runtime's poller.
func (c *Conn) recv(fd uintptr) bool {
	c.rerr, c.nmsg, c.next = nil, 0, 0
	if c.short && c.opts.coalesce == 0 {
		c.short = false
		if !c.wait(fd) {
			return true
		}
	}
	for {
		if c.recvmmsg(fd) {
			return true
		}
		if !c.wait(fd) {
			return true
		}
	}
}

// wait blocks in poll until the socket is readable or has an error
// (true), or the eventfd was signalled (false, c.rerr = errWoken; the
// signal is consumed).
func (c *Conn) wait(fd uintptr) bool {
	c.pfds[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	c.pfds[1] = unix.PollFd{Fd: int32(c.wake), Events: unix.POLLIN}
	for {
		_, err := unix.Poll(c.pfds[:], -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			c.rerr = errorf("poll: %w", err)
			return false
		}
		if c.pfds[1].Revents != 0 {
			var b [8]byte
			unix.Read(c.wake, b[:])
			c.rerr = errWoken
			return false
		}
		if c.pfds[0].Revents&unix.POLLNVAL != 0 {
			c.rerr = unix.EBADF
			return false
		}
		return true
	}
}

// wakeReader interrupts the reader's poll, or makes its next one return
// at once.
func (c *Conn) wakeReader() {
	c.wkmu.Lock()
	defer c.wkmu.Unlock()
	if c.wake >= 0 {
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		unix.Write(c.wake, one[:])
	}
}

// recvmmsg takes up to rxBatch messages from the socket; it reports
// false when there was none (EAGAIN), true with c.nmsg set or c.rerr.
func (c *Conn) recvmmsg(fd uintptr) bool {
	for i := range c.msgs {
		h := &c.msgs[i].Hdr
		h.Control = &c.rx[i].oob[0]
		h.SetControllen(len(c.rx[i].oob))
		h.Flags = 0
		c.msgs[i].Len = 0
	}
	// A raw system call: it never blocks (MSG_DONTWAIT), so the scheduler
	// need not know. Through entersyscall, a batch that takes longer than
	// sysmon's 20 µs tick hands the P to another thread and back, and that
	// churn cost as much CPU as the frames themselves in the guest.
	n, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&c.msgs[0])), rxBatch, unix.MSG_DONTWAIT, 0, 0)
	for e == unix.EINTR {
		n, _, e = unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&c.msgs[0])), rxBatch, unix.MSG_DONTWAIT, 0, 0)
	}
	if e == unix.EAGAIN {
		return false
	}
	if e != 0 {
		c.rerr = e
	} else {
		c.nmsg = int(n)
		c.n.reads.Add(1)
		if c.short = c.nmsg < rxBatch; c.short && c.opts.coalesce > 0 {
			c.rxAt = time.Now()
		}
	}
	return true
}

// gather waits until WithCoalesce's interval since the last receive has
// passed, while frames gather in the socket; ctx and Close end it early.
func (c *Conn) gather(ctx context.Context) error {
	d := c.opts.coalesce - time.Since(c.rxAt)
	if d <= 0 {
		return nil
	}
	if c.coalesce == nil {
		c.coalesce = time.NewTimer(d)
	} else {
		c.coalesce.Reset(d)
	}
	select {
	case <-c.coalesce.C:
		return nil
	case <-c.done:
		c.coalesce.Stop()
		return ErrClosed
	case <-ctx.Done():
		c.coalesce.Stop()
		return ctx.Err()
	}
}

// decode turns message i of the batch into c.frame, or into events. It
// reports whether c.frame holds a data frame.
func (c *Conn) decode(i int) bool {
	m := &c.msgs[i]
	if m.Hdr.Flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 || m.Len > fdMTU {
		c.n.malformed.Add(1)
		return false
	}
	if err := unmarshalFrame(c.rx[i].buf[:m.Len], &c.frame); err != nil {
		c.n.malformed.Add(1)
		return false
	}
	ts, ovfl, haveOvfl := parseCmsgs(c.rx[i].oob[:min(uint64(m.Hdr.Controllen), uint64(len(c.rx[i].oob)))])
	if haveOvfl {
		// Cumulative since the socket was opened; uint32 arithmetic handles the wrap.
		c.n.dropped.Add(uint64(ovfl - c.lastOvfl))
		c.lastOvfl = ovfl
	}
	if ts.IsZero() {
		ts = time.Now()
	}
	c.frame.Time = ts
	c.frame.Bus = c.iface
	if c.frame.IsError() {
		c.n.errorFrames.Add(1)
		for _, e := range ErrorEvents(&c.frame) {
			c.emit(e)
		}
		return false
	}
	c.n.frames.Add(1)
	c.n.bytes.Add(uint64(c.frame.Len))
	return true
}

// isDownErr reports whether a socket error means the interface went down or away.
func isDownErr(err error) bool {
	return errors.Is(err, unix.ENETDOWN) || errors.Is(err, unix.ENODEV) ||
		errors.Is(err, unix.ENXIO) || errors.Is(err, unix.EBADF)
}

// markDown drops the socket f after err and announces Down once.
func (c *Conn) markDown(f *os.File, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.f == f && f != nil {
		f.Close() // the close(2) waits for a read in progress to let go
		c.f, c.rc = nil, nil
		c.wakeReader()
	}
	if !c.down {
		c.down = true
		if errors.Is(err, errReopenAsked) {
			c.opts.log.Info("CAN socket closed for a reopen on request", "iface", c.iface)
		} else {
			c.opts.log.Warn("CAN interface down, reopening", "iface", c.iface, "err", err)
		}
		c.emitLocked(Event{Time: time.Now(), Bus: c.iface, Kind: Down, Err: err})
	}
}

// install makes f the Conn's socket unless another was installed meanwhile;
// it reports whether f was taken.
func (c *Conn) install(f *os.File, rc syscall.RawConn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() || c.f != nil {
		return false
	}
	c.f, c.rc = f, rc
	c.n.reopens.Add(1)
	if c.down {
		c.down = false
		c.opts.log.Info("CAN interface up again", "iface", c.iface)
		c.emitLocked(Event{Time: time.Now(), Bus: c.iface, Kind: Up})
	}
	return true
}

// reopen opens the socket again, retrying with backoff until it works, ctx
// is done or the Conn is closed.
func (c *Conn) reopen(ctx context.Context) error {
	bo := backoff{min: c.opts.backoffMin, max: c.opts.backoffMax}
	for {
		f, rc, err := c.openSocket()
		if err == nil {
			if !c.install(f, rc) {
				f.Close()
			}
			return nil
		}
		d := bo.next()
		c.opts.log.Debug("CAN reopen failed", "iface", c.iface, "err", err, "retry_in", d)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-c.done:
			t.Stop()
			return ErrClosed
		case <-t.C:
		}
	}
}

// errReopenAsked is the Err of the Down event of a Reopen.
var errReopenAsked = errors.New("reopen requested")

// Reopen closes the socket and opens a new one with the same options, as
// when the interface goes down and comes back: a Down and an Up event are
// emitted and Stats.Reopens counts it. A pending read carries on on the new
// socket; frames that arrive while no socket is open are lost. When the
// interface cannot be opened now (ErrDown, ErrNoInterface), Reopen returns
// that error and the reader keeps retrying with the reopen backoff, as
// after a real loss of the interface.
func (c *Conn) Reopen() error {
	if c.closed.Load() {
		return opError("reopen", c.iface, ErrClosed)
	}
	f, _ := c.current()
	if f != nil {
		c.markDown(f, errReopenAsked)
	}
	nf, nrc, err := c.openSocket()
	if err != nil {
		return opError("reopen", c.iface, err)
	}
	if !c.install(nf, nrc) {
		nf.Close() // the reader reopened first, or the Conn was closed
		if c.closed.Load() {
			return opError("reopen", c.iface, ErrClosed)
		}
	}
	return nil
}

// emit delivers an event without blocking and counts it.
func (c *Conn) emit(e Event) {
	c.mu.Lock()
	c.emitLocked(e)
	c.mu.Unlock()
}

func (c *Conn) emitLocked(e Event) {
	if int(e.Kind) < len(c.n.events) {
		c.n.events[e.Kind].Add(1)
	}
	if c.eventsClosed {
		return
	}
	select {
	case c.events <- e:
	default:
		c.n.eventsDropped.Add(1)
	}
}

// Events returns the channel of error and interface events. It is buffered
// (WithEventBuffer); events that find it full are dropped and counted. It is
// closed by Close.
func (c *Conn) Events() <-chan Event { return c.events }

// Stats returns the counters.
func (c *Conn) Stats() Stats { return c.n.snapshot() }

// WriteFrame sends a frame. A full TX queue (ENOBUFS) is retried with
// backoff for up to a second. When the interface went away and came back,
// the socket is reopened once, at once.
func (c *Conn) WriteFrame(fr *can.Frame) error {
	if fr.IsFD() && !c.opts.fd {
		return opError("write", c.iface, ErrFDDisabled)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	n, err := marshalFrame(c.wbuf[:], fr)
	if err != nil {
		return opError("write", c.iface, err)
	}
	c.wlen = n
	wait := backoff{min: writeRetryMin, max: writeRetryMax}
	var deadline time.Time
	reopened := false
	for {
		if c.closed.Load() {
			return opError("write", c.iface, ErrClosed)
		}
		f, rc := c.current()
		if f == nil {
			if reopened {
				return opError("write", c.iface, ErrDown)
			}
			reopened = true
			nf, nrc, err := c.openSocket()
			if err != nil {
				return opError("write", c.iface, err)
			}
			if !c.install(nf, nrc) {
				nf.Close()
			}
			continue
		}
		err := rc.Write(c.writeFn)
		if err == nil {
			err = c.werr
		}
		switch {
		case err == nil:
			c.n.txFrames.Add(1)
			c.n.txBytes.Add(uint64(fr.Len))
			return nil
		case c.closed.Load():
			return opError("write", c.iface, ErrClosed)
		case errors.Is(err, unix.ENOBUFS), errors.Is(err, unix.EAGAIN):
			now := time.Now()
			if deadline.IsZero() {
				deadline = now.Add(writeRetryBudget)
			} else if now.After(deadline) {
				return opError("write", c.iface, err)
			}
			c.n.txRetries.Add(1)
			t := time.NewTimer(wait.next())
			select {
			case <-c.done:
				t.Stop()
			case <-t.C:
			}
		case isDownErr(err) && c.opts.reopen && !reopened:
			if cur, _ := c.current(); cur == f {
				c.markDown(f, err)
			}
		default:
			if cur, _ := c.current(); cur != f && !reopened {
				continue // the reader replaced the socket under us
			}
			return opError("write", c.iface, err)
		}
	}
}

// send is the raw write callback.
func (c *Conn) send(fd uintptr) bool {
	waited := false
	for {
		err := unix.Sendto(int(fd), c.wbuf[:c.wlen], unix.MSG_DONTWAIT, nil)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN && !c.closed.Load() && !waited {
			// The socket's send buffer is full of frames not yet sent:
			// wait until it has room, as the runtime's poller would, up to
			// 50 ms; then WriteFrame retries like ENOBUFS, within its budget.
			pfd := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
			unix.Poll(pfd[:], 50)
			waited = true
			continue
		}
		c.werr = err
		return true
	}
}

// Close closes the socket, ends a pending read and any reopen loop, and
// closes the Events channel. Closing twice is a no-op.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed.Swap(true) {
		c.mu.Unlock()
		return nil
	}
	close(c.done)
	c.eventsClosed = true
	close(c.events)
	var err error
	if c.f != nil {
		err = c.f.Close()
		c.f, c.rc = nil, nil
	}
	c.mu.Unlock()

	// End a pending read, then free the eventfd once no read can poll it.
	c.wakeReader()
	c.rmu.Lock()
	c.wkmu.Lock()
	unix.Close(c.wake)
	c.wake = -1
	c.wkmu.Unlock()
	c.rmu.Unlock()
	if err != nil {
		return opError("close", c.iface, err)
	}
	return nil
}

// parseCmsgs reads the receive timestamp (SCM_TIMESTAMPNS, old or new
// layout) and the drop counter (SO_RXQ_OVFL) out of recvmsg's control data.
// Malformed control data is ignored: the result is then zero.
//
//	struct cmsghdr {
//	  0  size_t cmsg_len;    (4 bytes on 32-bit, 8 on 64-bit: header + data)
//	  P  int    cmsg_level;  (P = sizeof(size_t))
//	  P+4 int   cmsg_type;
//	  H  data...             (H = unix.SizeofCmsghdr)
//	};  the next header starts at CMSG_ALIGN(cmsg_len), aligned to sizeof(size_t)
func parseCmsgs(oob []byte) (ts time.Time, ovfl uint32, haveOvfl bool) {
	const (
		word = unix.SizeofPtr
		hdr  = unix.SizeofCmsghdr
	)
	ne := binary.NativeEndian
	for len(oob) >= hdr {
		var l uint64
		if word == 8 {
			l = ne.Uint64(oob)
		} else {
			l = uint64(ne.Uint32(oob))
		}
		if l < hdr || l > uint64(len(oob)) {
			break
		}
		level := int32(ne.Uint32(oob[word:]))
		typ := int32(ne.Uint32(oob[word+4:]))
		data := oob[hdr:l]
		if level == unix.SOL_SOCKET {
			switch typ {
			case unix.SO_TIMESTAMPNS_NEW, unix.SO_TIMESTAMPNS_OLD:
				switch len(data) {
				case 16: // struct __kernel_timespec, or timespec on 64-bit
					ts = time.Unix(int64(ne.Uint64(data)), int64(ne.Uint64(data[8:])))
				case 8: // struct timespec on 32-bit
					ts = time.Unix(int64(int32(ne.Uint32(data))), int64(int32(ne.Uint32(data[4:]))))
				}
			case unix.SO_RXQ_OVFL:
				if len(data) >= 4 {
					ovfl, haveOvfl = ne.Uint32(data), true
				}
			}
		}
		adv := (l + word - 1) &^ (word - 1)
		if adv >= uint64(len(oob)) {
			break
		}
		oob = oob[adv:]
	}
	return ts, ovfl, haveOvfl
}
