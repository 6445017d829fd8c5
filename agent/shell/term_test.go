package shell

import (
	"errors"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// term is the technician's side of a serial line: it reads everything the
// shell writes into a buffer, and waits for text to appear in it.
type term struct {
	t    testing.TB
	f    *os.File
	mu   sync.Mutex
	buf  []byte
	mark int // start of what expect has not consumed yet
	done chan struct{}
}

func newTerm(t testing.TB, f *os.File) *term {
	tm := &term{t: t, f: f, done: make(chan struct{})}
	go tm.read()
	t.Cleanup(func() {
		f.Close()
		<-tm.done
	})
	return tm
}

func (tm *term) read() {
	defer close(tm.done)
	b := make([]byte, 4096)
	for {
		n, err := tm.f.Read(b)
		if n > 0 {
			tm.mu.Lock()
			tm.buf = append(tm.buf, b[:n]...)
			tm.mu.Unlock()
		}
		if errors.Is(err, os.ErrClosed) {
			return
		}
		if err != nil {
			// EIO while no one holds the slave open (before the shell
			// opens it, between reopens): wait and read again.
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func (tm *term) send(s string) {
	tm.t.Helper()
	if _, err := tm.f.Write([]byte(s)); err != nil {
		tm.t.Fatalf("write to the terminal: %v", err)
	}
}

const expectTimeout = 15 * time.Second

// expect waits until the output not consumed yet matches re, consumes it up
// to the end of the match and returns it.
func (tm *term) expect(re *regexp.Regexp) string {
	tm.t.Helper()
	deadline := time.Now().Add(expectTimeout)
	for {
		tm.mu.Lock()
		rest := string(tm.buf[tm.mark:])
		if loc := re.FindStringIndex(rest); loc != nil {
			tm.mark += loc[1]
			tm.mu.Unlock()
			return rest[:loc[1]]
		}
		tm.mu.Unlock()
		if time.Now().After(deadline) {
			tm.t.Fatalf("no %q from the shell after %s; unread output: %q", re, expectTimeout, tail(rest, 600))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (tm *term) expectText(s string) string {
	tm.t.Helper()
	return tm.expect(regexp.MustCompile(regexp.QuoteMeta(s)))
}

var promptRE = regexp.MustCompile(`\r\ntbox[>#] $|^tbox[>#] $`)

// cmd types a line and returns what the shell answered before its next
// prompt (without the echoed line), and that prompt.
func (tm *term) cmd(line string) (out, prompt string) {
	tm.t.Helper()
	tm.send(line + "\r")
	got := tm.expect(regexp.MustCompile(`\r\ntbox[>#] `))
	got, _ = strings.CutPrefix(got, line+"\r\n")
	i := strings.LastIndex(got, "tbox")
	return strings.TrimSuffix(got[:i], "\r\n"), got[i:]
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
