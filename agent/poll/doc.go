// Package poll asks a car for its odometer: an OBD-II or UDS request over
// ISO-TP to the profile's request ID, at the profile's period.
//
// # Who reads the answer
//
// The poller is the tester, not the witness. It sends the request, keeps
// the protocol's state (the wait for the answer, a negative response, the
// ECU's "response pending", an ECU that stopped answering) and counts what
// happened. The odometer value itself is read by the agent's decoder from
// the response ID's frames, which the CAN socket's kernel filter admits
// (profile.Decoder): the same code that reads a recorded log, so a log of
// a polled car replays to the same meters as the live agent credited.
//
// # Transports
//
// The kernel's ISO-TP socket (CAN_ISOTP, module can-isotp) where present:
// the kernel sends the request and the flow control. Otherwise a userspace
// ISO-TP over a raw CAN socket (RawTransport): the single frame of the
// request, and a flow control after the answer's first frame.
//
// # What it may write
//
// Requests are the only frames the agent writes on a vehicle bus. The
// request is built once from the profile (01 PID or 22 DID) and nothing
// else can be handed to the poller: it has no method that takes bytes. It
// writes only to the profile's request ID, at most one request per period
// and never two within MinPeriod (profile.MinPollPeriod), whatever asks;
// RawTransport's Guard checks every frame once more before the socket:
// the request's single frame, rate-bounded, or one flow control for an
// answer's first frame, nothing else.
//
// # A hostile or broken ECU
//
// Answers are reassembled into a buffer of the positive answer's length:
// an announced length above it is refused before a byte is kept. A wrong
// sequence number drops the message. "Response pending" (0x7F .. 0x78)
// extends the wait by P2Star, at most MaxPending times per request. An ECU
// that does not answer costs one timeout per period; after SilentAfter
// timeouts in a row the poller logs it once (the mileage engine marks the
// span GAP while the car moves without odometer readings).
package poll
