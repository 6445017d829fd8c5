package rig

import (
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"
)

// Prompt matches the diagnostic shell's prompt (locked or in service mode).
var Prompt = regexp.MustCompile(`tbox[>#] $`)

// Terminal is a technician's terminal on the guest's diagnostic shell: the
// host's end of the virtio console (GuestOptions.Serial).
type Terminal struct {
	c   net.Conn
	buf []byte
	log strings.Builder
}

// DialSerial connects to the guest's serial socket; qemu creates it as it
// starts, so dial right after Boot, before the guest's shell writes.
func DialSerial(sock string, timeout time.Duration) (*Terminal, error) {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.Dial("unix", sock)
		if err == nil {
			return &Terminal{c: c}, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("serial socket %s: %w", sock, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Until reads until the output so far matches re and returns it, without
// carriage returns.
func (s *Terminal) Until(re *regexp.Regexp, timeout time.Duration) (string, error) {
	s.c.SetReadDeadline(time.Now().Add(timeout))
	b := make([]byte, 4096)
	for !re.Match(s.buf) {
		n, err := s.c.Read(b)
		s.buf = append(s.buf, b[:n]...)
		s.log.Write(b[:n])
		if err != nil {
			return "", fmt.Errorf("serial port (so far %q): %w", s.buf, err)
		}
	}
	out := strings.ReplaceAll(string(s.buf), "\r", "")
	s.buf = s.buf[:0]
	return out, nil
}

// Run types a command line and returns its output, without the echo and
// the next prompt.
func (s *Terminal) Run(line string) (string, error) {
	if _, err := s.c.Write([]byte(line + "\r")); err != nil {
		return "", fmt.Errorf("%s: %w", line, err)
	}
	out, err := s.Until(Prompt, 20*time.Second)
	if err != nil {
		return "", fmt.Errorf("%s: %w", line, err)
	}
	out = Prompt.ReplaceAllString(out, "")
	return strings.TrimPrefix(out, line+"\n"), nil
}

// Session returns everything the terminal received.
func (s *Terminal) Session() string { return s.log.String() }

// Close closes the connection.
func (s *Terminal) Close() error { return s.c.Close() }
