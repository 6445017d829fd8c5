package shell

import "sync"

// outQueue is the session's bounded output buffer. The session appends to
// it and never waits; one writer goroutine drains it to the port. When the
// terminal does not read (flow stopped, nobody attached) and the buffer is
// full, new output is dropped and a marker says so once there is room.
type outQueue struct {
	mu      sync.Mutex
	buf     []byte
	max     int
	dropped bool
	ready   chan struct{} // one slot: data waiting
}

const droppedMarker = "\r\n[output dropped: the terminal is not reading]\r\n"

func newOutQueue(max int) *outQueue {
	return &outQueue{max: max, ready: make(chan struct{}, 1)}
}

func (q *outQueue) write(p []byte) {
	if len(p) == 0 {
		return
	}
	q.mu.Lock()
	need := len(p)
	if q.dropped {
		need += len(droppedMarker)
	}
	if len(q.buf)+need > q.max {
		q.dropped = true
		q.mu.Unlock()
		return
	}
	if q.dropped {
		q.buf = append(q.buf, droppedMarker...)
		q.dropped = false
	}
	q.buf = append(q.buf, p...)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// take moves the queued bytes to dst (reusing its memory) and returns it.
func (q *outQueue) take(dst []byte) []byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	dst = append(dst[:0], q.buf...)
	q.buf = q.buf[:0]
	return dst
}

// printable makes text safe for a terminal: every byte outside printable
// ASCII becomes \xNN, so nothing shown (a nack reason from the backend, a
// path, a log line) can carry an escape sequence to the technician's
// terminal. Newlines become CRLF (a raw serial line has no ONLCR).
func printable(s string) string {
	// One append per byte (a strings.Builder's WriteString and WriteByte
	// are inlined at each call: tboxd size).
	const hexd = "0123456789abcdef"
	b := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		esc := s[i : i+1]
		switch {
		case c == '\n':
			esc = "\r\n"
		case c == '\t':
			esc = " "
		case c >= 0x20 && c < 0x7f:
		default:
			esc = `\x` + hexd[c>>4:c>>4+1] + hexd[c&15:c&15+1]
		}
		b = append(b, esc...)
	}
	return string(b)
}
