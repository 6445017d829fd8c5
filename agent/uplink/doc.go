// Package uplink drains the agent's outbox to the MQTT broker and applies the collector's acks.
//
// One [Uplink] owns one MQTT 3.1.1 connection whose client ID is the device
// address. [Uplink.Run] connects, publishes, reconnects and returns when its
// context ends; [Uplink.Notify] wakes it without ever blocking the caller (the
// CAN reader and the mileage accounting never wait on the network);
// [Uplink.Stats] is a snapshot for the diagnostic shell.
//
// # Topics
//
// As in README §C2, with <device> the address ("0x" and 40 hex digits):
//
//	csop/v1/<device>/att     agent -> collector, QoS 1: one attestation, wire form
//	csop/v1/<device>/ack     collector -> agent, QoS 1: {"seq":N}, every seq <= N stored for good
//	csop/v1/<device>/nack    collector -> agent, QoS 1: {"seq":N,"reason":"..."}
//	csop/v1/<device>/health  agent, QoS 0, retained: a [HealthReport]
//
// # Delivery
//
// The outbox is published oldest first, at most Config.Window attestations
// in flight (published and neither acked nor nacked). A broker PUBACK only
// means the broker has the message; an attestation leaves the outbox when,
// and only when, the collector acks it ([Outbox.Ack]). Acks are cumulative:
// the uplink keeps the highest one received and applies it once per wake-up.
//
// When the oldest in-flight attestation has waited Config.AckTimeout without
// an ack (the collector is down, or its ack was lost), and after every
// reconnect, publishing starts again from the oldest unacked seq. The
// collector therefore sees duplicates and must be, as the contract requires,
// idempotent; it never sees a gap, and first deliveries arrive in seq order.
//
// A nack is recorded ([Outbox.Nack]), counted in [Stats] and logged; the
// attestation stays in the outbox and is published again after
// Config.NackRetry (10 minutes by default), as often as it is refused.
// Retries count against the window, except that the oldest due one goes out
// even when the window is full: a refused seq holds the collector's
// cumulative ack back, so the window behind it cannot drain until it is
// stored. While a refusal is pending, seqs after it are stored by the
// collector but not acked, and the ack timeout re-publishes them (as
// duplicates) every AckTimeout until the refused one is accepted.
//
// Acks and nacks are the collector's signed receipts and refusals (README
// §C2), checked before anything is applied: a payload larger
// than [MaxReplySize] is not parsed; then the wire form
// (signer.ParseReceipt, signer.ParseRefusal); then the signature must
// recover, for this device and Config.ChainID, to one of
// Config.Collectors; then, on the Run goroutine, the digest must be the
// outbox's own record of that seq. Anything else is ignored, counted by
// kind in Stats.Ignored, logged at most once a minute per kind, and costs no
// flash write. A receipt at or below the acked seq (the broker's retained
// one at every connection, a replay) changes nothing. The outbox keeps the
// last applied receipt as the car's proof ([Outbox.Ack]).
//
// # Sessions
//
// The client connects with clean session true. With persistent sessions the
// broker would queue QoS 1 messages and subscriptions across a disconnect;
// the uplink does not need either: the outbox, not the broker, is the source
// of truth, everything unacked is published again after a reconnect, and the
// ack and nack subscriptions are made again on every connection before the
// first publish. An ack sent while the agent was offline is simply lost and
// produced again by the re-publish. Clean sessions also keep no state for a
// million cars on the broker.
//
// # Reconnects
//
// Paho's own reconnect is off; Run's loop waits a full-jitter backoff
// between attempts: retry n (from 0) waits a uniform random delay in
// [0, min(BackoffMax, BackoffMin*2^n)] (see [Backoff]). n returns to 0 once
// a connection has lasted 5 s, so a broker that accepts and drops at once
// does not get hammered at the shortest delay.
//
// The defaults, BackoffMin 100 ms and BackoffMax 1.5 s, make the wait after a
// broker comes back at most 1.5 s (0.75 s on average) plus one handshake, so
// the agent resumes within 2 s (one user of a peer project needed under 2 s
// after a network loss and got 20 s). The price is paid at fleet scale: a
// million cars whose broker is down retry every 0.75 s on average, about
// 1.3 million connection attempts per second against the load balancer
// (cheap refusals while nothing listens), and when the broker returns the
// whole fleet reconnects spread uniformly over 1.5 s, about 670,000 TLS
// handshakes per second. Full jitter is what spreads them; the broker fleet
// must absorb that peak or shed it. A deployment that cannot should raise
// BackoffMax: 30 s spreads the return over 30 s (about 33,000 per second)
// at a mean resume latency of 15 s.
//
// A silently dead link (no RST, e.g. a tunnel) is noticed through the MQTT
// keep-alive: after KeepAlive plus a ping timeout of min(KeepAlive/2, 10 s).
//
// [Uplink.Reconnect] (the diagnostic shell's "reconnect") drops the
// connection cleanly and connects again at once, with the backoff reset;
// while disconnected it cuts the wait short. [Uplink.RetryNacked] ("outbox
// retry-nacked") makes every refused attestation due for publishing now.
// Both only signal the Run goroutine, like Notify, and never block.
//
// # Health
//
// On every connection and every Config.HealthInterval the uplink publishes
// a retained [HealthReport] with status "online"; at a clean stop it
// publishes one with status "offline" before disconnecting. The MQTT will,
// also retained, is {"status":"offline","device":"0x..."}: the broker
// publishes it when the connection drops without a DISCONNECT, so the
// backend sees an unclean drop too. Config.Health supplies the agent's part
// (version, outbox depth, ...), under "agent".
//
// # Transport security
//
// ssl://, tls:// and mqtts:// brokers are dialed with TLS 1.2 or later,
// checked against Config.CAFile (or the system roots) under the broker URL's
// host name; Config.CertFile and Config.KeyFile give the client certificate
// for mutual TLS. Plaintext tcp:// or mqtt:// is refused by
// [Config.Validate] ([ErrInsecure]) for any host but loopback unless
// Config.AllowInsecure is set; nothing disables certificate checks.
package uplink
