package shell

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/csop/tbox/signer"
	"github.com/csop/tbox/store"
)

// command is one shell command: words such as "att show", then arguments.
type command struct {
	words   []string
	args    string // argument synopsis for help
	help    string
	service bool // needs service mode
	minArgs int
	maxArgs int // -1: any
	run     func(ss *session, args []string)
}

func (c *command) name() string { return strings.Join(c.words, " ") }

func (c *command) usage() string {
	if c.args == "" {
		return c.name()
	}
	return c.name() + " " + c.args
}

// commandTable is the shell's commands, in help order: a table the linker
// writes out, not code that builds it at each start (tboxd size).
var commandTable = [...]command{
	{words: []string{"help"}, args: "[COMMAND]", help: "list the commands, or explain one", minArgs: 0, maxArgs: 2, run: (*session).help},
	{words: []string{"status"}, args: "", help: "uptime, CAN, batch, outbox, uplink, service mode", minArgs: 0, maxArgs: 0, run: (*session).status},
	{words: []string{"att", "last"}, args: "", help: "the last attestation made (wire form)", minArgs: 0, maxArgs: 0, run: (*session).attLast},
	{words: []string{"att", "show"}, args: "SEQ", help: "an attestation still in the outbox (wire form)", minArgs: 1, maxArgs: 1, run: (*session).attShow},
	{words: []string{"id"}, args: "", help: "the device address", minArgs: 0, maxArgs: 0, run: (*session).id},
	{words: []string{"config"}, args: "", help: "the configuration (secrets redacted)", minArgs: 0, maxArgs: 0, run: (*session).config},
	{words: []string{"profile"}, args: "", help: "the vehicle profile: signals, buses, filters, blocked messages", minArgs: 0, maxArgs: 0, run: (*session).profile},
	{words: []string{"selftest"}, args: "", help: "check the key, the outbox, the buses, the clock and the uplink", minArgs: 0, maxArgs: 0, run: (*session).selftest},
	{words: []string{"log"}, args: "[N]", help: "the last N log lines (default 20)", minArgs: 0, maxArgs: 1, run: (*session).logs},
	{words: []string{"unlock"}, args: "[RESPONSE]", help: "service mode: without RESPONSE print a challenge; with it, unlock", minArgs: 0, maxArgs: 1, run: (*session).unlock},
	{words: []string{"lock"}, args: "", help: "leave service mode", minArgs: 0, maxArgs: 0, run: (*session).lock},
	{words: []string{"exit"}, args: "", help: "end the session (locks service mode)", minArgs: 0, maxArgs: 0, run: (*session).exit},
	{words: []string{"quit"}, args: "", help: "same as exit", minArgs: 0, maxArgs: 0, run: (*session).exit},
	{words: []string{"upload", "now"}, args: "", help: "upload the outbox now", minArgs: 0, maxArgs: 0, run: (*session).uploadNow, service: true},
	{words: []string{"upload"}, args: "", help: "same as upload now", minArgs: 0, maxArgs: 0, run: (*session).uploadNow, service: true},
	{words: []string{"reconnect"}, args: "", help: "drop and re-establish the MQTT connection", minArgs: 0, maxArgs: 0, run: (*session).reconnect, service: true},
	{words: []string{"reopen", "can"}, args: "[BUS]", help: "reopen the CAN socket of BUS (default: every bus)", minArgs: 0, maxArgs: 1, run: (*session).reopenCAN, service: true},
	{words: []string{"outbox", "retry-nacked"}, args: "", help: "re-publish the attestations the backend refused, now", minArgs: 0, maxArgs: 0, run: (*session).retryNacked, service: true},
	{words: []string{"flush"}, args: "", help: "make the mileage state durable now (before a power cut)", minArgs: 0, maxArgs: 0, run: (*session).flush, service: true},
}

// lookup finds the command whose words are the longest prefix of fields.
func (s *Shell) lookup(fields []string) (*command, []string) {
	var best *command
	for i := range s.cmds {
		c := &s.cmds[i]
		if len(c.words) > len(fields) || (best != nil && len(c.words) <= len(best.words)) {
			continue
		}
		match := true
		for j, w := range c.words {
			if fields[j] != w {
				match = false
				break
			}
		}
		if match {
			best = c
		}
	}
	if best == nil {
		return nil, nil
	}
	return best, fields[len(best.words):]
}

// group returns the commands of a multi-word group such as "att".
func (s *Shell) group(first string) []string {
	var out []string
	for _, c := range s.cmds {
		if len(c.words) > 1 && c.words[0] == first {
			out = append(out, c.usage())
		}
	}
	return out
}

func (ss *session) help(args []string) {
	if len(args) > 0 {
		c, _ := ss.sh.lookup(append([]string{strings.ToLower(args[0])}, lower(args[1:])...))
		if c == nil {
			if g := ss.sh.group(strings.ToLower(args[0])); len(g) > 0 {
				ss.println(strings.Join(g, "\n"))
				return
			}
			ss.printf("no command %q", truncate(args[0], 32))
			return
		}
		mode := ""
		if c.service {
			mode = " (service mode)"
		}
		ss.printf("%s: %s%s", c.usage(), c.help, mode)
		return
	}
	var b strings.Builder
	for i, title := range [...]string{"Commands:\n", "Service mode (after unlock):\n"} {
		b.WriteString(title)
		for _, c := range ss.sh.cmds {
			if c.service == (i == 1) {
				fmt.Fprintf(&b, "  %-22s %s\n", c.usage(), c.help)
			}
		}
	}
	b.WriteString("Keys: Backspace, ^U erase the line, ^C cancel it.")
	ss.println(b.String())
}

func lower(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = strings.ToLower(v)
	}
	return out
}

// notAvailable is not inlined at its 9 calls (tboxd size).
//
//go:noinline
func (ss *session) notAvailable(what string) {
	ss.printf("%s: not available", what)
}

func (ss *session) status([]string) {
	d := ss.sh.deps
	if d.Status == nil {
		ss.notAvailable("status")
		return
	}
	st := d.Status()
	ss.println(formatStatus(st, ss.now(), d.Version, ss.serviceState()))
}

func (ss *session) serviceState() string {
	switch {
	case !ss.sh.hasKey:
		return "not configured"
	case ss.inService():
		return "unlocked, " + ss.unlocked.Sub(ss.now()).Round(time.Second).String() + " left"
	}
	if err := ss.sh.limit.check(ss.now()); err != nil {
		return "locked (" + err.Error() + ")"
	}
	return "locked"
}

// BatchSeconds is the length of a Stone-drop batch (README §C6).
const BatchSeconds = 600

// statusLine writes one line of the status command: a key and its value.
//
// Not inlined: called from many places, kept as one copy.
//
//go:noinline
func statusLine(b *strings.Builder, k, format string, a ...any) {
	fmt.Fprintf(b, "%-9s %s\n", k, fmt.Sprintf(format, a...))
}

func formatStatus(st Status, now time.Time, version, service string) string {
	var b strings.Builder
	line := func(k, format string, a ...any) { statusLine(&b, k, format, a...) }
	ago := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return now.Sub(t).Round(time.Second).String() + " ago"
	}
	line("version", "%s", orDash(version))
	if !st.Started.IsZero() {
		line("uptime", "%s (since %s)", now.Sub(st.Started).Round(time.Second), st.Started.UTC().Format(time.RFC3339))
	}
	clock := "trusted"
	if st.ClockUntrusted {
		clock = "UNTRUSTED: attestations are flagged CLOCK"
	}
	line("clock", "%s, %s", now.UTC().Format(time.RFC3339), clock)
	if len(st.Buses) == 0 {
		line("CAN", "no source")
	}
	for _, bs := range st.Buses {
		line("CAN", "%s: %s, frames %d, dropped %d, error frames %d, bus-off %d, error-passive %d, reopens %d",
			bs.Name, bs.State, bs.Frames, bs.Dropped, bs.ErrorFrames, bs.BusOff, bs.ErrorPassive, bs.Reopens)
		if bs.Controller != "" {
			line("CAN", "%s controller: %s", bs.Name, bs.Controller)
		}
	}
	line("engine", "frames %d, last frame %s, source errors %d", st.Frames, ago(st.LastFrame), st.SourceErrors)
	if p := st.Poll; p.Known {
		state := "answering"
		if p.Silent {
			state = "ECU SILENT"
		}
		line("poll", "%s 0x%s -> 0x%s on %s every %v (%s ISO-TP): %s, requests %d, answers %d (last %s), timeouts %d, negative %d (last code 0x%02X), pending %d, unreadable %d, send errors %d, blocked %d",
			p.Source, p.Request, p.Response, p.Bus, p.Period, p.Transport, state, p.Requests, p.Answers, ago(p.LastAnswer),
			p.Timeouts, p.Negative, p.LastNRC, p.Pending, p.Refused, p.SendErrors, p.Blocked)
	}
	if nr := st.NotReadings; nr.Known {
		line("invalid", "no reading from odometer frames: %d named by the value table (SNA, Init...), %d undecodable; speed: %d named, %d undecodable",
			nr.OdometerNamed, nr.OdometerUndecodable, nr.SpeedNamed, nr.SpeedUndecodable)
	}
	u := now.Unix()
	batch := "batch " + strconv.FormatInt(u/BatchSeconds, 10) + ", " +
		(time.Duration(u%BatchSeconds) * time.Second).String() + " of 10m0s"
	if st.Batch.Known {
		batch += fmt.Sprintf("; open span from batch %d over %d batches: %d m", st.Batch.Batch, max(st.Batch.Batches, 1), st.Batch.Meters)
		if names := signer.FlagNames(st.Batch.Flags); len(names) > 0 {
			batch += " [" + strings.Join(names, ",") + "]"
		}
	}
	if st.Batch.Candidate > 0 {
		batch += fmt.Sprintf("; JUMP candidate pending, %.0f m above the high-water mark (not credited unless the next readings continue from it)", st.Batch.Candidate)
	}
	line("batch", "%s", batch)
	o := st.Outbox
	oldest := "none pending"
	if !o.Oldest.IsZero() {
		oldest = "oldest pending " + ago(o.Oldest)
	}
	full := ""
	if o.Full {
		full = ", FULL"
	}
	line("outbox", "depth %d, %s, head %d, acked through %d, %d of %d bytes%s", o.Depth, oldest, o.Head, o.AckedThrough, o.Bytes, o.MaxBytes, full)
	if !o.Lost.Empty() {
		line("lost", "seqs %s may be lost: the outbox was re-seeded from its sidecar %s; the collector records a chain break",
			o.Lost, ago(o.Lost.At))
	}
	if o.LastNack.Seq != 0 {
		line("nack", "%d refused in all; last seq %d %s: %s", o.Nacks, o.LastNack.Seq, ago(o.LastNack.Time), oneLine(o.LastNack.Reason))
	} else {
		line("nack", "none")
	}
	up := st.Uplink
	switch {
	case !up.Enabled:
		line("uplink", "disabled (no broker configured)")
	case up.Connected:
		line("uplink", "connected since %s, in flight %d, published %d, last ack %d, reconnects %d",
			up.ConnectedSince.UTC().Format(time.RFC3339), up.InFlight, up.Publishes, up.LastAcked, up.Reconnects)
	default:
		line("uplink", "NOT connected, last ack %d, reconnects %d", up.LastAcked, up.Reconnects)
	}
	if up.Enabled && up.LastError != "" {
		line("", "last connection error %s: %s", ago(up.LastErrorAt), oneLine(up.LastError))
	}
	if up.Enabled && up.LastNackSeq != 0 {
		line("", "last nack seq %d: %s", up.LastNackSeq, oneLine(up.LastNackReason))
	}
	if up.Enabled {
		line("receipts", "%s", receiptsLine(up))
	}
	line("service", "%s", service)
	return strings.TrimSuffix(b.String(), "\n")
}

func (ss *session) attLast([]string) {
	ob := ss.sh.deps.Outbox
	if ob == nil {
		ss.notAvailable("att")
		return
	}
	seq, _ := ob.Last()
	if seq == 0 {
		ss.printf("no attestation made yet")
		return
	}
	ss.showAtt(seq)
}

func (ss *session) attShow(args []string) {
	if ss.sh.deps.Outbox == nil {
		ss.notAvailable("att")
		return
	}
	seq, err := strconv.ParseUint(args[0], 10, 64)
	if err != nil || seq == 0 {
		ss.printf("att show: want a seq (1, 2, 3, ...), found %q", truncate(args[0], 32))
		return
	}
	ss.showAtt(seq)
}

func (ss *session) showAtt(seq uint64) {
	r, err := ss.sh.deps.Outbox.Get(seq)
	switch {
	case errors.Is(err, store.ErrNotFound):
		head, _ := ss.sh.deps.Outbox.Last()
		if seq > head {
			ss.printf("seq %d: not made yet (the last is %d)", seq, head)
		} else {
			ss.printf("seq %d: receipted by the collector and removed from the outbox%s", seq, ss.lastReceipt())
		}
		return
	case err != nil:
		ss.printf("seq %d: %v", seq, err)
		return
	}
	ss.printf("%s", r.Wire)
	info := fmt.Sprintf("seq %d, made %s, digest 0x%x", r.Seq, r.Created.UTC().Format(time.RFC3339), r.Digest)
	if r.Nacks > 0 {
		info += fmt.Sprintf(", refused %d times, last reason: %s", r.Nacks, oneLine(r.NackReason))
	}
	ss.printf("%s, not receipted yet", info)
}

// lastReceipt describes the outbox's last receipt, the car's proof, when
// the outbox keeps one.
func (ss *session) lastReceipt() string {
	rk, ok := ss.sh.deps.Outbox.(ReceiptKeeper)
	if !ok {
		return ""
	}
	w, err := rk.LastReceipt()
	if err != nil || len(w) == 0 {
		return ""
	}
	return "; last receipt kept: " + oneLine(string(w))
}

// receiptsLine summarizes the replies the uplink ignored.
func receiptsLine(up UplinkStatus) string {
	if len(up.Ignored) == 0 {
		return "none ignored"
	}
	kinds := make([]string, 0, len(up.Ignored))
	for k := range up.Ignored {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	line := "IGNORED "
	for i, k := range kinds {
		if i > 0 {
			line += ", "
		}
		line += strconv.FormatUint(up.Ignored[k], 10) + " " + k
	}
	return line + "; last: " + oneLine(truncate(up.LastIgnored, 200))
}

func (ss *session) id([]string) { ss.printf("%s", ss.sh.deps.Device) }

func (ss *session) config([]string) {
	if ss.sh.deps.ConfigText == nil {
		ss.notAvailable("config")
		return
	}
	ss.println(strings.TrimRight(ss.sh.deps.ConfigText(), "\n"))
}

func (ss *session) profile([]string) {
	if ss.sh.deps.ProfileText == nil {
		ss.notAvailable("profile")
		return
	}
	ss.println(strings.TrimRight(ss.sh.deps.ProfileText(), "\n"))
}

func (ss *session) logs(args []string) {
	if ss.sh.deps.Logs == nil {
		ss.notAvailable("log")
		return
	}
	n := 20
	if len(args) == 1 {
		v, err := strconv.Atoi(args[0])
		if err != nil || v < 1 {
			ss.printf("log: want a number of lines >= 1, found %q", truncate(args[0], 32))
			return
		}
		n = min(v, 1000)
	}
	lines := ss.sh.deps.Logs.Lines(n)
	if len(lines) == 0 {
		ss.printf("(no log lines yet)")
		return
	}
	ss.println(strings.Join(lines, "\n"))
}

// selftest checks what a technician checks first. The only signature it
// makes is over SelftestDigest: fixed, domain-separated, never user input.
// selftestResult prints one result of the selftest command and counts the
// failures and warnings.
//
// Not inlined: called from many places, kept as one copy.
//
//go:noinline
func (ss *session) selftestResult(fails, warns *int, verdict, part, format string, a ...any) {
	switch verdict {
	case "FAIL":
		*fails++
	case "WARN":
		*warns++
	}
	ss.printf("%-4s %-7s %s", verdict, part, fmt.Sprintf(format, a...))
}

func (ss *session) selftest([]string) {
	d := ss.sh.deps
	var fails, warns int
	res := func(verdict, part, format string, a ...any) {
		ss.selftestResult(&fails, &warns, verdict, part, format, a...)
	}
	if d.Key == nil {
		res("SKIP", "key", "no signer")
	} else {
		sig, err := d.Key.SignDigest(SelftestDigest(d.Device))
		var got signer.Address
		if err == nil {
			got, err = recoverAddress(SelftestDigest(d.Device), sig)
		}
		switch {
		case err != nil:
			res("FAIL", "key", "signing the selftest message: %v", err)
		case got != d.Device:
			res("FAIL", "key", "the selftest signature recovers to %s, not the device %s", got, d.Device)
		default:
			res("PASS", "key", "signs as %s", d.Device)
		}
	}
	if d.Outbox == nil {
		res("SKIP", "outbox", "not available")
	} else {
		ss.selftestOutbox(res)
	}
	if d.Status == nil {
		res("SKIP", "status", "not available")
	} else {
		st := d.Status()
		for _, b := range st.Buses {
			switch {
			case b.State != "up" && b.State != "log replay":
				res("FAIL", "CAN", "%s is %s", b.Name, b.State)
			case b.Frames == 0:
				res("WARN", "CAN", "%s is %s, no frame received yet (ignition off?)", b.Name, b.State)
			default:
				res("PASS", "CAN", "%s is %s, %d frames", b.Name, b.State, b.Frames)
			}
		}
		if len(st.Buses) == 0 {
			res("FAIL", "CAN", "no CAN source")
		}
		if st.ClockUntrusted {
			res("WARN", "clock", "the wall clock is not trustworthy: attestations are flagged CLOCK")
		} else {
			res("PASS", "clock", "trusted")
		}
		if st.Outbox.Full {
			res("WARN", "outbox", "full: spans are held back as a catch-up span")
		}
		switch up := st.Uplink; {
		case !up.Enabled:
			res("WARN", "uplink", "disabled: no broker configured")
		case up.Connected:
			res("PASS", "uplink", "connected")
		default:
			res("WARN", "uplink", "not connected: %s", orDash(up.LastError))
		}
	}
	ss.printf("selftest: %d failed, %d warnings", fails, warns)
}

func (ss *session) selftestOutbox(res func(verdict, part, format string, a ...any)) {
	d := ss.sh.deps
	head, digest := d.Outbox.Last()
	if head == 0 {
		res("PASS", "outbox", "readable, no attestation yet")
		return
	}
	r, err := d.Outbox.Get(head)
	if errors.Is(err, store.ErrNotFound) {
		res("PASS", "outbox", "readable, head %d acked", head)
		return
	}
	if err != nil {
		res("FAIL", "outbox", "reading head %d: %v", head, err)
		return
	}
	a, err := signer.ParseWire(r.Wire)
	switch {
	case err != nil:
		res("FAIL", "outbox", "head %d: %v", head, err)
	case r.Digest != digest:
		res("FAIL", "outbox", "head %d: stored digest differs from the chain head", head)
	case a.Device != d.Device || a.Seq != head:
		res("FAIL", "outbox", "head %d: attestation of %s seq %d", head, a.Device, a.Seq)
	default:
		if d.ChainID == 0 {
			res("PASS", "outbox", "head %d readable (no chain id to verify)", head)
		} else if err := signer.Verify(d.ChainID, a); err != nil {
			res("FAIL", "outbox", "head %d does not verify: %v", head, err)
		} else {
			res("PASS", "outbox", "head %d verifies", head)
		}
	}
}

func (ss *session) unlock(args []string) {
	if !ss.sh.hasKey {
		ss.printf("unlock: %v: set shell.service_pubkey in the configuration", ErrNoServiceKey)
		return
	}
	now := ss.now()
	if err := ss.sh.limit.check(now); err != nil {
		ss.printf("unlock: %v", err)
		return
	}
	if len(args) == 0 {
		c, err := NewChallenge(ss.sh.deps.Device)
		if err != nil {
			ss.printf("unlock: %v", err)
			return
		}
		ss.chal, ss.chalAt = &c, now
		tok := c.Token()
		ss.printf("challenge %s\nsign it: tboxctl unlock --service-key FILE --challenge %s\nthen type: unlock RESPONSE (within %s; a new challenge replaces this one)",
			tok, tok, ss.sh.cfg.ChallengeTTL)
		return
	}
	sig, err := ParseResponse(args[0])
	if err != nil {
		ss.printf("unlock: %v", err) // a mangled paste: the challenge stays valid
		return
	}
	err = ss.answer(now, sig)
	if err == nil {
		ss.unlocked = now.Add(ss.sh.cfg.UnlockTTL)
		ss.sh.limit.ok()
		ss.printf("service mode unlocked for %s", ss.sh.cfg.UnlockTTL)
		ss.sh.log.Info("service mode unlocked", "ttl", ss.sh.cfg.UnlockTTL)
		return
	}
	msg := "unlock refused: " + err.Error()
	if !errors.Is(err, ErrNoChallenge) && !errors.Is(err, ErrChallengeExpired) {
		if d := ss.sh.limit.fail(now); d > 0 {
			msg += fmt.Sprintf("; unlock locked out for %s", d)
		}
	}
	ss.println(msg)
	ss.sh.log.Warn("service unlock refused", "err", err)
}

// answer checks a response against the pending challenge and consumes the
// challenge, whatever the outcome: each challenge gets one answer.
func (ss *session) answer(now time.Time, sig signer.Signature) error {
	c := ss.chal
	if c == nil {
		return errorf("%w: type unlock first", ErrNoChallenge)
	}
	ss.chal = nil
	if now.Sub(ss.chalAt) > ss.sh.cfg.ChallengeTTL {
		return errorf("%w: answered after %s, limit %s", ErrChallengeExpired, now.Sub(ss.chalAt).Round(time.Second), ss.sh.cfg.ChallengeTTL)
	}
	return VerifyUnlock(ss.sh.service, *c, sig)
}

func (ss *session) lock([]string) {
	ss.chal = nil
	if ss.unlocked.IsZero() {
		ss.printf("service mode is locked")
		return
	}
	ss.relock("lock")
}

func (ss *session) exit([]string) {
	ss.chal = nil
	ss.relock("exit")
	ss.printf("bye") // a serial line has no hang-up: the session goes on, locked
}

func (ss *session) uploadNow([]string) {
	if ss.sh.deps.UploadNow == nil {
		ss.notAvailable("upload")
		return
	}
	ss.sh.deps.UploadNow()
	ss.printf("upload: uplink woken")
}

// action runs a service action and reports it; ok is what success means
// ("done", or "requested" for one the uplink carries out on its own).
func (ss *session) action(name string, f func() error, ok string) {
	if f == nil {
		ss.notAvailable(name)
		return
	}
	if err := f(); err != nil {
		ss.printf("%s: %v", name, err)
		return
	}
	ss.printf("%s: %s", name, ok)
}

func (ss *session) reconnect([]string) {
	ss.action("reconnect", ss.sh.deps.Reconnect, "requested (see status)")
}

func (ss *session) reopenCAN(args []string) {
	f := ss.sh.deps.ReopenCAN
	if f == nil {
		ss.notAvailable("reopen can")
		return
	}
	bus := ""
	if len(args) == 1 {
		bus = args[0]
	}
	ss.action("reopen can", func() error { return f(bus) }, "done")
}

func (ss *session) retryNacked([]string) {
	ss.action("outbox retry-nacked", ss.sh.deps.RetryNacked, "requested (see status)")
}

func (ss *session) flush([]string) { ss.action("flush", ss.sh.deps.Flush, "done") }
