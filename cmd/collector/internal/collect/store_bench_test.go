package collect

import (
	"context"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/csop/tbox/cmd/collector/internal/ledger"
	"github.com/csop/tbox/cmd/collector/internal/ledger/pgledger"
	"github.com/csop/tbox/cmd/collector/internal/ledger/pgledger/pgtest"
	"github.com/csop/tbox/signer"
	"github.com/csop/tbox/signer/sigcache"
)

// benchServer is a PostgreSQL with fsync on, started by the first
// benchmark that needs it and stopped by TestMain.
var (
	benchMu     sync.Mutex
	benchServer *pgtest.Server
)

func stopBenchPG() {
	benchMu.Lock()
	defer benchMu.Unlock()
	if benchServer != nil {
		benchServer.Stop()
		benchServer = nil
	}
}

// benchPG returns the URL of a new database on the benchmarks' server.
func benchPG(b *testing.B) string {
	b.Helper()
	bin := pgtest.Require(b)
	benchMu.Lock()
	defer benchMu.Unlock()
	if benchServer == nil {
		s, err := pgtest.NewWith(bin, pgtest.Options{Fsync: true})
		if err != nil {
			b.Fatal(err)
		}
		benchServer = s
	}
	u, err := benchServer.CreateDB()
	if err != nil {
		b.Fatal(err)
	}
	return u
}

// benchMessages signs n in-order attestations of 64 devices, interleaved.
func benchMessages(b *testing.B, n int) ([]Message, allowSet) {
	b.Helper()
	const devices = 64
	allow := allowSet{}
	ds := make([]*device, devices)
	for i := range ds {
		ds[i] = newDevice(b, nowBatch()-uint64(n/devices)-2)
		allow[ds[i].addr] = true
	}
	msgs := make([]Message, n)
	for i := range msgs {
		d := ds[i%devices]
		msgs[i] = d.msg(d.next(1000 + uint64(i%500)))
		d.batch++
	}
	return msgs, allow
}

// processAll feeds msgs to c in groups of DefaultMaxGroup through Stream,
// as Run does (a group checked while the previous one commits), and fails
// on a nack.
func processAll(b *testing.B, c *Collector, msgs []Message) {
	c.Stream(func() ([]Message, bool) {
		if len(msgs) == 0 {
			return nil, false
		}
		g := msgs[:min(DefaultMaxGroup, len(msgs))]
		msgs = msgs[len(g):]
		return g, true
	}, func(rs []Reply, err error) {
		if err != nil {
			b.Error(err)
			return
		}
		for _, r := range rs {
			if !r.Ack() {
				b.Errorf("refused: %v", r.Err)
			}
		}
	})
}

// commitTimes sums the ledger transactions' times (an Observer).
type commitTimes struct {
	mu     sync.Mutex
	n      int
	commit time.Duration
}

func (o *commitTimes) Observe(g *Group) {
	o.mu.Lock()
	o.n++
	o.commit += g.Commit
	o.mu.Unlock()
}

// report reports the mean commit time of a group: the database's share,
// hidden by Stream behind the next group's checks up to the time those
// take.
func (o *commitTimes) report(b *testing.B) {
	if o.n > 0 {
		b.ReportMetric(o.commit.Seconds()*1000/float64(o.n), "commit-ms/group")
	}
}

// cpuTime returns the process's user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportStored reports the rate, and the CPU time of this process per
// attestation since cpu0 (steadier than the rate on a shared machine; the
// database server's CPU is not in it).
func reportStored(b *testing.B, n uint64, cpu0 time.Duration) {
	b.StopTimer()
	if n > 0 {
		b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(n), "cpu-µs/attestation")
	}
	if n != uint64(b.N) {
		b.Fatalf("%d stored, want %d", n, b.N)
	}
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "attestations/s")
	}
}

// BenchmarkStore is one collector's rate of verified attestations stored
// (parse, signature, chain and plausibility checks, the durable commit:
// bbolt with fsync, PostgreSQL with fsync and synchronous_commit on), in
// groups of 256 as Run takes them, from 64 devices, on one core
// (-cpu 1; PostgreSQL's server runs beside it on the machine's other
// core; after one untimed group), through Stream as Run does: a group's signatures are checked
// while the previous group commits. Side by side with it, every 8 groups,
// the bare signature check (signer.Verify: fields, digest, public-key
// recovery) of the same attestations, already parsed: "bare/s".
// Alternating the two every few hundred milliseconds puts them under the
// same load from other tenants of the machine, so their ratio, "x-bare",
// holds where two separate one-second runs can differ by half.
//
// The devices' keys are cached by then (package sigcache): each device
// has sent 4 attestations in the untimed group. The "-coldkeys" variants
// give the collector a key cache of one device, which the 64 devices in
// turn always miss (both tiers of one device), as in a fleet far larger
// than the cache: every signature is checked by recovery, as
// signer.Verify does. The "-fieldkeys" variants model the field (1 M
// cars, each seen every 10 minutes among 1,700 attestations a second):
// the key tier holds every device, the table tier one, which the 64
// devices in turn always miss, so every signature is checked against the
// device's bare key.
func BenchmarkStore(b *testing.B) {
	for _, name := range []string{"bbolt", "postgres", "bbolt-coldkeys", "postgres-coldkeys", "bbolt-fieldkeys", "postgres-fieldkeys"} {
		backend, cold := strings.CutSuffix(name, "-coldkeys")
		backend, field := strings.CutSuffix(backend, "-fieldkeys")
		b.Run(name, func(b *testing.B) {
			var l ledger.Ledger
			if backend == "bbolt" {
				l = newLedger(b, false)
			} else {
				url := benchPG(b)
				pl, err := pgledger.Open(context.Background(), url, &pgledger.Options{ChainID: testChainID})
				if err != nil {
					b.Fatal(err)
				}
				defer pl.Close()
				l = pl
			}
			msgs, allow := benchMessages(b, DefaultMaxGroup+b.N)
			warm := msgs[:DefaultMaxGroup]
			msgs = msgs[DefaultMaxGroup:]
			as := make([]*signer.Attestation, len(msgs))
			for i, m := range msgs {
				a, err := signer.ParseWire(m.Payload)
				if err != nil {
					b.Fatal(err)
				}
				as[i] = a
			}
			var commits commitTimes
			c, err := New(l, Config{ChainID: testChainID, Allow: allow, Observer: &commits}, nil)
			if err != nil {
				b.Fatal(err)
			}
			switch {
			case cold:
				c.keys = sigcache.New(testChainID, 1, 1)
			case field:
				c.keys = sigcache.New(testChainID, 1, sigcache.DefaultKeys)
			}
			// One group first, untimed: the devices' first rows and, on
			// PostgreSQL, the statements' preparation on the connection.
			processAll(b, c, warm)
			c0 := c.Counts().Accepted
			commits = commitTimes{}
			b.ReportAllocs()
			b.ResetTimer()
			var bare, bareCPU time.Duration
			cpu0 := cpuTime()
			const chunk = 8 * DefaultMaxGroup
			for i := 0; i < len(msgs); i += chunk {
				end := min(i+chunk, len(msgs))
				processAll(b, c, msgs[i:end])
				b.StopTimer()
				t0, c0 := time.Now(), cpuTime()
				for _, a := range as[i:end] {
					if err := signer.Verify(testChainID, a); err != nil {
						b.Fatal(err)
					}
				}
				bare += time.Since(t0)
				bareCPU += cpuTime() - c0
				b.StartTimer()
			}
			reportStored(b, c.Counts().Accepted-c0, cpu0+bareCPU)
			if s := bare.Seconds(); s > 0 {
				b.ReportMetric(float64(b.N)/s, "bare/s")
				b.ReportMetric(s/b.Elapsed().Seconds(), "x-bare")
			}
			// The same ratio in this process's CPU time rather than wall
			// time: steadier when other tenants load the machine, but
			// blind to the waits (a commit's round trips and fsyncs
			// that Stream does not hide).
			if st := cpuTime() - cpu0 - bareCPU; st > 0 {
				b.ReportMetric(float64(bareCPU)/float64(st), "x-bare-cpu")
			}
			commits.report(b)
			if hits, _ := c.keys.Stats(); cold && hits != 0 {
				b.Fatalf("%d signatures checked by cached keys with a cold cache", hits)
			}
			if th, kh := c.keys.TierStats(); field && (th != 0 || kh < uint64(b.N)) {
				b.Fatalf("field case: %d table hits, %d bare-key hits, want 0 and >= %d", th, kh, b.N)
			}
		})
	}
}

// BenchmarkScale is the store rate of 2 collectors on one PostgreSQL
// (each its own connection pool, as two processes would be) against 1,
// side by side: b.N attestations for each, in scaleRounds rounds that
// alternate one collector and two, each on its own database. "x-one" is
// the median of the rounds' ratios (two's rate over one's), so a burst of
// another tenant's load during one round moves one ratio, not the result;
// "one/s" and "two/s" are the rates over all rounds. The attestations are
// split between the two by device, as a broker's shared subscription
// splits them by message; the Go side may use 2 cores (GOMAXPROCS 2, the
// machine's cores), which PostgreSQL's server shares.
func BenchmarkScale(b *testing.B) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	type setup struct {
		cs   []*Collector
		msgs []Message
		took time.Duration
	}
	open := func(n int) *setup {
		url := benchPG(b)
		msgs, allow := benchMessages(b, b.N)
		s := &setup{msgs: msgs}
		for range n {
			pl, err := pgledger.Open(context.Background(), url, &pgledger.Options{ChainID: testChainID})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { pl.Close() })
			c, err := New(pl, Config{ChainID: testChainID, Allow: allow}, nil)
			if err != nil {
				b.Fatal(err)
			}
			s.cs = append(s.cs, c)
		}
		return s
	}
	one, two := open(1), open(2)
	// round runs the attestations [lo, hi) of s on its collectors, split by
	// device: each device's seqs in order on one collector.
	round := func(s *setup, lo, hi int) {
		parts := make([][]Message, len(s.cs))
		for i := lo; i < hi; i++ {
			k := i % 64 % len(s.cs)
			parts[k] = append(parts[k], s.msgs[i])
		}
		t0 := time.Now()
		var wg sync.WaitGroup
		for i, c := range s.cs {
			wg.Add(1)
			go func() { defer wg.Done(); processAll(b, c, parts[i]) }()
		}
		wg.Wait()
		s.took += time.Since(t0)
	}
	b.ReportAllocs()
	b.ResetTimer()
	ratios := make([]float64, 0, scaleRounds)
	for r := range scaleRounds {
		lo, hi := r*b.N/scaleRounds, (r+1)*b.N/scaleRounds
		if hi == lo {
			continue
		}
		t1, t2 := one.took, two.took
		round(one, lo, hi)
		round(two, lo, hi)
		ratios = append(ratios, float64(one.took-t1)/float64(two.took-t2))
	}
	b.StopTimer()
	for _, s := range []*setup{one, two} {
		var stored uint64
		for _, c := range s.cs {
			stored += c.Counts().Accepted
		}
		if stored != uint64(b.N) {
			b.Fatalf("%d stored by %d collectors, want %d", stored, len(s.cs), b.N)
		}
	}
	slices.Sort(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "x-one")
	b.ReportMetric(float64(b.N)/one.took.Seconds(), "one/s")
	b.ReportMetric(float64(b.N)/two.took.Seconds(), "two/s")
}

// scaleRounds is how many rounds BenchmarkScale alternates.
const scaleRounds = 5
