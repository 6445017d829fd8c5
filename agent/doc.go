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
// # Status
//
// The diagnostic shell reads the agent without ever waiting for its loop:
// [Counters] are atomics, and [Agent.Progress] is the open span
// ([Attester.OpenSpan]: distance, modes and flags so far) as the loop last
// published it, once per tick and after every attestation.
package agent
