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
// impossible: the outbox is full ([Engine.SetBlocked]), or the agent
// restarted and has not yet read the odometer again ([Engine.Restarted]).
// An unset clock is not such a case (see Time): spans close per batch of
// the engine's best estimate of the time, with CLOCK. A held span
// with nothing in it does not grow: it moves on to the current batch. After
// the hold ends, the span closes at the next batch boundary. Stop while the
// outbox is full closes nothing: the span stays in the State.
//
// # Time
//
// Times are those of the frames. The batch clock never runs backwards: a
// reading stamped a little earlier than the last one (two buses, jitter)
// counts at the engine's current time. A step back of more than two minutes
// (ClockStep; on a bench, times Config.TimeScale) is a clock step: the open
// span gets CLOCK and closes (unless the outbox is full), the engine
// follows the new clock, and the next span gets CLOCK too.
// A reading earlier than Config.MinTime means the clock is unset (a T-Box
// that never had a trusted clock, or one that lost it at a reboot): the
// batch clock then runs on the best estimate the engine has, the last good
// time (Config.MinTime, the agent's build time, if the clock was never
// set) plus the time elapsed since on the interval clock, and spans close
// at that estimate's batch boundaries, each of one batch, with CLOCK. The
// estimate is a lower bound of the true time (it misses the time the
// T-Box was off), so when the clock is set the batches go on forward and
// stay in order. A 2-hour drive with the clock unset is 12 or 13
// attestations of about a batch's distance each, not one 68 km span. The caller reports any other untrustworthy clock (kernel
// STA_UNSYNC, a forward step) with [Engine.MarkClock]. Intervals (GAP, JUMP,
// SPEED_MISMATCH) use a second clock that follows the frame times, never runs
// backwards, and is shifted at each clock change so that it does not jump.
// An odometer reading counts on it at its own frame time (not before the
// previous reading, not after the clock): a Tick that ran ahead of
// readings handed over late must not make them look too fast.
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
//   - JUMP: a reading above the plausible course was seen (see "JUMP
//     candidates" below): the span where the candidate appeared, and the
//     span where it was confirmed or found a glitch, get JUMP.
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
// # JUMP candidates
//
// A reading is on the plausible course when it is not above the HWM, or
// above it by at most MaxSpeedKMH × (interval + JumpSlack) + Resolution
// over some interval since an accepted reading. (The engine keeps the
// accepted reading that minimises HWM − maxSpeed·time, so one comparison
// per reading covers every interval, and a steady excess cannot hide
// inside per-frame tolerances; Resolution, one odometer step, absorbs
// quantisation, and JumpSlack, one second, frame times out of order.) With
// the defaults (300 km/h, 0.1 km) that is 83.3 m/s × (Δt + 1 s) + 100 m:
// 200 m over the 0.2 s between two frames at 5 Hz.
//
// A reading above the plausible course is a candidate, not the HWM, and
// the span gets JUMP. What follows decides:
//
//   - a reading on the plausible course (the earlier one) before the
//     candidate is confirmed: the candidate was a glitch. Nothing is
//     credited, the HWM is unchanged, and that reading is taken as usual
//     (so the spans after a glitch carry neither JUMP nor ROLLBACK).
//   - a reading that continues from the candidate: not below the highest
//     reading of its course by more than Resolution, and above it by at
//     most MaxSpeedKMH × (time since the previous reading + JumpSlack) +
//     Resolution, the plausibility rule applied along the candidate's own
//     course. When the candidate and the readings that
//     continue it number ConfirmReadings (3) and the last is at least
//     ConfirmTime (5 s) after the candidate, the jump is confirmed: the
//     HWM rises to the highest reading of its course and the open span is
//     credited the distance, with JUMP, as observed. Its drive modes are
//     those current at the readings that revealed it: when the mode
//     changed while the candidate was pending, the course up to the
//     change goes to the mode before it (State.CandSplitMode; one change
//     is kept, a second one within the same candidate credits the rest to
//     the mode current at the confirmation).
//   - any other reading (above the plausible course, not continuing the
//     candidate) is a new candidate in its place: the first was a glitch.
//
// So a single injected frame (issue 14: 541#FFFFFFFF, 429,496,729.5 km on
// a 0.1 km signal) is never credited and never becomes the HWM: the next
// genuine odometer frame, a fraction of a second later, dismisses it. To
// have an implausible advance credited, frames must continue from it for
// 5 s with no frame of the real odometer in between: a cluster that really
// jumped (credited, flagged JUMP for the backend to judge), or an attacker
// who silenced the real odometer for longer than GAP tolerates. A
// candidate pending at Stop or at a power cut stays in the State and
// resolves the same way after it: if real, its distance is credited then
// (after a long stop, the next reading is plausible and takes it), never
// lost, never counted twice.
//
// On a bench that compresses time (Config.TimeScale, the agent's
// can.time_scale), JumpSlack and the clock-step threshold (ClockStep) are
// multiplied by the scale: they stand for real-time imprecision (a frame
// handed over late, a player that stalls and then sends the overdue
// frames at once), which the compression multiplies too. At 240× that is
// 240 s of slack, 250 km/h × 241 s + one step ≈ 16.7 km: a burst of
// genuine readings after a stall of up to a second of real time stays on
// the plausible course, and a lone 541#FFFFFFFF frame is still far
// outside it. On a vehicle (TimeScale 0 or 1) the numbers above hold.
//
// What the rule cannot tell from the car: a glitch within the plausible
// course (at most 200 m ahead at 5 Hz with the defaults) is taken as a
// reading, and readings below it are ROLLBACK until the car passes it;
// a glitch below the HWM is ROLLBACK on its span (and, across a batch
// boundary, on the span of the next reading), never credited. The first
// reading a device ever takes anchors the telescoping sum and is not a
// candidate.
//
// # Persistence
//
// [Engine.State] is a snapshot from which [New] resumes exactly: the same
// readings after it give the same spans. [State.MarshalBinary] writes it in a
// small versioned format (version 2 added the JUMP candidate; version 1,
// written by an agent before it, is still read, with no candidate
// pending); [State.UnmarshalBinary] checks every field.
package mileage
