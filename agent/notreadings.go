package agent

import "github.com/csop/tbox/agent/profile"

// NotReadings returns the counters of profile frames that gave no reading
// (README §C1: a raw value the DBC's value table names, or a frame that cannot
// be decoded). They credit nothing; the diagnostic shell shows them. Safe to
// read from any goroutine.
func (a *Attester) NotReadings() *profile.NotReadings { return a.dec.NotReadings() }

// NotReadings returns the attester's counters of frames that gave no
// reading; safe to read from any goroutine.
func (a *Agent) NotReadings() *profile.NotReadings { return a.att.NotReadings() }
