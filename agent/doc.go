// Package agent is the T-Box agent's orchestration: it decodes profile
// frames, feeds the mileage engine, signs each closed span as an
// attestation, and makes it durable in the outbox before anyone sees it.
//
// # Durability
//
// The Attester persists, in one store transaction with each attestation, a
// state blob holding the mileage engine's state and the spans the engine has
// closed but that are not yet in the outbox. A crash at any instant
// therefore resumes either before a span closed (the odometer's high-water
// mark is older, so the distance is derived again from the next frame) or
// after it, with the span either stored or still pending in the state: it
// is signed and stored at start-up. Nothing is counted twice, nothing is
// lost, and seq/prev come from the store's head, so the chain cannot fork.
//
// # Clock
//
// The agent stamps nothing itself: the mileage engine takes its time from
// the frames (kernel receive times on SocketCAN, the log's on a replay)
// and from the ticks. A clock earlier than AttesterConfig.MinTime (the
// build time) is unset: the engine then closes spans per batch of its best
// estimate of the time, the last good time (or the build time) plus the
// time elapsed, each flagged CLOCK (see package mileage, # Time). The
// ClockCheck adds CLOCK for a clock the kernel reports unsynchronized or
// that stepped. So an agent that never had a trusted clock still makes one
// attestation per batch, never one span for a whole drive.
//
// # Status
//
// The diagnostic shell reads the agent without ever waiting for its loop:
// [Counters] are atomics, and [Agent.Progress] is the open span
// ([Attester.OpenSpan]: distance, modes and flags so far) as the loop last
// published it, once per tick and after every attestation.
package agent
