package sigcache

import (
	"encoding/binary"
	"math/rand/v2"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/csop/tbox/signer"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// benchAttestations signs n attestations of each of devs devices,
// interleaved, and returns them with their digests.
func benchAttestations(b *testing.B, devs, n int) ([]*signer.Attestation, [][32]byte) {
	b.Helper()
	rng := rand.New(rand.NewPCG(9, 10))
	keys := make([]*testKey, devs)
	for i := range keys {
		keys[i] = newTestKey(b, rng)
	}
	as := make([]*signer.Attestation, 0, devs*n)
	ds := make([][32]byte, 0, devs*n)
	for j := range n {
		for _, k := range keys {
			a := attestation(b, k, uint64(j+1))
			as = append(as, a)
			ds = append(ds, signer.Digest(testChainID, a))
		}
	}
	return as, ds
}

func reportRate(b *testing.B) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "verifies/s")
	}
}

// BenchmarkVerify compares, on 64 devices' attestations with their
// digests computed: the reference check (signer.VerifyKey: fields,
// recovery, address), the verifier with every key cached ("warm"), and the
// verifier on devices it has never seen ("cold", each attestation from
// another device, as in a fleet far larger than the cache).
func BenchmarkVerify(b *testing.B) {
	as, ds := benchAttestations(b, 64, 16)
	b.Run("reference", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			j := i % len(as)
			if _, err := signer.VerifyKey(testChainID, as[j], ds[j]); err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b)
	})
	b.Run("warm", func(b *testing.B) {
		v := New(testChainID, DefaultSize, DefaultKeys)
		for j := range as {
			if err := v.Verify(as[j], ds[j]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			j := i % len(as)
			if err := v.Verify(as[j], ds[j]); err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b)
	})
	b.Run("field", func(b *testing.B) {
		// The key tier holds every device, the table tier one, which
		// the 64 devices in turn always miss: the bare key's check.
		v := New(testChainID, 1, DefaultKeys)
		for j := range 64 {
			if err := v.Verify(as[j], ds[j]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			j := i % len(as)
			if err := v.Verify(as[j], ds[j]); err != nil {
				b.Fatal(err)
			}
		}
		if th, _ := v.TierStats(); th != 0 {
			b.Fatalf("%d table hits with a table tier of one", th)
		}
		reportRate(b)
	})
	b.Run("cold", func(b *testing.B) {
		// A cache of one device, visited round robin by 64: every
		// attestation misses, and its key replaces the last one.
		v := New(testChainID, 1, 1)
		b.ReportAllocs()
		for i := range b.N {
			j := i % len(as)
			if err := v.Verify(as[j], ds[j]); err != nil {
				b.Fatal(err)
			}
		}
		if hits, _ := v.Stats(); hits != 0 {
			b.Fatalf("%d hits on a cold cache", hits)
		}
		reportRate(b)
	})
}

// BenchmarkTable is the cost of building one device's table.
func BenchmarkTable(b *testing.B) {
	rng := rand.New(rand.NewPCG(11, 12))
	var q secp256k1.JacobianPoint
	randKey(b, rng).PubKey().AsJacobian(&q)
	b.ReportAllocs()
	for range b.N {
		newTable(&q)
	}
}

// threadCPU returns the CPU time of the calling OS thread.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_THREAD, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// tablesPerChunk is how many tables BenchmarkSideBySide builds per chunk.
const tablesPerChunk = 16

// BenchmarkSideBySide runs the reference check (signer.Verify, digest
// included, as the collector checked before: the digest it computes for
// its replies is given to the verifier), the warm verifier and the cold
// one in alternating chunks of 64 attestations on one locked thread,
// so that the three share the load of other tenants of the machine, and
// reports each one's CPU time per attestation and the ratios of the
// reference's time to theirs ("x-warm", "x-cold": speedups), the same for
// the field case ("field-µs", "x-field": every device in the key tier,
// a table tier of one that the 64 devices in turn always miss, so every
// check is the bare key's), and the CPU
// time of building one device's table ("table-µs", 16 per chunk; what a
// device's second attestation pays on top of "warm-µs").
func BenchmarkSideBySide(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	as, ds := benchAttestations(b, 64, 16)
	warm, cold := New(testChainID, DefaultSize, DefaultKeys), New(testChainID, 1, 1)
	field := New(testChainID, 1, DefaultKeys)
	for j := range as {
		if err := warm.Verify(as[j], ds[j]); err != nil {
			b.Fatal(err)
		}
		if err := field.Verify(as[j], ds[j]); err != nil {
			b.Fatal(err)
		}
	}
	var ref, w, c, f, tb time.Duration
	var q secp256k1.JacobianPoint
	newTestKey(b, rand.New(rand.NewPCG(13, 14))).priv.PubKey().AsJacobian(&q)
	run := func(lo, hi int, f func(j int) error) time.Duration {
		t0 := threadCPU()
		for i := lo; i < hi; i++ {
			if err := f(i % len(as)); err != nil {
				b.Fatal(err)
			}
		}
		return threadCPU() - t0
	}
	b.ResetTimer()
	for lo := 0; lo < b.N; lo += 64 {
		hi := min(lo+64, b.N)
		ref += run(lo, hi, func(j int) error { return signer.Verify(testChainID, as[j]) })
		w += run(lo, hi, func(j int) error { return warm.Verify(as[j], ds[j]) })
		c += run(lo, hi, func(j int) error { return cold.Verify(as[j], ds[j]) })
		f += run(lo, hi, func(j int) error { return field.Verify(as[j], ds[j]) })
		t0 := threadCPU()
		for range tablesPerChunk {
			newTable(&q)
		}
		tb += threadCPU() - t0
	}
	b.StopTimer()
	if hits, _ := cold.Stats(); hits != 0 {
		b.Fatalf("%d hits on the cold cache", hits)
	}
	if _, misses := warm.Stats(); misses != 64 {
		b.Fatalf("%d misses on the warm cache, want 64 (each device's first attestation)", misses)
	}
	if th, _ := field.TierStats(); th != 0 {
		b.Fatalf("%d table hits in the field case", th)
	}
	if _, misses := field.Stats(); misses != 64 {
		b.Fatalf("%d misses in the field case, want 64 (each device's first attestation)", misses)
	}
	n := float64(b.N)
	b.ReportMetric(float64(ref.Microseconds())/n, "ref-µs")
	b.ReportMetric(float64(w.Microseconds())/n, "warm-µs")
	b.ReportMetric(float64(c.Microseconds())/n, "cold-µs")
	b.ReportMetric(float64(f.Microseconds())/n, "field-µs")
	b.ReportMetric(float64(tb.Microseconds())/float64((b.N+63)/64*tablesPerChunk), "table-µs")
	if w > 0 && c > 0 {
		b.ReportMetric(float64(ref)/float64(w), "x-warm")
		b.ReportMetric(float64(ref)/float64(c), "x-cold")
		b.ReportMetric(float64(ref)/float64(f), "x-field")
	}
}

// BenchmarkKeyTierMemory fills a key tier of DefaultKeys devices (with
// made-up addresses and coordinates: the tier does not look at them) and
// reports the heap it takes per device, "B/device" (KeyBytes).
func BenchmarkKeyTierMemory(b *testing.B) {
	for range b.N {
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		v := New(testChainID, DefaultSize, DefaultKeys)
		var dev signer.Address
		var xy [64]byte
		for i := range DefaultKeys + DefaultKeys/10 { // full, then evicting
			binary.BigEndian.PutUint64(dev[:], uint64(i)*0x9e3779b97f4a7c15)
			binary.BigEndian.PutUint32(dev[8:], uint32(i))
			binary.BigEndian.PutUint64(xy[:], uint64(i))
			v.addSlot(dev, xy)
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		if v.Keys() != DefaultKeys {
			b.Fatalf("%d keys, want %d", v.Keys(), DefaultKeys)
		}
		b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/DefaultKeys, "B/device")
		runtime.KeepAlive(v)
	}
}
