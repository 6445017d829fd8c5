package shell

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
)

// maxLogLine bounds one line kept by a LogRing, in bytes.
const maxLogLine = 512

// LogRing keeps the last n log lines for the shell's log command. It is an
// io.Writer (one or more lines per Write) and makes a slog.Handler that
// tees records to it; it is safe for concurrent use and never blocks for
// longer than a copy.
type LogRing struct {
	mu    sync.Mutex
	lines []string
	next  int
	full  bool
}

// NewLogRing returns a ring of the last n lines (at least 1).
func NewLogRing(n int) *LogRing {
	return &LogRing{lines: make([]string, max(n, 1))}
}

// Write adds each line of p (a trailing newline is not an empty line).
// Lines longer than 512 bytes are cut.
func (r *LogRing) Write(p []byte) (int, error) {
	n := len(p)
	p = bytes.TrimRight(p, "\n")
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(p) > 0 {
		line := p
		if i := bytes.IndexByte(p, '\n'); i >= 0 {
			line, p = p[:i], p[i+1:]
		} else {
			p = nil
		}
		if len(line) > maxLogLine {
			line = line[:maxLogLine]
		}
		r.lines[r.next] = string(line)
		r.next++
		if r.next == len(r.lines) {
			r.next, r.full = 0, true
		}
	}
	return n, nil
}

// Lines returns up to n of the most recent lines, oldest first; n <= 0
// means all that are kept.
func (r *LogRing) Lines(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	have := r.next
	if r.full {
		have = len(r.lines)
	}
	if n <= 0 || n > have {
		n = have
	}
	out := make([]string, 0, n)
	for i := have - n; i < have; i++ {
		j := i
		if r.full {
			j = (r.next + i) % len(r.lines)
		}
		out = append(out, r.lines[j])
	}
	return out
}

// Handler returns a slog.Handler that passes every record to next and also
// writes those at level or above to the ring, in slog's text format.
func (r *LogRing) Handler(next slog.Handler, level slog.Leveler) slog.Handler {
	return &teeHandler{a: next, b: slog.NewTextHandler(r, &slog.HandlerOptions{Level: level})}
}

// teeHandler passes records to two handlers.
type teeHandler struct {
	_    [0]func() // not comparable: no generated equality function (tboxd size)
	a, b slog.Handler
}

func (h *teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.a.Enabled(ctx, l) || h.b.Enabled(ctx, l)
}

func (h *teeHandler) Handle(ctx context.Context, rec slog.Record) error {
	var err error
	if h.a.Enabled(ctx, rec.Level) {
		err = h.a.Handle(ctx, rec.Clone())
	}
	if h.b.Enabled(ctx, rec.Level) {
		h.b.Handle(ctx, rec) // the ring cannot fail
	}
	return err
}

func (h *teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &teeHandler{a: h.a.WithAttrs(as), b: h.b.WithAttrs(as)}
}

func (h *teeHandler) WithGroup(name string) slog.Handler {
	return &teeHandler{a: h.a.WithGroup(name), b: h.b.WithGroup(name)}
}
