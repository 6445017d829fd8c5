package collect

import (
	"testing"
)

// BenchmarkProcess is the collector's verification rate on one goroutine:
// parse, signature, chain and plausibility checks and the bbolt write, in
// groups of 256 messages per transaction (as Run does), from 64 devices.
// The sync variant fsyncs every group commit; nosync shows the CPU cost.
func BenchmarkProcess(b *testing.B) {
	for _, bc := range []struct {
		name   string
		noSync bool
	}{{"nosync", true}, {"sync", false}} {
		b.Run(bc.name, func(b *testing.B) {
			l := newLedger(b, bc.noSync)
			const devices, group = 64, DefaultMaxGroup
			allow := allowSet{}
			ds := make([]*device, devices)
			for i := range ds {
				ds[i] = newDevice(b, nowBatch()-uint64(b.N/devices)-2)
				allow[ds[i].addr] = true
			}
			msgs := make([]Message, b.N)
			for i := range msgs {
				d := ds[i%devices]
				msgs[i] = d.msg(d.next(1000 + uint64(i%500)))
				d.batch++
			}
			c, err := New(l, Config{ChainID: testChainID, Allow: allow}, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < len(msgs); i += group {
				end := min(i+group, len(msgs))
				rs, err := c.Process(msgs[i:end])
				if err != nil {
					b.Fatal(err)
				}
				for _, r := range rs {
					if !r.Ack() {
						b.Fatalf("refused: %v", r.Err)
					}
				}
			}
			b.StopTimer()
			if s := b.Elapsed().Seconds(); s > 0 {
				b.ReportMetric(float64(b.N)/s, "verifications/s")
			}
			if n := c.Counts().Accepted; n != uint64(b.N) {
				b.Fatalf("%d stored, want %d", n, b.N)
			}
		})
	}
}
