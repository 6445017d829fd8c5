package rig

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/csop/tbox/signer"
)

// CaptureTopic is what a capture subscribes to: every topic of README §C2.
const CaptureTopic = "csop/v1/#"

// ErrCaptureLine: a line of a capture file that does not parse.
var ErrCaptureLine = errors.New("bad capture line")

// Message is one MQTT message a capture received.
type Message struct {
	Time     time.Time `json:"t"`
	Topic    string    `json:"topic"`
	QoS      byte      `json:"qos"`
	Retained bool      `json:"retained,omitempty"`
	Dup      bool      `json:"dup,omitempty"`
	// Payload is the payload when it is UTF-8 text; PayloadB64 (base64 in
	// the file) otherwise.
	Payload    string `json:"payload,omitempty"`
	PayloadB64 []byte `json:"payload_b64,omitempty"`
}

// Bytes returns the message's payload.
func (m *Message) Bytes() []byte {
	if m.PayloadB64 != nil {
		return m.PayloadB64
	}
	return []byte(m.Payload)
}

// Capture is a host MQTT client subscribed to CaptureTopic that writes every
// message it receives, in order, as a JSON line to a file.
type Capture struct {
	Path   string
	client mqtt.Client

	mu     sync.Mutex
	f      *os.File
	w      *bufio.Writer
	msgs   []Message
	onMsg  func(Message)
	change chan struct{}
	closed bool
}

// CaptureMQTT connects to b and records every message on CaptureTopic to
// the file name in the rig's directory. onMsg, if set, sees each message
// as it arrives (on the client's goroutine: it must not block).
func (r *Rig) CaptureMQTT(b *Broker, name string, onMsg func(Message)) (*Capture, error) {
	f, err := os.Create(r.path(name))
	if err != nil {
		return nil, err
	}
	c := &Capture{Path: f.Name(), f: f, w: bufio.NewWriter(f), onMsg: onMsg, change: make(chan struct{}, 1)}
	tc, err := r.PKI.TLS(r.PKI.CaptureCert, r.PKI.CaptureKey)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("mqtt capture: %w", err)
	}
	opts := mqtt.NewClientOptions().
		AddBroker(b.URL()).
		SetTLSConfig(tc).
		SetClientID(fmt.Sprintf("rig-capture-%d", time.Now().UnixNano())).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetOrderMatters(true)
	c.client = mqtt.NewClient(opts)
	if tok := c.client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		f.Close()
		return nil, fmt.Errorf("mqtt capture: connect to %s: %v", b.URL(), tok.Error())
	}
	if tok := c.client.Subscribe(CaptureTopic, 1, c.receive); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		c.client.Disconnect(100)
		f.Close()
		return nil, fmt.Errorf("mqtt capture: subscribe %s: %v", CaptureTopic, tok.Error())
	}
	r.onClose(func() { c.Close() })
	return c, nil
}

func (c *Capture) receive(_ mqtt.Client, m mqtt.Message) {
	msg := Message{Time: time.Now().UTC(), Topic: m.Topic(), QoS: m.Qos(), Retained: m.Retained(), Dup: m.Duplicate()}
	if p := m.Payload(); utf8.Valid(p) {
		msg.Payload = string(p)
	} else {
		msg.PayloadB64 = bytes.Clone(p)
	}
	c.mu.Lock()
	if !c.closed {
		c.msgs = append(c.msgs, msg)
		if b, err := json.Marshal(msg); err == nil {
			c.w.Write(append(b, '\n'))
		}
	}
	c.mu.Unlock()
	if c.onMsg != nil {
		c.onMsg(msg)
	}
	select {
	case c.change <- struct{}{}:
	default:
	}
}

// Messages returns the messages received so far.
func (c *Capture) Messages() []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.msgs)
}

// Wait polls until done accepts the capture's messages, d passes or ctx
// ends; it reports whether done accepted them.
func (c *Capture) Wait(ctx context.Context, d time.Duration, done func([]Message) bool) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		if done(c.Messages()) {
			return true
		}
		select {
		case <-c.change:
		case <-time.After(250 * time.Millisecond):
		case <-deadline.C:
			return done(c.Messages())
		case <-ctx.Done():
			return false
		}
	}
}

// Close disconnects and flushes the file. It is safe to call twice.
func (c *Capture) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.client.Disconnect(250)
	c.mu.Lock()
	defer c.mu.Unlock()
	err := c.w.Flush()
	if cerr := c.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ReadCapture parses a capture file.
func ReadCapture(rd io.Reader) ([]Message, error) {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var out []Message
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var m Message
		if err := json.Unmarshal(line, &m); err != nil {
			return out, fmt.Errorf("capture line %d: %w: %v", n, ErrCaptureLine, err)
		}
		if m.Topic == "" {
			return out, fmt.Errorf("capture line %d: %w: no topic", n, ErrCaptureLine)
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("capture: %w", err)
	}
	return out, nil
}

// Traffic is what a capture shows of one device's attestations.
type Traffic struct {
	Order        []uint64                       // seqs in the order of their first delivery
	Atts         map[uint64]*signer.Attestation // first delivery of each seq
	Wires        map[uint64][]byte
	Copies       map[uint64]int // deliveries of each seq (re-publishes after a missing ack)
	AckedThrough uint64         // the collector's highest ack
	Acks         int
	Nacks        []string
	Problems     []string // unparsable payloads, a seq published with two contents, foreign topics
}

// Analyze reads the messages of device's topics (README §C2).
func Analyze(msgs []Message, device signer.Address) *Traffic {
	t := &Traffic{Atts: map[uint64]*signer.Attestation{}, Wires: map[uint64][]byte{}, Copies: map[uint64]int{}}
	prefix := "csop/v1/" + device.String() + "/"
	for _, m := range msgs {
		kind, ok := strings.CutPrefix(m.Topic, prefix)
		if !ok {
			if !strings.HasPrefix(m.Topic, "csop/v1/") || strings.Count(m.Topic, "/") != 3 {
				t.Problems = append(t.Problems, fmt.Sprintf("message on unexpected topic %q", m.Topic))
			}
			continue
		}
		p := m.Bytes()
		switch kind {
		case "att":
			a, err := signer.ParseWire(p)
			if err != nil {
				t.Problems = append(t.Problems, fmt.Sprintf("unparsable attestation at %s: %v", m.Time.Format(time.RFC3339Nano), err))
				continue
			}
			if old, ok := t.Wires[a.Seq]; ok {
				if !bytes.Equal(old, p) {
					t.Problems = append(t.Problems, fmt.Sprintf("seq %d published with two contents: %s and %s", a.Seq, old, p))
				}
				t.Copies[a.Seq]++
				continue
			}
			t.Order = append(t.Order, a.Seq)
			t.Atts[a.Seq], t.Wires[a.Seq], t.Copies[a.Seq] = a, bytes.Clone(p), 1
		case "ack":
			var r struct {
				Seq *uint64 `json:"seq"`
			}
			if err := json.Unmarshal(p, &r); err != nil || r.Seq == nil {
				t.Problems = append(t.Problems, fmt.Sprintf("unparsable ack %q", p))
				continue
			}
			t.Acks++
			t.AckedThrough = max(t.AckedThrough, *r.Seq)
		case "nack":
			t.Nacks = append(t.Nacks, string(p))
		case "health":
		default:
			t.Problems = append(t.Problems, fmt.Sprintf("message on unexpected topic %q", m.Topic))
		}
	}
	return t
}

// InOrder reports whether the first deliveries were 1, 2, ..., N.
func (t *Traffic) InOrder() bool {
	for i, s := range t.Order {
		if s != uint64(i+1) {
			return false
		}
	}
	return true
}

// Meters sums the attested meters, in total and per drive mode.
func (t *Traffic) Meters() (total int64, modes map[string]int64) {
	modes = map[string]int64{}
	for _, a := range t.Atts {
		total += int64(a.Meters)
		for _, m := range a.Modes {
			modes[m.Mode] += int64(m.Meters)
		}
	}
	return total, modes
}

// WriteWires writes the attestations in seq order, one wire form per line
// (the input of `tboxctl verify`).
func (t *Traffic) WriteWires(path string) error {
	seqs := make([]uint64, 0, len(t.Wires))
	for s := range t.Wires {
		seqs = append(seqs, s)
	}
	slices.Sort(seqs)
	var b bytes.Buffer
	for _, s := range seqs {
		b.Write(t.Wires[s])
		b.WriteByte('\n')
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// VerifyWires runs the host's `tboxctl verify` on a file of wire forms for
// the rig's device; nil means no problem.
func (r *Rig) VerifyWires(ctx context.Context, path string) error {
	cmd := commandContext(ctx, r.Bins.Tboxctl, "verify", "--chain-id", fmt.Sprint(ChainID), "--device", r.Device.String(), path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("tboxctl verify %s: %w\n%s", path, err, out)
	}
	return nil
}
