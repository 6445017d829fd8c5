// Package rig is the field test bench around the emulated T-Box: the real ARM tboxd in the guest, mosquitto and the reference collector on the host, and readers of everything a scenario judges from the outside.
//
// # What a rig holds
//
// New prepares the kit (package hil), builds the binaries (Build: tboxd,
// vsim, tboxctl and clocksync for linux/arm GOARM=7; the collector and
// tboxctl for the host; share them between rigs with Options.Bins), makes a
// working directory, a fresh device key on the collector's allowlist and
// the rig's PKI (pki.go: the broker's, the T-Box's, the collector's and the
// capture's certificates, back-dated for the guest's clock).
// Close ends every host process the rig started, by its own pid.
//
//	r, err := rig.New(ctx, rig.Options{Dir: dir, Log: t.Logf})
//	broker, err := r.StartBroker(ctx)                     // mosquitto, the shipped configuration (mTLS), on a free loopback port
//	capt, err := r.CaptureMQTT(broker, "mqtt.jsonl", nil) // every message on csop/v1/#, to a file
//	coll, err := r.StartCollector(ctx, broker, rig.CollectorOptions{})
//	g, err := r.Boot(ctx, rig.GuestOptions{Script: ..., Tboxd: &rig.Tboxd{...}, Broker: broker})
//	res, err := g.Wait()
//	facts := rig.ParseConsole(g.Lines())                  // tboxd's log lines and the RIG- markers
//	coll.Stop(10 * time.Second)
//	tr := rig.Analyze(capt.Messages(), r.Device)          // first deliveries, copies, acks, nacks, forks
//	st, err := rig.ReadStore(r.Path("collector.db"))      // the collector's bbolt file, seq by seq
//
// The guest side is a shell script made of snippets (ScriptClockSync,
// ScriptStartTboxd, ScriptFirstFrame, Drive.Script, ScriptStopTboxd, ...)
// and a tboxd configuration (Tboxd.TOML). The host side's truth comes
// from replaying the same seeded drive (Drive.Scenario, AlignTruth) or
// from a Ledger fed the frames a scenario played.
//
// # Compressed time
//
// A drive of hours is played in a minute: vsim --pace X (or canplayer on
// a log whose times the host divided by X, WriteLog) sends the frames X
// times faster than they were driven, and tboxd's can.time_scale = X
// counts each frame's kernel time X times faster from its own start, so
// the drive keeps its speeds and its 10-minute batches. The guest's clock
// is set at boot (GuestOptions.Clock) far enough in the past that the
// compressed drive ends before the host's now: every batch is closed, and
// the collector, which refuses spans beyond the current batch, draws each
// one. clocksync (hil/rig/clocksync) then marks the clock synchronized as
// NTP would, or every attestation would carry CLOCK. Per batch, tboxd
// counts each frame at its arrival on the emulated CPU, which runs late
// now and then: at 480x a 10 ms stall is 5 s of driving, so meters move
// between neighbouring batches (and GAP, JUMP and SPEED_MISMATCH record
// the stalls); totals and drive modes keep the frames' order and are
// exact.
//
// # The scenarios
//
// The tests of this package are the field scenarios (go test ./hil/rig/;
// -short skips them): a normal day (TestNormalDay), 20 power cuts during
// a drive (TestPowerCuts), a week without a broker (TestBrokerOutageWeek)
// and biometric frames throughout a drive (TestBiometricInjection).
package rig
