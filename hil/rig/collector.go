package rig

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/bbolt"

	"github.com/csop/tbox/signer"
)

// CollectorOptions configure the reference collector (cmd/collector).
type CollectorOptions struct {
	// Grace is how long after a batch's end its draw waits (default 1 s:
	// the rig's batches are in the past).
	Grace time.Duration
	// DrawEvery is how often the collector looks for batches to draw
	// (default 1 s).
	DrawEvery time.Duration
	// Quiet leaves the draws out of the rig's log (a backlog of
	// thousands of batches).
	Quiet bool
}

// Collector is the running host collector and what its log said.
type Collector struct {
	*proc
	Conf string // its configuration file
	DB   string // its bbolt database

	mu     sync.Mutex
	drawn  map[uint64]bool
	lines  []string
	change chan struct{}
}

// StartCollector runs `collector run` against b with a fresh database (or
// the one of an earlier collector of this rig) and waits until it has
// subscribed.
func (r *Rig) StartCollector(ctx context.Context, b *Broker, o CollectorOptions) (*Collector, error) {
	if o.Grace <= 0 {
		o.Grace = time.Second
	}
	if o.DrawEvery <= 0 {
		o.DrawEvery = time.Second
	}
	c := &Collector{Conf: r.path("collector.toml"), DB: r.path("collector.db"), drawn: map[uint64]bool{}, change: make(chan struct{}, 1)}
	conf := fmt.Sprintf(`# The rig's collector (cmd/collector/README.md).
broker     = %q
client_id  = "rig-collector"
ca         = %q
cert       = %q  # CN collector-1: the shipped ACL lets it write ack and nack
key        = %q
chain_id   = %d
registry   = %q
signing_key = %q
db         = %q
seed       = %q
winners    = %d
grace      = %q
draw_every = %q
log_level  = "info"
`, b.URL(), r.PKI.CA, r.PKI.CollectorCert, r.PKI.CollectorKey, ChainID, r.registry, r.CollectorKey, c.DB, DrawSeed, Winners, o.Grace.String(), o.DrawEvery.String())
	if err := os.WriteFile(c.Conf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.collConf = c.Conf
	r.mu.Unlock()
	cmd := commandContext(ctx, r.Bins.Collector, "run", "--config", c.Conf)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = io.Discard
	logf, err := os.OpenFile(r.path("collector.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	pr, err := r.procs.start("collector", cmd)
	if err != nil {
		logf.Close()
		return nil, err
	}
	c.proc = pr
	ready := make(chan struct{})
	go func() {
		defer logf.Close()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logf, line)
			kv := LogFields(line)
			c.mu.Lock()
			c.lines = append(c.lines, line)
			c.mu.Unlock()
			switch {
			case r.opts.Verbose:
				r.logf("collector| %s", line)
			case kv["msg"] == "batch drawn" && !o.Quiet:
				r.logf("collector: batch %s drawn: %s tickets, drop %s Stones", kv["batch"], kv["tickets"], kv["drop"])
			case kv["level"] == "WARN" || kv["level"] == "ERROR" || kv["msg"] == "attestation refused":
				r.logf("collector: %s", line)
			}
			if kv["msg"] == "connected and subscribed" {
				once.Do(func() { close(ready) })
			}
			if kv["msg"] == "batch drawn" {
				if bn, err := strconv.ParseUint(kv["batch"], 10, 64); err == nil {
					c.mu.Lock()
					c.drawn[bn] = true
					c.mu.Unlock()
					select {
					case c.change <- struct{}{}:
					default:
					}
				}
			}
		}
	}()
	select {
	case <-ready:
		return c, nil
	case <-pr.done:
		return nil, fmt.Errorf("collector exited at start (%v):\n%s", pr.err, strings.Join(c.Log(), "\n"))
	case <-time.After(15 * time.Second):
		pr.terminate(time.Second)
		return nil, fmt.Errorf("collector not subscribed after 15 s:\n%s", strings.Join(c.Log(), "\n"))
	case <-ctx.Done():
		pr.terminate(time.Second)
		return nil, ctx.Err()
	}
}

// Drawn returns the batches the collector's log says it drew.
func (c *Collector) Drawn() map[uint64]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[uint64]bool, len(c.drawn))
	for k, v := range c.drawn {
		out[k] = v
	}
	return out
}

// Changed is signalled (without blocking) when a batch is drawn.
func (c *Collector) Changed() <-chan struct{} { return c.change }

// Log returns the collector's log so far.
func (c *Collector) Log() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.lines)
}

// Stop ends the collector with SIGTERM, waiting up to d for a clean exit;
// its database can then be read (Stats, Draw, Audit, Store).
func (c *Collector) Stop(d time.Duration) error { return c.stop(d) }

// collectorCmd runs a read-only collector command on the rig's last
// collector configuration.
func (r *Rig) collectorCmd(ctx context.Context, args ...string) ([]byte, error) {
	r.mu.Lock()
	conf := r.collConf
	r.mu.Unlock()
	if conf == "" {
		return nil, fmt.Errorf("collector %s: %w: no collector configured", args[0], ErrNotStarted)
	}
	args = append([]string{args[0], "--config", conf}, args[1:]...)
	cmd := commandContext(ctx, r.Bins.Collector, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return out, fmt.Errorf("collector %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
		}
		return out, fmt.Errorf("collector %s: %w", args[0], err)
	}
	return out, nil
}

// Stats is the JSON of `collector stats --json`.
type Stats struct {
	Devices []DeviceStats `json:"devices"`
	Forks   int           `json:"forks"`
	Draws   int           `json:"draws"`
	Undrawn int           `json:"undrawn"`
}

// DeviceStats is one device's line of Stats.
type DeviceStats struct {
	Device       string            `json:"device"`
	Attestations uint64            `json:"attestations"`
	Meters       uint64            `json:"meters"`
	Modes        map[string]uint64 `json:"modes"`
	Batches      uint64            `json:"batches"`
	Wins         uint64            `json:"wins"`
	AwardMicro   uint64            `json:"award_micro"`
}

// CollectorStats runs `collector stats --json` (the collector stopped).
func (r *Rig) CollectorStats(ctx context.Context) (*Stats, error) {
	b, err := r.collectorCmd(ctx, "stats", "--json")
	if err != nil {
		return nil, err
	}
	var st Stats
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("collector stats --json: %w", err)
	}
	return &st, nil
}

// Draw is the JSON of `collector draw --batch B --json`.
type Draw struct {
	Batch  uint64 `json:"batch"`
	Result *struct {
		Total   uint64 `json:"total"`
		Drop    uint64 `json:"drop"`
		Entries int    `json:"entries"`
		N       int    `json:"n"`
		Awards  []struct {
			Device string `json:"device"`
			Wins   int    `json:"wins"`
			Micro  uint64 `json:"micro"`
		} `json:"awards"`
	} `json:"result"`
	Recorded *struct {
		At time.Time `json:"at"`
	} `json:"recorded"`
	Match bool              `json:"match"`
	Late  []json.RawMessage `json:"late"`
}

// CollectorDraw runs `collector draw --batch B --json` (the collector
// stopped). A draw that differs from the recorded one is returned with an
// error.
func (r *Rig) CollectorDraw(ctx context.Context, batch uint64) (*Draw, error) {
	b, err := r.collectorCmd(ctx, "draw", "--batch", strconv.FormatUint(batch, 10), "--json")
	var d Draw
	if jerr := json.Unmarshal(b, &d); jerr != nil {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("collector draw --batch %d --json: %w", batch, jerr)
	}
	return &d, nil
}

// CollectorAudit runs `collector audit`, which re-verifies every stored
// chain (the collector stopped); nil means it printed "ok".
func (r *Rig) CollectorAudit(ctx context.Context) error {
	b, err := r.collectorCmd(ctx, "audit")
	if err != nil {
		return err
	}
	if strings.TrimSpace(string(b)) != "ok" {
		return fmt.Errorf("collector audit: printed %q, want ok", b)
	}
	return nil
}

// Stored is one attestation in the collector's store.
type Stored struct {
	Seq    uint64
	Digest [32]byte // as the collector stored it
	Wire   []byte
	Att    *signer.Attestation
}

// Store is what the collector's bbolt database holds, read with the
// layout its ledger documents (cmd/collector/internal/ledger):
// dev/<device 20>/att/<seq 8 BE> = digest (32) || wire form, and forks/.
type Store struct {
	Devices map[signer.Address][]Stored // by seq, as stored
	Forks   int
}

// ReadStore reads the collector's database (the collector stopped).
func ReadStore(path string) (*Store, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("collector store: %w", err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("collector store %s: %w", path, err)
	}
	defer db.Close()
	s := &Store{Devices: map[signer.Address][]Stored{}}
	err = db.View(func(tx *bbolt.Tx) error {
		dev := tx.Bucket([]byte("dev"))
		if dev == nil {
			return fmt.Errorf("no dev bucket")
		}
		if f := tx.Bucket([]byte("forks")); f != nil {
			s.Forks = f.Stats().KeyN
		}
		return dev.ForEachBucket(func(k []byte) error {
			if len(k) != 20 {
				return fmt.Errorf("dev/%x: want a 20-byte device address", k)
			}
			var addr signer.Address
			copy(addr[:], k)
			att := dev.Bucket(k).Bucket([]byte("att"))
			if att == nil {
				return nil
			}
			return att.ForEach(func(key, v []byte) error {
				if len(key) != 8 || len(v) < 33 {
					return fmt.Errorf("dev/%x/att/%x: want an 8-byte seq and digest || wire, found %d bytes", k, key, len(v))
				}
				st := Stored{Seq: binary.BigEndian.Uint64(key), Wire: bytes.Clone(v[32:])}
				copy(st.Digest[:], v[:32])
				a, err := signer.ParseWire(st.Wire)
				if err != nil {
					return fmt.Errorf("dev/%x/att/%d: %w", k, st.Seq, err)
				}
				st.Att = a
				s.Devices[addr] = append(s.Devices[addr], st)
				return nil
			})
		})
	})
	if err != nil {
		return nil, fmt.Errorf("collector store %s: %w", path, err)
	}
	return s, nil
}

// Check returns what is wrong with one device's stored chain: seqs other
// than 1..N, a digest that is not the attestation's, a signature or link
// that does not verify, and recorded forks.
func (s *Store) Check(device signer.Address) []string {
	var out []string
	cc := signer.NewChainChecker(ChainID, signer.WithDevice(device))
	for i, st := range s.Devices[device] {
		if st.Seq != uint64(i+1) {
			out = append(out, fmt.Sprintf("store: entry %d holds seq %d, want %d", i+1, st.Seq, i+1))
		}
		if d := signer.Digest(ChainID, st.Att); d != st.Digest {
			out = append(out, fmt.Sprintf("store: seq %d: stored digest %x, the attestation's is %x", st.Seq, st.Digest, d))
		}
		for _, p := range cc.Check(st.Att) {
			out = append(out, "store: "+p.Error())
		}
	}
	if len(s.Devices) != 1 {
		out = append(out, fmt.Sprintf("store: %d devices, want 1", len(s.Devices)))
	}
	if s.Forks != 0 {
		out = append(out, fmt.Sprintf("store: %d forks recorded", s.Forks))
	}
	return out
}
