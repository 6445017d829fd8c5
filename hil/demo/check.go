package main

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/csop/tbox/hil/rig"
	"github.com/csop/tbox/hil/vehicle"
	"github.com/csop/tbox/signer"
)

// Report is the outcome of a run: what the T-Box attested, what the
// collector accepted and drew, the simulator's truth, and the problems.
type Report struct {
	Seed   int64
	Drive  time.Duration
	Pace   float64
	Device signer.Address

	Guest        *rig.Facts
	Attestations []*seenAtt // every attestation published, by seq
	AckedThrough uint64     // the collector's highest ack
	Nacks        []string   // the collector's refusals
	Stats        *rig.Stats
	Draws        map[uint64]*rig.Draw // by batch

	// The truth: the scenario replayed on the host, aligned on the first
	// frame's kernel time in the guest.
	Shift       time.Duration               // simulated start -> tboxd's compressed time
	Expected    map[uint64]map[string]int64 // batch -> mode -> meters
	TruthMeters int64                       // vsim's truth in the guest
	Moved       int64                       // meters the T-Box counted in a later batch than the truth

	Rows     []Row
	Elapsed  time.Duration
	Problems []string
	Notes    []string
}

// seenAtt is an attestation the capture saw.
type seenAtt struct {
	att      *signer.Attestation
	verified error // the demo's own signature check
	copies   int   // publishes seen (re-publishes after a missing ack)
}

// Row is one batch of the final table.
type Row struct {
	Batch        uint64
	Modes        map[string]int64 // attested meters per drive mode
	Meters       int64
	Expected     int64 // the truth's meters for the batch
	Exact        bool  // meters and modes equal the truth's
	Attestations int
	Verified     int // acked by the collector and verified by the demo
	Flags        []string
	Micro        uint64 // µStone the device won in the batch's draw
	Drawn        bool
}

func (r *Report) problem(format string, a ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, a...))
}

func (r *Report) note(format string, a ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, a...))
}

// check builds the table's rows and runs every check.
func (r *Report) check(cfg Config) {
	// Attestations: published, verified by the demo, acked by the collector.
	byBatch := map[uint64]*Row{}
	row := func(b uint64) *Row {
		if byBatch[b] == nil {
			byBatch[b] = &Row{Batch: b, Modes: map[string]int64{}}
		}
		return byBatch[b]
	}
	var total int64
	modes := map[string]int64{}
	seqs := signer.NewChainChecker(rig.ChainID, signer.WithDevice(r.Device))
	for _, s := range r.Attestations {
		a := s.att
		rw := row(a.Batch)
		rw.Attestations++
		rw.Meters += int64(a.Meters)
		total += int64(a.Meters)
		for _, m := range a.Modes {
			rw.Modes[m.Mode] += int64(m.Meters)
			modes[m.Mode] += int64(m.Meters)
		}
		for _, f := range signer.FlagNames(a.Flags) {
			if !slices.Contains(rw.Flags, f) {
				rw.Flags = append(rw.Flags, f)
			}
		}
		switch {
		case s.verified != nil:
			r.problem("seq %d: signature does not verify: %v", a.Seq, s.verified)
		case a.Device != r.Device:
			r.problem("seq %d: device %s, want %s", a.Seq, a.Device, r.Device)
		case a.Seq <= r.AckedThrough:
			rw.Verified++
		default:
			r.problem("seq %d: never acked by the collector (acked through %d)", a.Seq, r.AckedThrough)
		}
		for _, pr := range seqs.Check(a) {
			r.problem("chain: %v", pr)
		}
		if a.Flags&signer.FlagClock != 0 {
			r.problem("seq %d: CLOCK flag: the guest's clock was not trusted", a.Seq)
		}
		if a.Batches > 1 {
			r.note("seq %d covers %d batches (CATCHUP): counted in its first batch", a.Seq, a.Batches)
		}
	}
	if len(r.Attestations) == 0 {
		r.problem("no attestation reached the broker")
	}
	witnessed := map[string]int{}
	for _, s := range r.Attestations {
		for _, f := range signer.FlagNames(s.att.Flags &^ (signer.FlagClock | signer.FlagCatchup)) {
			witnessed[f]++
		}
	}
	if len(witnessed) > 0 {
		r.note("flags %v: what tboxd witnessed of the emulated CPU's hiccups; a frame stream stalled for 42 ms of wall time is 5 s without an odometer frame at %gx (GAP), and the late frames then arrive together (JUMP, SPEED_MISMATCH)", witnessed, cfg.Pace)
	}
	if n := len(r.Attestations); r.Guest != nil && r.Guest.Made >= 0 && n != r.Guest.Made {
		r.problem("tboxd made %d attestations, the broker carried %d", r.Guest.Made, n)
	}
	for _, n := range r.Nacks {
		r.problem("refused by the collector: %s", n)
	}

	// The collector's ledger.
	if st := r.Stats; st != nil {
		switch {
		case len(st.Devices) != 1:
			r.problem("collector stats: %d devices, want 1", len(st.Devices))
		default:
			d := st.Devices[0]
			if d.Attestations != uint64(len(r.Attestations)) || d.Meters != uint64(total) {
				r.problem("collector stored %d attestations, %d m; the T-Box published %d, %d m", d.Attestations, d.Meters, len(r.Attestations), total)
			}
		}
		if st.Forks != 0 {
			r.problem("collector recorded %d forks", st.Forks)
		}
		if st.Undrawn != 0 {
			r.problem("collector: %d batches still waiting for their draw", st.Undrawn)
		}
	}
	for b, d := range r.Draws {
		rw := row(b)
		switch {
		case d.Recorded == nil:
			r.problem("batch %d: no draw recorded", b)
		case !d.Match:
			r.problem("batch %d: re-running the draw differs from the recorded one", b)
		default:
			rw.Drawn = true
		}
		if len(d.Late) > 0 {
			r.problem("batch %d: %d attestations arrived after its draw", b, len(d.Late))
		}
		if d.Result != nil {
			for _, a := range d.Result.Awards {
				if strings.EqualFold(a.Device, r.Device.String()) {
					rw.Micro += a.Micro
				}
			}
		}
	}

	// The truth.
	if r.Expected != nil {
		if total != r.TruthMeters {
			r.problem("meters: the T-Box attested %d, the simulator's truth is %d", total, r.TruthMeters)
		}
		want := map[string]int64{}
		for b, ms := range r.Expected {
			row(b)
			for m, v := range ms {
				want[m] += v
			}
		}
		for _, m := range union(modes, want) {
			if modes[m] != want[m] {
				r.problem("drive mode %s: attested %d m, the truth is %d m", m, modes[m], want[m])
			}
		}
	}
	for _, rw := range byBatch {
		r.Rows = append(r.Rows, *rw)
	}
	sort.Slice(r.Rows, func(i, j int) bool { return r.Rows[i].Batch < r.Rows[j].Batch })
	if r.Expected == nil {
		return
	}
	// Per batch: the truth counts every frame at its simulated time; tboxd
	// at the kernel's time of its arrival. vsim sends in real time, Pace
	// times faster than the recording, on an emulated CPU that the host
	// shares: a frame sent 10 ms late arrives 1.2 s of driving late at 120x
	// and may cross a batch boundary. The drive modes keep the frames'
	// order, so the totals above are exact; per batch the demo shows how
	// much distance moved.
	var cumA, cumE int64
	for i := range r.Rows {
		rw := &r.Rows[i]
		for _, v := range r.Expected[rw.Batch] {
			rw.Expected += v
		}
		rw.Exact = rw.Meters == rw.Expected && equalModes(rw.Modes, r.Expected[rw.Batch])
		cumA += rw.Meters
		cumE += rw.Expected
		r.Moved += abs(cumA - cumE)
	}
}

func equalModes(a map[string]int64, b map[string]int64) bool {
	for _, m := range union(a, b) {
		if a[m] != b[m] {
			return false
		}
	}
	return true
}

func union(a, b map[string]int64) []string {
	var out []string
	for k, v := range a {
		if v != 0 {
			out = append(out, k)
		}
	}
	for k, v := range b {
		if _, ok := a[k]; v != 0 && (!ok || a[k] == 0) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// print writes the final table and the verdict.
func (r *Report) print(w io.Writer) {
	fmt.Fprintln(w)
	fmt.Fprintf(w, "T-Box %s — %v drive (seed %d) at %gx, guest clock set from the host at boot and marked synchronized as NTP would\n\n",
		r.Device, r.Drive, r.Seed, r.Pace)
	var modes []string
	for _, rw := range r.Rows {
		for m := range rw.Modes {
			if !slices.Contains(modes, m) {
				modes = append(modes, m)
			}
		}
	}
	sort.Strings(modes)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	hdr := "batch\tUTC\tmeters\t"
	for _, m := range modes {
		hdr += m + "\t"
	}
	hdr += "truth\tatts\tverified\tStones won\tflags\t"
	fmt.Fprintln(tw, hdr)
	var (
		meters, expected int64
		atts, verified   int
		micro            uint64
		byMode           = map[string]int64{}
	)
	for _, rw := range r.Rows {
		line := fmt.Sprintf("%d\t%s\t%d\t", rw.Batch, time.Unix(int64(rw.Batch)*vehicle.BatchSeconds, 0).UTC().Format("01-02 15:04"), rw.Meters)
		for _, m := range modes {
			line += fmt.Sprintf("%d\t", rw.Modes[m])
			byMode[m] += rw.Modes[m]
		}
		mark := "="
		if !rw.Exact {
			mark = "~"
		}
		if r.Expected == nil {
			mark = "?"
		}
		stones := formatMicro(rw.Micro)
		if !rw.Drawn {
			stones = "not drawn"
		}
		flags := strings.Join(rw.Flags, ",")
		if flags == "" {
			flags = "-"
		}
		line += fmt.Sprintf("%s %d\t%d\t%d\t%s\t%s\t", mark, rw.Expected, rw.Attestations, rw.Verified, stones, flags)
		fmt.Fprintln(tw, line)
		meters += rw.Meters
		expected += rw.Expected
		atts += rw.Attestations
		verified += rw.Verified
		micro += rw.Micro
	}
	line := fmt.Sprintf("total\t%d batches\t%d\t", len(r.Rows), meters)
	for _, m := range modes {
		line += fmt.Sprintf("%d\t", byMode[m])
	}
	line += fmt.Sprintf("%d\t%d\t%d\t%s\t\t", r.TruthMeters, atts, verified, formatMicro(micro))
	fmt.Fprintln(tw, line)
	tw.Flush()
	fmt.Fprintln(w)
	if r.Expected != nil {
		exact := 0
		for _, rw := range r.Rows {
			if rw.Exact {
				exact++
			}
		}
		fmt.Fprintf(w, "truth: vsim's drive replayed on the host with the same seed, aligned on the kernel time of the first frame in the guest (shift %v)\n", r.Shift.Round(time.Millisecond))
		fmt.Fprintf(w, "       %d of %d batches equal the truth (=); in the others (~) %d m in all crossed a batch boundary: frames that the\n", exact, len(r.Rows), r.Moved)
		fmt.Fprintf(w, "       emulated CPU put on the bus late (10 ms late at %gx is %v of driving); totals and drive modes keep the frame order\n", r.Pace, time.Duration(float64(10*time.Millisecond)*r.Pace))
		verdict := "OK"
		if meters != r.TruthMeters {
			verdict = "MISMATCH"
		}
		fmt.Fprintf(w, "meters: attested %d, truth %d: %s\n", meters, r.TruthMeters, verdict)
		verdict = "OK"
		for _, p := range r.Problems {
			if strings.HasPrefix(p, "drive mode ") {
				verdict = "MISMATCH"
			}
		}
		fmt.Fprintf(w, "meters per drive mode equal the truth: %s\n", verdict)
	}
	if st := r.Stats; st != nil && len(st.Devices) == 1 {
		d := st.Devices[0]
		fmt.Fprintf(w, "collector: %d attestations verified and stored, %d m, %d draws, %s Stones won by the T-Box\n",
			d.Attestations, d.Meters, st.Draws, formatMicro(d.AwardMicro))
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
	}
	for _, p := range r.Problems {
		fmt.Fprintln(w, "PROBLEM:", p)
	}
	status := "OK"
	if len(r.Problems) > 0 {
		status = "FAILED"
	}
	fmt.Fprintf(w, "demo %s in %v\n", status, r.Elapsed.Round(100*time.Millisecond))
}

// formatMicro prints µStone as Stones with two decimals.
func formatMicro(m uint64) string {
	return fmt.Sprintf("%d.%02d", m/1_000_000, m%1_000_000/10_000)
}
