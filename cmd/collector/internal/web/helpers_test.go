package web

import (
	"bufio"

	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/csop/tbox/cmd/collector/internal/ledger"
	"github.com/csop/tbox/cmd/collector/internal/ledger/pgledger/pgtest"
	"github.com/csop/tbox/signer"
	"go.uber.org/goleak"
)

const testChainID = 20220807

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) { pgtest.StopShared(); os.Exit(code) }))
}

func testLog(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// newLedger opens a real bbolt ledger in a temp dir, audited at cleanup.
func newLedger(t testing.TB) *ledger.Bolt {
	t.Helper()
	l, err := ledger.Open(filepath.Join(t.TempDir(), "collector.db"), &ledger.Options{ChainID: testChainID, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Audit(); err != nil {
			t.Errorf("ledger audit: %v", err)
		}
		l.Close()
	})
	return l
}

type allowSet map[signer.Address]bool

func (s allowSet) Allowed(a signer.Address) bool { return s[a] }

// device is a fake T-Box: a real key and its chain.
type device struct {
	t     testing.TB
	key   *signer.FileKey
	addr  signer.Address
	seq   uint64
	prev  [32]byte
	batch uint64
}

func newDevice(t testing.TB, batch uint64) *device {
	t.Helper()
	path := filepath.Join(t.TempDir(), "device.key")
	if _, err := signer.GenerateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	key, err := signer.LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return &device{t: t, key: key, addr: key.Address(), batch: batch}
}

// next signs the next attestation (one batch, meters as ECO), advances the
// chain and the batch, and returns the wire form.
func (d *device) next(meters uint64) []byte {
	d.t.Helper()
	a := &signer.Attestation{V: signer.Version, Device: d.addr, Seq: d.seq + 1, Batch: d.batch, Batches: 1, Meters: meters, Prev: d.prev}
	if meters > 0 {
		a.Modes = []signer.ModeMeters{{Mode: "ECO", Meters: meters}}
	}
	if err := signer.Sign(d.key, testChainID, a); err != nil {
		d.t.Fatal(err)
	}
	d.seq, d.prev = a.Seq, signer.Digest(testChainID, a)
	d.batch++
	return a.AppendWire(nil)
}

func (d *device) topic(leaf string) string { return "csop/v1/" + d.addr.String() + "/" + leaf }

func nowBatch() uint64 { return uint64(time.Now().Unix()) / 600 }

// exposition is a parsed Prometheus text exposition: sample values by
// "name{labels}" as written, and the TYPE of each family.
type exposition struct {
	samples map[string]float64
	types   map[string]string
}

// parseExposition parses the text format strictly enough to catch what a
// Prometheus server would refuse: every sample belongs to a family with a
// TYPE line, names and values are well formed, no sample is repeated,
// histogram buckets are cumulative and end in +Inf = _count.
func parseExposition(t testing.TB, r io.Reader) exposition {
	t.Helper()
	e := exposition{samples: map[string]float64{}, types: map[string]string{}}
	sc := bufio.NewScanner(r)
	for ln := 1; sc.Scan(); ln++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			f := strings.Fields(line)
			if len(f) >= 4 && f[1] == "TYPE" {
				if _, dup := e.types[f[2]]; dup {
					t.Fatalf("line %d: second TYPE for %s", ln, f[2])
				}
				e.types[f[2]] = f[3]
			}
			continue
		}
		key, val, ok := strings.Cut(line, " ")
		if !ok {
			t.Fatalf("line %d: %q: no value", ln, line)
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			t.Fatalf("line %d: %q: value: %v", ln, line, err)
		}
		name := key
		if i := strings.IndexByte(key, '{'); i >= 0 {
			if !strings.HasSuffix(key, "}") {
				t.Fatalf("line %d: %q: unterminated labels", ln, line)
			}
			name = key[:i]
		}
		for _, c := range name {
			if !(c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
				t.Fatalf("line %d: metric name %q", ln, name)
			}
		}
		fam := name
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, suf); ok && e.types[b] == "histogram" {
				fam = b
			}
		}
		if _, ok := e.types[fam]; !ok {
			t.Fatalf("line %d: sample %s of family %s without a TYPE line before it", ln, key, fam)
		}
		if _, dup := e.samples[key]; dup {
			t.Fatalf("line %d: sample %s repeated", ln, key)
		}
		e.samples[key] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return e
}

// get returns a sample's value, failing the test when it is missing.
func (e exposition) get(t testing.TB, key string) float64 {
	t.Helper()
	v, ok := e.samples[key]
	if !ok {
		t.Fatalf("metric %s missing", key)
	}
	return v
}

// histogram checks a histogram's buckets (with labels, e.g. `op="commit",`)
// and returns its count.
func (e exposition) histogram(t testing.TB, name, labels string) float64 {
	t.Helper()
	var les []string
	for k := range e.samples {
		if strings.HasPrefix(k, name+"_bucket{"+labels+"le=") {
			les = append(les, k)
		}
	}
	if len(les) < 2 {
		t.Fatalf("histogram %s{%s}: %d buckets", name, labels, len(les))
	}
	type b struct{ le, v float64 }
	var bs []b
	for _, k := range les {
		s := k[strings.Index(k, "le=\"")+4 : len(k)-2]
		le, err := strconv.ParseFloat(s, 64) // "+Inf" parses as +Inf
		if err != nil {
			t.Fatalf("%s: le %q", k, s)
		}
		bs = append(bs, b{le, e.samples[k]})
	}
	for i := range bs {
		for j := range bs {
			if bs[i].le < bs[j].le && bs[i].v > bs[j].v {
				t.Fatalf("histogram %s{%s}: bucket le=%g has %g > le=%g's %g", name, labels, bs[i].le, bs[i].v, bs[j].le, bs[j].v)
			}
		}
	}
	br := ""
	if labels != "" {
		br = "{" + strings.TrimSuffix(labels, ",") + "}"
	}
	count := e.get(t, name+"_count"+br)
	if inf := e.get(t, name+"_bucket{"+labels+"le=\"+Inf\"}"); inf != count {
		t.Fatalf("histogram %s: +Inf bucket %g, count %g", name, inf, count)
	}
	e.get(t, name+"_sum"+br)
	return count
}

// scrape GETs url/metrics and parses it.
func scrape(t testing.TB, base string) exposition {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("/metrics: %s, Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	return parseExposition(t, resp.Body)
}

func fetch(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}
