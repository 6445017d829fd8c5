package hil

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/can"
	"github.com/csop/tbox/hil/vehicle"
)

// Helpers shared by the scenarios that drive the real binaries in the guest.

// evProfile returns the host paths of the sample profile and its DBC, which
// must sit side by side in the guest too (the DBC path is relative).
func evProfile() (toml, dbc string, err error) {
	root, err := RepoRoot()
	if err != nil {
		return "", "", err
	}
	d := filepath.Join(root, "agent", "profile", "testdata")
	return filepath.Join(d, "ev.toml"), filepath.Join(d, "ev.dbc"), nil
}

// chunkedDrive is a simulated drive cut into one gzipped candump log per
// 10-minute batch, so that a guest can be fed the drive from a given batch
// on, at a chosen pace.
type chunkedDrive struct {
	Batches []int64          // batches that have frames, ascending
	Files   map[string]int64 // host path of each chunk -> its batch
	Bytes   int64            // candump text, before compression
	Truth   vehicle.Truth
}

// chunkName is the file name of a batch's chunk, in the host directory and
// in the guest.
func chunkName(batch int64) string { return strconv.FormatInt(batch, 10) + ".gz" }

// writeChunkedDrive plays the scenario s with the profile (the same code as
// vsim) into dir.
func writeChunkedDrive(dir string, p *profile.Profile, s vehicle.Scenario) (*chunkedDrive, error) {
	d := &chunkedDrive{Files: map[string]int64{}}
	var (
		cur  int64 = -1
		file *os.File
		zw   *gzip.Writer
		cw   *can.Writer
		cnt  countWriter
	)
	closeChunk := func() error {
		if file == nil {
			return nil
		}
		err := errors.Join(cw.Flush(), zw.Close(), file.Close())
		file = nil
		return err
	}
	write := func(f *can.Frame) error {
		b := f.Time.Unix() / vehicle.BatchSeconds
		if b != cur {
			if b < cur {
				return fmt.Errorf("frame at %v goes back to batch %d after %d", f.Time, b, cur)
			}
			if err := closeChunk(); err != nil {
				return err
			}
			path := filepath.Join(dir, chunkName(b))
			var err error
			if file, err = os.Create(path); err != nil {
				return err
			}
			zw, _ = gzip.NewWriterLevel(file, gzip.BestSpeed)
			cnt.w = zw
			cw = can.NewWriter(&cnt)
			cur = b
			d.Batches = append(d.Batches, b)
			d.Files[path] = b
		}
		return cw.Write(f)
	}
	truth, err := s.Frames(p, write)
	if cerr := closeChunk(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("drive: %w", err)
	}
	d.Truth, d.Bytes = truth, cnt.n
	return d, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// consoleLines is an Options.Console writer that keeps the guest's complete
// lines (a line cut short by a power cut is left out) and lets the host
// wait for the n-th line that matches.
type consoleLines struct {
	echo func(string) // called with each complete line; may be nil

	mu      sync.Mutex
	partial []byte
	lines   []string
	changed chan struct{} // closed and replaced at every new line
}

func newConsoleLines(echo func(string)) *consoleLines {
	return &consoleLines{echo: echo, changed: make(chan struct{})}
}

func (c *consoleLines) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.partial = append(c.partial, p...)
	for {
		i := strings.IndexByte(string(c.partial), '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(c.partial[:i])
		c.partial = c.partial[i+1:]
		c.lines = append(c.lines, line)
		if c.echo != nil {
			c.echo(line)
		}
		close(c.changed)
		c.changed = make(chan struct{})
	}
}

// Lines returns the complete lines so far.
func (c *consoleLines) Lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.lines...)
}

// errEnded: the guest ended before the awaited line.
var errEnded = errors.New("guest ended first")

// waitLine waits for the n-th line (n >= 1) for which match is true. It
// returns errEnded when ended is closed first, ctx.Err() when ctx ends.
func (c *consoleLines) waitLine(ctx context.Context, ended <-chan struct{}, n int, match func(string) bool) error {
	for {
		c.mu.Lock()
		k := 0
		for _, l := range c.lines {
			if match(l) {
				k++
			}
		}
		ch := c.changed
		c.mu.Unlock()
		if k >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ended:
			return errEnded
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// between returns the lines strictly between the first line equal to begin
// and the next line equal to end; ok is false without both markers.
func between(lines []string, begin, end string) (in []string, ok bool) {
	for i, l := range lines {
		if l != begin {
			continue
		}
		for j := i + 1; j < len(lines); j++ {
			if lines[j] == end {
				return lines[i+1 : j], true
			}
		}
		return nil, false
	}
	return nil, false
}

// since formats a duration for the figures.
func since(t time.Time) time.Duration { return time.Since(t).Round(10 * time.Millisecond) }
