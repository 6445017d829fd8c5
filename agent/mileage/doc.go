// Package mileage turns timestamped odometer, drive-mode and speed readings into the spans of README §C1.
//
// It is pure logic: no I/O, no CAN, no signing, no goroutines. The caller (the
// agent, or tboxctl replay) feeds readings in time order to one [Engine] and
// turns each [Span] it returns into a signed attestation; seq and prev are not
// this package's concern.
//
// # Meters and the high-water mark
//
// Distance is counted only above the odometer's high-water mark (HWM), the
// largest reading ever seen. The first reading ever sets the HWM and counts
// nothing. When a reading raises the HWM from h0 to h1, the span open at that
// moment is credited floor(h1) - floor(h0) whole meters, so fractions carry
// from span to span and, summed over all spans,
//
//	meters = floor(HWM) - floor(first reading ever)
//
// exactly (State.HWM and State.First; the open span's meters are not yet
// emitted). A restart, a power cut or a long outage moves distance into a
// later span; it never loses or doubles it.
//
// The distance a reading reveals is credited to the drive mode current at
// that reading ("UNKNOWN" before the first drive-mode reading).
//
// # Spans
//
// A span ends at every batch boundary (batch = floor(unix seconds / 600)) and
// at [Engine.Stop]. A closed span is returned, and so becomes an attestation,
// only when it has meters > 0 or one of the observation flags ROLLBACK, JUMP,
// SPEED_MISMATCH or GAP: a parked car makes none. CLOCK and CATCHUP qualify
// an attestation; on their own they make none.
//
// A span is held open across batch boundaries instead of closing, and then
// covers several batches with CATCHUP, while per-batch attestation is
// impossible: the outbox is full ([Engine.SetBlocked]), the agent restarted
// and has not yet read the odometer again ([Engine.Restarted]), or the wall
// clock is unset (earlier than Config.MinTime) until it is set. A held span
// with nothing in it does not grow: it moves on to the current batch. After
// the hold ends, the span closes at the next batch boundary. Stop while the
// outbox is full closes nothing: the span stays in the State.
//
// # Time
//
// Times are those of the frames. The batch clock never runs backwards: a
// reading stamped a little earlier than the last one (two buses, jitter)
// counts at the engine's current time. A step back of more than two minutes
// is a clock step: the open span gets CLOCK and closes (unless the outbox is
// full), the engine follows the new clock, and the next span gets CLOCK too.
// A reading earlier than Config.MinTime means the clock is unset: it counts
// at the last good time, with CLOCK. The caller reports any other untrustworthy clock (kernel
// STA_UNSYNC, a forward step) with [Engine.MarkClock]. Intervals (GAP, JUMP,
// SPEED_MISMATCH) use a second clock that follows the frame times, never runs
// backwards, and is shifted at each clock change so that it does not jump.
//
// Every method that takes a time may close spans and return them: the
// caller must keep all of them, from Speed, Mode and Tick as well as
// Odometer and Stop.
//
// # Flags
//
//   - ROLLBACK: a reading differs from the previous one and one of the two is
//     below the HWM (the odometer went back, or moved below the HWM, where
//     nothing is counted). Any reading strictly below the HWM counts: a
//     decoded odometer value is a raw integer times a scale, so there is no
//     float noise to tolerate.
//   - JUMP: over some interval between odometer readings, the HWM rose by
//     more than MaxSpeedKMH × (interval + 1 s) + Resolution. The engine keeps
//     the earlier reading that minimises HWM − maxSpeed·time, so one
//     comparison per reading covers every interval and a steady excess
//     cannot hide inside per-frame tolerances. Resolution (one odometer
//     step) absorbs quantisation, the second frame times out of order.
//   - SPEED_MISMATCH (Config.HasSpeed only): over the span, the odometer's
//     advance and the speed integrated hold-last differ by more than 10 % of
//     the odometer's advance and more than 500 m. Both sides sum the same
//     intervals: consecutive odometer readings at most Config.GapTimeout
//     apart, with a speed reading at most GapTimeout old.
//   - CLOCK: the clock was untrustworthy at some moment of the span.
//   - CATCHUP: the span covers more than one batch.
//   - GAP: no odometer frame for more than Config.GapTimeout while moving
//     (fresh speed above 0, or the odometer higher when frames resume), or the
//     agent restarted inside a span that had something in it, or the first
//     reading after a restart is higher than the last one before it.
//
// # Persistence
//
// [Engine.State] is a snapshot from which [New] resumes exactly: the same
// readings after it give the same spans. [State.MarshalBinary] writes it in a
// small versioned format; [State.UnmarshalBinary] checks every field.
package mileage
