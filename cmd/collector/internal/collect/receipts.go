package collect

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/csop/tbox/signer"
)

// # Receipts (README §C2, revision 2)
//
// Every ack and nack the collector publishes is signed with its own key
// (Config.Signer, the configuration's signing_key): an ack is a
// signer.Receipt of the device's stored head (seq and digest), published
// retained so that a device that lost its state learns where its chain
// stands; a nack is a signer.Refusal of the refused attestation's seq and
// digest (seq 0 and a zero digest for bytes that are no attestation at
// all: no agent acts on those). An agent acts only on a reply signed by a
// key in its mqtt.collector_addresses, so nobody but a collector can make
// a car forget.

// ErrNoSigningKey is returned by Run when Config.Signer is nil: the
// collector publishes nothing unsigned.
var ErrNoSigningKey = errors.New("no signing key for receipts")

// SignedPayload returns the signed wire form of r: a receipt for an ack, a
// refusal for a nack, signed by s on chainID. The device is the <device>
// of r's topic.
func SignedPayload(s signer.Signer, chainID uint64, r Reply) ([]byte, error) {
	dev, err := replyDevice(r.Topic)
	if err != nil {
		return nil, err
	}
	if r.Err == nil {
		rc := signer.Receipt{Device: dev, Seq: r.Seq, Digest: r.Digest}
		if err := signer.SignReceipt(s, chainID, &rc); err != nil {
			return nil, err
		}
		return rc.AppendWire(nil), nil
	}
	reason := strings.ToValidUTF8(r.Err.Error(), "?")
	if len(reason) > signer.MaxReasonLen {
		n := signer.MaxReasonLen - 3
		for n > 0 && !utf8.RuneStart(reason[n]) {
			n--
		}
		reason = reason[:n] + "..."
	}
	rf := signer.Refusal{Device: dev, Seq: r.Seq, Digest: r.Digest, Reason: reason}
	if err := signer.SignRefusal(s, chainID, &rf); err != nil {
		return nil, err
	}
	return rf.AppendWire(nil), nil
}

// replyDevice returns the device of csop/v1/<device>/ack or /nack.
func replyDevice(topic string) (signer.Address, error) {
	parts := strings.Split(topic, "/")
	if len(parts) != 4 || parts[0] != "csop" || parts[1] != "v1" || (parts[3] != "ack" && parts[3] != "nack") {
		return signer.Address{}, fmt.Errorf("reply topic %q: expected csop/v1/<device>/ack or /nack", topic)
	}
	return signer.ParseAddress(parts[2])
}

// Bounds of the receive queue. The MQTT handler runs on paho's reader
// goroutine and must never block it (a blocked reader holds every PUBACK,
// our own replies' included, and the broker drops messages): it queues a
// message or drops it, at once.
const (
	// queuePerDevice bounds the messages queued from one device (one
	// topic): a device flooding the collector loses its own surplus (an
	// honest agent publishes again after its ack timeout), nobody else's.
	queuePerDevice = 64
	// queueTotal bounds all queued messages.
	queueTotal = 1 << 16
	// nacksPerDeviceGroup bounds the nacks signed and published to one
	// device per group: signing is the costly part of a refusal, and a
	// device sending garbage needs to hear why only once in a while.
	nacksPerDeviceGroup = 4
	// dropLogEvery throttles the log of dropped messages.
	dropLogEvery = time.Minute
)

// fairQueue is the receive queue: one FIFO per topic, taken from in turn,
// so one device's flood delays another device's attestation by at most one
// group.
type fairQueue struct {
	mu      sync.Mutex
	queues  map[string][]Message
	order   []string // topics with queued messages, in turn order
	n       int
	dropped uint64
	ready   chan struct{} // one slot: something was queued
}

func newFairQueue() *fairQueue {
	return &fairQueue{queues: make(map[string][]Message), ready: make(chan struct{}, 1)}
}

// put queues m unless its topic already has queuePerDevice messages or the
// queue is full; it never blocks.
func (q *fairQueue) put(m Message) bool {
	q.mu.Lock()
	dq, had := q.queues[m.Topic]
	ok := len(dq) < queuePerDevice && q.n < queueTotal
	if ok {
		q.queues[m.Topic] = append(dq, m)
		q.n++
		if !had {
			q.order = append(q.order, m.Topic)
		}
	} else {
		q.dropped++
	}
	q.mu.Unlock()
	if ok {
		select {
		case q.ready <- struct{}{}:
		default:
		}
	}
	return ok
}

// len returns the number of queued messages.
func (q *fairQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// take appends up to max queued messages to dst, one per topic in turn.
func (q *fairQueue) take(dst []Message, max int) []Message {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(dst) < max && q.n > 0 {
		topic := q.order[0]
		q.order = q.order[1:]
		dq := q.queues[topic]
		dst = append(dst, dq[0])
		dq[0] = Message{}
		q.n--
		if len(dq) == 1 {
			delete(q.queues, topic)
		} else {
			q.queues[topic] = dq[1:]
			q.order = append(q.order, topic)
		}
	}
	if q.n > 0 {
		select {
		case q.ready <- struct{}{}:
		default:
		}
	}
	return dst
}

// takeDropped returns and resets the count of dropped messages.
func (q *fairQueue) takeDropped() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	d := q.dropped
	q.dropped = 0
	return d
}

// limitNacks keeps all acks and at most nacksPerDeviceGroup nacks per
// topic, and returns how many nacks it left out.
func limitNacks(replies []Reply) ([]Reply, int) {
	perTopic := map[string]int{}
	out := replies[:0]
	skipped := 0
	for _, r := range replies {
		if r.Err != nil {
			if perTopic[r.Topic] >= nacksPerDeviceGroup {
				skipped++
				continue
			}
			perTopic[r.Topic]++
		}
		out = append(out, r)
	}
	return out, skipped
}
