package agent

import "time"

// ClockStep is how far the wall clock may step against the monotonic clock
// between two checks before it is untrustworthy (README §C1, CLOCK).
const ClockStep = 2 * time.Minute

// ClockCheck decides whether the wall clock is trustworthy: the kernel says
// it is synchronized, it does not read earlier than the agent's build time,
// and it has not stepped by more than ClockStep against the monotonic clock
// since the last check.
type ClockCheck struct {
	// Build is the agent's build time; zero disables that check.
	Build time.Time
	// Unsynced reports the kernel's STA_UNSYNC; nil uses the platform's
	// (adjtimex on Linux).
	Unsynced func() (bool, error)
	last     time.Time
}

// Untrusted checks the clock at now, which must come from time.Now (it
// carries the monotonic reading), and returns why it is untrustworthy, or
// "" when it is fine.
func (c *ClockCheck) Untrusted(now time.Time) string {
	last := c.last
	c.last = now
	unsynced := c.Unsynced
	if unsynced == nil {
		unsynced = kernelUnsynced
	}
	switch {
	case !c.Build.IsZero() && now.Before(c.Build):
		return "wall clock earlier than the build time"
	case !last.IsZero() && stepped(last, now):
		return "wall clock stepped against the monotonic clock"
	}
	if u, err := unsynced(); err == nil && u {
		return "kernel reports the clock unsynchronized"
	}
	return ""
}

func stepped(last, now time.Time) bool {
	wall := now.Round(0).Sub(last.Round(0))
	mono := now.Sub(last)
	d := wall - mono
	return d > ClockStep || d < -ClockStep
}
