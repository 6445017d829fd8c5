package web

import (
	"testing"
	"time"

	"github.com/csop/tbox/cmd/collector/internal/collect"
	"github.com/csop/tbox/signer"
)

// BenchmarkObserve: what the status page adds to each group the collector
// handles (256 attestations, 8 health reports), per message.
func BenchmarkObserve(b *testing.B) {
	allow := allowSet{}
	var g collect.Group
	for i := range 256 {
		a := addr(i)
		allow[a] = true
		g.Messages = append(g.Messages, collect.Message{Topic: "csop/v1/" + a.String() + "/att"})
		g.Verify = append(g.Verify, 150*time.Microsecond)
		g.Attested = append(g.Attested, a)
		g.Replies = append(g.Replies, collect.Reply{Topic: "csop/v1/" + a.String() + "/ack"})
	}
	for i := range 8 {
		g.Messages = append(g.Messages, collect.Message{Topic: "csop/v1/" + addr(i).String() + "/health", Payload: []byte(`{"status":"online","agent":{"version":"1.0"}}`)})
	}
	g.Commit = 3 * time.Millisecond
	g.Replies = append(g.Replies, collect.Reply{Err: signer.ErrBadSignature})
	s, err := New(Config{Source: &fakeSource{}, Allow: allow})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		s.Observe(&g)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(g.Messages)), "ns/msg")
}
