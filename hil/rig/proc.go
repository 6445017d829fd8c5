package rig

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// commandContext is exec.CommandContext with the child killed when this
// process dies, so that no broker or collector outlives the rig.
func commandContext(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// procSet is the host processes the rig started; killAll ends those still
// running, each by its own pid.
type procSet struct {
	mu    sync.Mutex
	procs []*proc
}

// proc is one host process.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func (s *procSet) start(name string, cmd *exec.Cmd) (*proc, error) {
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	pr := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		pr.err = cmd.Wait()
		close(pr.done)
	}()
	s.mu.Lock()
	s.procs = append(s.procs, pr)
	s.mu.Unlock()
	return pr, nil
}

func (s *procSet) killAll() {
	s.mu.Lock()
	procs := s.procs
	s.procs = nil
	s.mu.Unlock()
	for _, pr := range procs {
		pr.terminate(3 * time.Second)
	}
}

// exited reports whether the process has ended.
func (pr *proc) exited() bool {
	select {
	case <-pr.done:
		return true
	default:
		return false
	}
}

// terminate sends SIGTERM, then SIGKILL after d; it reports whether the
// process ended on SIGTERM (or had already ended).
func (pr *proc) terminate(d time.Duration) bool {
	if pr.exited() {
		return true
	}
	pr.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-pr.done:
		return true
	case <-time.After(d):
		pr.cmd.Process.Kill()
		<-pr.done
		return false
	}
}

// stop sends SIGTERM and waits up to d for a clean exit.
func (pr *proc) stop(d time.Duration) error {
	if pr.exited() {
		return fmt.Errorf("%s had already exited: %v", pr.name, pr.err)
	}
	if !pr.terminate(d) {
		return fmt.Errorf("%s did not stop within %v of SIGTERM: killed", pr.name, d)
	}
	if pr.err != nil {
		return fmt.Errorf("%s: %w", pr.name, pr.err)
	}
	return nil
}

// LogFields parses the key=value pairs of a slog text line (tboxd's and
// the collector's logs); values may be quoted. A line without pairs gives
// an empty map.
func LogFields(line string) map[string]string {
	kv := map[string]string{}
	s := line
	for s != "" {
		s = strings.TrimLeft(s, " ")
		eq := strings.IndexByte(s, '=')
		if eq <= 0 || strings.ContainsAny(s[:eq], " \"") {
			break
		}
		key := s[:eq]
		s = s[eq+1:]
		var val string
		if strings.HasPrefix(s, `"`) {
			if q, err := strconv.QuotedPrefix(s); err == nil {
				val, _ = strconv.Unquote(q)
				s = s[len(q):]
			} else {
				val, s = s, ""
			}
		} else if sp := strings.IndexByte(s, ' '); sp >= 0 {
			val, s = s[:sp], s[sp:]
		} else {
			val, s = s, ""
		}
		kv[key] = val
	}
	return kv
}
