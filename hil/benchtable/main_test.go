package main

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// A BenchmarkDecode run: our decoder and einride's on the same frames.
const decodeOut = `goos: linux
goarch: amd64
pkg: github.com/csop/tbox/agent/profile
BenchmarkDecode/tbox/profile-frames         	62374519	        19.20 ns/op	  52083333 frames/s	       0 B/op	       0 allocs/op
BenchmarkDecode/einride/profile-frames      	 9999999	       120.0 ns/op	   8333333 frames/s	       0 B/op	       0 allocs/op
BenchmarkDecode/tbox/bus-mix                	80000000	        12.50 ns/op	  80000000 frames/s	       0 B/op	       0 allocs/op
BenchmarkDecode/einride/bus-mix             	40000000	        25.00 ns/op	  40000000 frames/s	       0 B/op	       0 allocs/op
PASS
ok  	github.com/csop/tbox/agent/profile	5.1s
`

func TestFormatRowPeer(t *testing.T) {
	r := row{metrics: []string{"frames/s"}, peer: "einride/"}
	subs := parseBench(decodeOut)
	if len(subs) != 4 {
		t.Fatalf("parsed %d benchmarks, want 4: %+v", len(subs), subs)
	}
	res, peer := formatRow(r, subs)
	wantRes := "profile-frames: 52,083,333 frames/s, 0 allocs/op; bus-mix: 80,000,000 frames/s, 0 allocs/op"
	if res != wantRes {
		t.Errorf("result %q, want %q", res, wantRes)
	}
	wantPeer := "einride profile-frames: 8,333,333 frames/s, 0 allocs/op (ours 6.25x); einride bus-mix: 40,000,000 frames/s, 0 allocs/op (ours 2.00x)"
	if peer != wantPeer {
		t.Errorf("peer %q, want %q", peer, wantPeer)
	}
}

func TestFormatRowNoPeer(t *testing.T) {
	out := "BenchmarkSign \t   22912\t     51520 ns/op\t     19410 sigs/s\t    1592 B/op\t      29 allocs/op\n"
	res, peer := formatRow(row{metrics: []string{"sigs/s"}}, parseBench(out))
	if res != "19,410 sigs/s, 29 allocs/op" || peer != "" {
		t.Errorf("got %q, %q; want the sign rate and allocations, no peer", res, peer)
	}
}

// guestConsole is what guestScript prints, cut to two runs.
const guestConsole = `[    0.0] booting
HIL-READY 2.09
HIL-BENCH clock clk_tck=100 now_us=1795413729084066
HIL-BENCH cold run=1 t0_us=1795413729000000
HIL-BENCH log time=2026-11-23T06:02:09.500Z level=INFO msg="tboxd started" device=0x56 version=dev sources=1 chain_id=20220807
HIL-BENCH log time=2026-11-23T06:02:09.560Z level=INFO msg="first frame" device=0x56 part=agent bus=vcan0 since_start=60ms
HIL-BENCH cold run=2 t0_us=1795413730000000
HIL-BENCH log time=2026-11-23T06:02:10.200Z level=INFO msg="tboxd started" device=0x56 version=dev sources=1 chain_id=20220807
HIL-BENCH log time=2026-11-23T06:02:10.210Z level=INFO msg="first frame" device=0x56 part=agent bus=vcan0 since_start=10ms
HIL-BENCH load sent=60000 start=1795413732000000 end=1795413737000000 tboxd_ticks=252 candump_ticks=78 tboxd_user_ticks=200 candump_user_ticks=39 tboxd_hwm_kb=8892 candump_hwm_kb=172 candump_frames=59000
HIL-BENCH log time=2026-11-23T06:02:22.730Z level=INFO msg="CAN counters" device=0x56 bus=vcan0 frames=60000 reads=2000 dropped=0 error_frames=0 malformed=0 reopens=0
HIL-BENCH log time=2026-11-23T06:02:22.733Z level=INFO msg="tboxd stopped" device=0x56 frames=60000 attestations_made=0 outbox_depth=0 err=<nil>
HIL-BENCH warn time=2026-11-23T06:02:20.000Z level=WARN msg="CAN frames dropped" dropped=3
HIL-EXIT 0
`

func TestParseGuest(t *testing.T) {
	g, err := parseGuest(guestConsole)
	if err != nil {
		t.Fatal(err)
	}
	// 1795413729 is 2026-11-23T06:02:09Z.
	want := []coldRun{{Started: 500 * time.Millisecond, FirstFrame: 560 * time.Millisecond}, {Started: 200 * time.Millisecond, FirstFrame: 210 * time.Millisecond}}
	if len(g.Cold) != len(want) || g.Cold[0] != want[0] || g.Cold[1] != want[1] {
		t.Errorf("cold runs %+v, want %+v", g.Cold, want)
	}
	if g.Sent != 60000 || g.TboxdFrames != 60000 || g.CandumpFrames != 59000 || g.LoadSeconds != 5 {
		t.Errorf("load %+v, want 60000 sent and counted by tboxd, 59000 by candump, in 5 s", g)
	}
	if g.TboxdCPU != 2520*time.Millisecond || g.CandumpCPU != 780*time.Millisecond {
		t.Errorf("CPU tboxd %v candump %v, want 2.52s and 780ms", g.TboxdCPU, g.CandumpCPU)
	}
	if g.TboxdUser != 2000*time.Millisecond || g.CandumpUser != 390*time.Millisecond || g.TboxdReads != 2000 {
		t.Errorf("user CPU tboxd %v candump %v, reads %d, want 2s, 390ms and 2000", g.TboxdUser, g.CandumpUser, g.TboxdReads)
	}
	if g.TboxdHWM != 8892<<10 || g.CandumpHWM != 172<<10 {
		t.Errorf("VmHWM tboxd %d candump %d", g.TboxdHWM, g.CandumpHWM)
	}
	if len(g.Problems) != 1 || !strings.Contains(g.Problems[0], "CAN frames dropped") {
		t.Errorf("problems %q, want the warning line", g.Problems)
	}
	if got := median(g.Cold, func(c coldRun) time.Duration { return c.FirstFrame }); got != 560*time.Millisecond {
		t.Errorf("median first frame %v, want the upper middle 560ms", got)
	}
}

func TestParseGuestErrors(t *testing.T) {
	for _, tc := range []struct {
		name, console string
		want          error
	}{
		{"no figures", "HIL-READY 2\nHIL-EXIT 0\n", errNoFigures},
		{"no microseconds", "HIL-BENCH clock clk_tck=100 now_us=1795413646%N\n", errBadFigure},
		{"bad t0", "HIL-BENCH cold run=1 t0_us=x\n", errBadFigure},
		{"bad log time", "HIL-BENCH cold run=1 t0_us=1\nHIL-BENCH log time=yesterday msg=\"first frame\"\n", errBadFigure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parseGuest(tc.console); !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
		})
	}
}

func TestKeyValues(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[string]string
	}{
		{`a=1 b="two words" c=`, map[string]string{"a": "1", "b": "two words", "c": ""}},
		{`msg="say \"hi\"" x=y`, map[string]string{"msg": `say "hi"`, "x": "y"}},
		{`word a=1`, map[string]string{"a": "1"}},
		{`b="unterminated`, map[string]string{"b": "unterminated"}},
	} {
		got := keyValues(tc.in)
		if len(got) != len(tc.want) {
			t.Errorf("keyValues(%q) = %q, want %q", tc.in, got, tc.want)
			continue
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("keyValues(%q)[%q] = %q, want %q", tc.in, k, got[k], v)
			}
		}
	}
}

func FuzzParseGuest(f *testing.F) {
	f.Add(guestConsole)
	f.Add("HIL-BENCH load sent=1 start=0 end=0")
	f.Add(`HIL-BENCH log time=2026-11-23T06:02:09.500Z msg="x`)
	f.Fuzz(func(t *testing.T, s string) {
		parseGuest(s) // must not panic
		keyValues(s)
	})
}

func TestMetricRows(t *testing.T) {
	out := `=== RUN   TestFieldFullBusLoad
    field_load_test.go:200: HIL-METRIC tboxd_cpu_s=1.20 tboxd_vmhwm_kb=10240 noise_frames=90000 profile_frames=30000
HIL-METRIC candump_filtered_cpu_s=0.60 candump_all_cpu_s=3.00 bus_frames=120000 window_s=30.00
--- PASS: TestFieldFullBusLoad (95.00s)
`
	rs := metricRows("TestFieldFullBusLoad", out)
	if len(rs) != 2 {
		t.Fatalf("rows %q, want RSS and CPU", rs)
	}
	if want := "tboxd 10.00 MiB VmHWM; 120,000 bus frames in 30 s (4000 frames/s), 30,000 of them the profile's, while driving"; rs[0][1] != want {
		t.Errorf("RSS row %q, want %q", rs[0][1], want)
	}
	if want := "tboxd 40.0 µs/frame (1.20 s CPU)"; rs[1][1] != want {
		t.Errorf("CPU row %q, want %q", rs[1][1], want)
	}
	if want := "candump, same filter: 20.0 µs/frame; candump, no filter: 25.0 µs/frame per bus frame; tboxd 2.00x candump's, same filter"; rs[1][2] != want {
		t.Errorf("CPU peer %q, want %q", rs[1][2], want)
	}
	// An unknown metric line is shown as it is.
	if rs := metricRows("TestX", "HIL-METRIC foo=1\n"); len(rs) != 1 || rs[0][1] != "foo=1" {
		t.Errorf("unknown metrics: %q", rs)
	}
}

func TestBacklogMetricRows(t *testing.T) {
	out := `    rig_test.go:72: guest: HIL-METRIC backlog_tboxd_vmhwm_kb=12000 backlog_tboxd_cpu_ticks=100 backlog_load_s=130 bus_frames=5000000
HIL-METRIC backlog=10001 drain_s=20.00 tboxd_vmhwm_kb=12288 tboxd_cpu_s=74.99 profile_frames=181391 bus_frames=5736470 window_s=130
--- PASS: TestBacklogDrainUnderLoad (166.19s)
`
	rs := backlogMetricRows("what", out)
	if len(rs) != 1 {
		t.Fatalf("rows %q, want one", rs)
	}
	if want := "tboxd 12.00 MiB VmHWM; 10,001 attestations drained in 20.0 s (500/s) while 5,736,470 bus frames arrived in 130 s (44,127 frames/s), 181,391 of them the profile's (none dropped)"; rs[0][1] != want {
		t.Errorf("row %q, want %q", rs[0][1], want)
	}
	if rs := backlogMetricRows("what", "HIL-METRIC backlog=1\n"); !strings.Contains(rs[0][1], "no complete") {
		t.Errorf("incomplete metrics: %q", rs)
	}
}

func TestBestRounds(t *testing.T) {
	out := `BenchmarkDecode/tbox/profile-frames   	 1000	 30.0 ns/op	 33000000 frames/s	 0 B/op	 0 allocs/op
BenchmarkDecode/einride/profile-frames	 1000	 27.0 ns/op	 37000000 frames/s	 0 B/op	 0 allocs/op
BenchmarkDecode/tbox/profile-frames   	 1000	 25.0 ns/op	 40000000 frames/s	 0 B/op	 0 allocs/op
BenchmarkDecode/einride/profile-frames	 1000	 26.0 ns/op	 38000000 frames/s	 0 B/op	 0 allocs/op
`
	got := bestRounds(parseBench(out), "frames/s")
	if len(got) != 2 || got[0].name != "tbox/profile-frames" || got[0].vals["frames/s"] != 40e6 ||
		got[1].name != "einride/profile-frames" || got[1].vals["frames/s"] != 38e6 {
		t.Errorf("best rounds %+v, want tbox 40M then einride 38M", got)
	}
}

func TestMedianRounds(t *testing.T) {
	var out string
	for _, x := range []string{"0.91", "0.62", "0.85", "0.88", "0.30"} {
		out += "BenchmarkStore/postgres 	 3000	 400000 ns/op	 2500 attestations/s	 " + x + " x-bare	 15000 B/op	 232 allocs/op\n"
		out += "BenchmarkStore/bbolt 	 3000	 400000 ns/op	 2600 attestations/s	 0.80 x-bare	 15000 B/op	 280 allocs/op\n"
	}
	got := medianRounds(parseBench(out), "x-bare")
	if len(got) != 2 || got[0].name != "postgres" || got[0].vals["x-bare"] != 0.85 || got[1].name != "bbolt" || got[1].vals["x-bare"] != 0.80 {
		t.Errorf("median rounds %+v, want postgres 0.85 then bbolt 0.80", got)
	}
}
