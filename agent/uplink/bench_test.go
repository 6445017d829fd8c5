package uplink_test

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/csop/tbox/agent/uplink"
	"github.com/csop/tbox/agent/uplink/mqtttest"
	"github.com/csop/tbox/signer"
)

// BenchmarkDrain drains a 10,000-attestation backlog end to end: connect,
// publish through a real mosquitto to a fake collector that acks each
// one, Outbox.Ack, until the outbox is empty. msgs/s is the figure.
func BenchmarkDrain(b *testing.B) {
	const backlog = 10000
	for _, window := range []int{16, uplink.DefaultWindow, 256} {
		b.Run(fmt.Sprintf("window=%d", window), func(b *testing.B) {
			br := mqtttest.Start(b)
			k := newCollector(b, br.URL(), true)
			k.start()
			ob := newMemOutbox()
			var total time.Duration
			for b.Loop() {
				b.StopTimer()
				ob.add(backlog)
				u, err := uplink.New(uplink.Config{Broker: br.URL(), Device: device, Window: window, Logger: slog.New(slog.DiscardHandler), ChainID: chainID, Collectors: []signer.Address{collectorKey(b).Address()}}, ob)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				start := time.Now()
				stop := runUplink(b, u)
				for ob.len() > 0 {
					time.Sleep(time.Millisecond)
				}
				total += time.Since(start)
				b.StopTimer()
				stop()
				b.StartTimer()
			}
			b.ReportMetric(float64(backlog*b.N)/total.Seconds(), "msgs/s")
		})
	}
}
