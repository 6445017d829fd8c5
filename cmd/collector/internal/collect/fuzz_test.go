package collect

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/csop/tbox/cmd/collector/internal/ledger"
	"github.com/csop/tbox/signer"
)

// FuzzProcess feeds random payloads and topics to the collector: it never
// panics, an ack is only ever for an attestation that verifies and is
// stored byte for byte (or, for a health report's loss announcement, for
// held seqs it released), and the ledger always audits clean.
func FuzzProcess(f *testing.F) {
	l := newLedger(f, true)
	d := newDevice(f, nowBatch()-5)
	c, err := New(l, Config{ChainID: testChainID, Allow: allowSet{d.addr: true}}, nil)
	if err != nil {
		f.Fatal(err)
	}
	w1 := d.next(1200)
	d.batch++
	w2 := d.next(3400)
	d.batch++
	d.advance(d.make(500)) // seq 3: lost
	w4 := d.next(600)
	att := d.topic("att")
	f.Add(att, w4)
	f.Add(d.topic("health"), []byte(`{"status":"online","maybe_lost":{"from":3,"to":3}}`))
	f.Add(d.topic("health"), []byte(`{"status":"online","agent":{"maybe_lost":{"from":1,"to":99}}}`))
	f.Add(att, w1)
	f.Add(att, w2)
	f.Add(att, bytes.Replace(w2, []byte(`"meters":3400`), []byte(`"meters":3401`), 1))
	f.Add(att, []byte(`{"v":1}`))
	f.Add(att, []byte(`{"v":2,"device":"0x00"}`))
	f.Add("csop/v1/x/att", w1)
	f.Add("csop/v1/0x0000000000000000000000000000000000000000/att", []byte("\xff\xfe"))
	f.Add(att, []byte(`[]`))
	n := 0
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		rs, err := c.Process([]Message{{Topic: topic, Payload: payload}})
		if err != nil {
			t.Fatalf("process: %v", err)
		}
		if len(rs) > 1 {
			t.Fatalf("%d replies to one message", len(rs))
		}
		for _, r := range rs {
			_ = r.Payload()
			if !r.Ack() {
				continue
			}
			if strings.HasSuffix(topic, "/health") {
				if _, _, ok, err := ParseLoss(payload); !ok || err != nil {
					t.Fatalf("ack %+v after a health report announcing nothing: %v", r, err)
				}
				continue
			}
			a, err := signer.ParseWire(payload)
			if err != nil {
				t.Fatalf("ack %+v for an unparsable payload: %v", r, err)
			}
			if err := signer.Verify(testChainID, a); err != nil {
				t.Fatalf("ack %+v for an attestation that does not verify: %v", r, err)
			}
			err = l.View(func(tx ledger.Tx) error {
				digest, wire, ok := tx.Stored(a.Device, a.Seq)
				if !ok || digest != signer.Digest(testChainID, a) || !bytes.Equal(wire, payload) {
					t.Fatalf("acked seq %d is not stored as sent", a.Seq)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		if n++; n%500 == 0 {
			if err := l.Audit(); err != nil {
				t.Fatalf("audit: %v", err)
			}
		}
	})
}

// FuzzParseLoss: any health report gives a loss announcement with
// 1 <= from <= to and a bounded span, or none, or an ErrLoss error;
// never a panic.
func FuzzParseLoss(f *testing.F) {
	f.Add([]byte(`{"status":"online","device":"0x00","maybe_lost":{"from":5,"to":93}}`))
	f.Add([]byte(`{"agent":{"maybe_lost":{"from":5,"to":93}}}`))
	f.Add([]byte(`{"agent":"text","maybe_lost":null}`))
	f.Add([]byte(`{"maybe_lost":{"from":0,"to":3}}`))
	f.Add([]byte(`{"maybe_lost":{"from":9,"to":3}}`))
	f.Add([]byte(`{"maybe_lost":{"from":1,"to":18446744073709551615}}`))
	f.Add([]byte(`{"maybe_lost":{"from":-1}}`))
	f.Add([]byte(`{"status":"offline"}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		from, to, ok, err := ParseLoss(payload)
		if err != nil {
			if ok || !errors.Is(err, ErrLoss) {
				t.Fatalf("ok %v with error %v (want ErrLoss)", ok, err)
			}
			return
		}
		if ok && (from == 0 || to < from || to-from >= maxLossSpan) {
			t.Fatalf("announcement %d .. %d accepted", from, to)
		}
	})
}
