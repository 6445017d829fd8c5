package rig

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/csop/tbox/agent/profile"
	"github.com/csop/tbox/hil"
	"github.com/csop/tbox/signer"
)

// Fixed parameters of the rig.
const (
	// ChainID is the EIP-712 chain ID the guest signs for and the
	// collector checks.
	ChainID = 20220807
	// DrawSeed is the collector's public random value: fixed, so that a
	// run's draws can be re-run by anyone.
	DrawSeed = "0x64656d6f2d64656d6f2d64656d6f2d64656d6f2d64656d6f2d64656d6f2d6421"
	// Winners is the collector's winning tickets per batch.
	Winners = 100
)

// Guest paths of the files every boot gets.
const (
	GuestEtc     = "/etc/tbox"
	GuestConfig  = GuestEtc + "/tboxd.toml"
	GuestProfile = GuestEtc + "/ev.toml"
	GuestKey     = GuestEtc + "/device.key"
	// The T-Box's mTLS files: the rig's CA, its certificate (CN = its
	// address) and the certificate's key.
	GuestCA      = GuestEtc + "/ca.crt"
	GuestCert    = GuestEtc + "/client.pem"
	GuestCertKey = GuestEtc + "/client.key"
)

// guestName is a path under GuestEtc as tboxd.toml names it (relative).
func guestName(p string) string { return strings.TrimPrefix(p, GuestEtc+"/") }

// Errors.
var (
	// ErrUnavailable: the emulated T-Box cannot run on this machine (it
	// wraps hil.ErrUnavailable, so either matches).
	ErrUnavailable = hil.ErrUnavailable
	// ErrNotStarted: a collector read (Store) while the rig has no
	// collector database.
	ErrNotStarted = errors.New("not started")
)

// Options configure a rig.
type Options struct {
	// Dir keeps the working files (keys, configs, databases, logs, the
	// MQTT capture); "" uses a temporary directory removed by Close.
	Dir string
	// Bins are binaries built before (Build), shared between rigs; nil
	// builds them into Dir.
	Bins *Bins
	// Log receives progress lines; nil discards them.
	Log func(format string, a ...any)
	// Verbose passes every line of the collector's log to Log.
	Verbose bool
}

// Rig is one field test bench: the kit, the binaries, a device key on the
// collector's allowlist, and the host processes it starts (mosquitto, the
// collector), which Close ends.
type Rig struct {
	Kit     *hil.Kit
	Bins    *Bins
	Dir     string
	Key     string         // the device key file (host)
	Device  signer.Address // its address
	Profile *profile.Profile
	// CollectorKey is the collector's receipt key file (signing_key) and
	// Collector its address (the guest's mqtt.collector_addresses).
	CollectorKey string
	Collector    signer.Address
	// PKI holds the rig's mTLS certificates: the broker's, the T-Box's
	// (CN = Device), the collector's and the capture's.
	PKI *PKI

	registry string
	opts     Options
	procs    procSet
	cleanup  func()

	mu       sync.Mutex
	closers  []func()
	collConf string // the last collector's configuration
}

// New prepares a rig: the kit (installed on a fresh machine), the binaries,
// the working directory and a fresh device key. Its error matches
// ErrUnavailable when the emulated T-Box cannot run here.
func New(ctx context.Context, o Options) (*Rig, error) {
	t := time.Now()
	kit, err := hil.Prepare(ctx)
	if err != nil {
		return nil, fmt.Errorf("emulated T-Box kit: %w", err)
	}
	r := &Rig{Kit: kit, opts: o, cleanup: func() {}}
	r.logf("kit ready in %v: %s, kernel %s", since(t), kit.QEMU, kit.KernelVersion)
	if o.Dir != "" {
		if err := os.MkdirAll(o.Dir, 0o700); err != nil {
			return nil, err
		}
		if r.Dir, err = filepath.Abs(o.Dir); err != nil {
			return nil, err
		}
	} else {
		d, err := os.MkdirTemp("", "tbox-rig-")
		if err != nil {
			return nil, err
		}
		r.Dir = d
		r.cleanup = func() { os.RemoveAll(d) }
	}
	fail := func(err error) (*Rig, error) {
		r.cleanup()
		return nil, err
	}
	r.Bins = o.Bins
	if r.Bins == nil {
		t = time.Now()
		if r.Bins, err = Build(ctx, filepath.Join(r.Dir, "bin")); err != nil {
			return fail(err)
		}
		r.logf("built tboxd, vsim, clocksync (linux/arm GOARM=7, static) and the collector (host) in %v", since(t))
	}
	if r.Profile, err = profile.Load(r.Bins.Profile); err != nil {
		return fail(err)
	}
	r.Key = r.path("device.key")
	if r.Device, err = signer.GenerateKeyFile(r.Key); err != nil {
		return fail(fmt.Errorf("device key: %w", err))
	}
	r.CollectorKey = r.path("collector.key")
	if r.Collector, err = signer.GenerateKeyFile(r.CollectorKey); err != nil {
		return fail(fmt.Errorf("collector key: %w", err))
	}
	if err := os.MkdirAll(r.path("pki"), 0o700); err != nil {
		return fail(err)
	}
	if r.PKI, err = newPKI(r.path("pki"), r.Device.String(), time.Now()); err != nil {
		return fail(fmt.Errorf("rig PKI: %w", err))
	}
	r.registry = r.path("devices.txt")
	if err := os.WriteFile(r.registry, []byte("# the rig's T-Box\n"+r.Device.String()+"\n"), 0o644); err != nil {
		return fail(err)
	}
	return r, nil
}

// Close ends every host process the rig started, closes its captures and
// removes a temporary working directory.
func (r *Rig) Close() {
	r.mu.Lock()
	closers := r.closers
	r.closers = nil
	r.mu.Unlock()
	for i := len(closers) - 1; i >= 0; i-- {
		closers[i]()
	}
	r.procs.killAll()
	r.cleanup()
}

func (r *Rig) onClose(f func()) {
	r.mu.Lock()
	r.closers = append(r.closers, f)
	r.mu.Unlock()
}

func (r *Rig) path(name string) string { return filepath.Join(r.Dir, name) }

// Path returns name in the rig's working directory.
func (r *Rig) Path(name string) string { return r.path(name) }

func (r *Rig) logf(format string, a ...any) {
	if r.opts.Log != nil {
		r.opts.Log(format, a...)
	}
}

// Bins are the binaries of a rig: for the guest (linux/arm, GOARM=7,
// static) and for the host.
type Bins struct {
	Tboxd, Vsim, Clocksync, TboxctlARM string // guest
	Collector, Tboxctl                 string // host
	Profile, DBC                       string // the sample car's profile (agent/profile/testdata)
}

// Build compiles the rig's binaries into dir, two at a time. No build-time
// stamp goes into tboxd: the guest's clock is often set earlier than any
// build, which tboxd would flag as CLOCK.
func Build(ctx context.Context, dir string) (*Bins, error) {
	root, err := hil.RepoRoot()
	if err != nil {
		return nil, err
	}
	j := func(n string) string { return filepath.Join(dir, n) }
	td := filepath.Join(root, "agent", "profile", "testdata")
	b := &Bins{
		Tboxd: j("arm/tboxd"), Vsim: j("arm/vsim"), Clocksync: j("arm/clocksync"), TboxctlARM: j("arm/tboxctl"),
		Collector: j("collector"), Tboxctl: j("tboxctl"),
		Profile: filepath.Join(td, "ev.toml"), DBC: filepath.Join(td, "ev.dbc"),
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(2)
	for pkg, out := range map[string]string{
		"./cmd/tboxd": b.Tboxd, "./cmd/vsim": b.Vsim, "./hil/rig/clocksync": b.Clocksync, "./cmd/tboxctl": b.TboxctlARM,
	} {
		g.Go(func() error { return hil.CrossBuild(gctx, pkg, out) })
	}
	for pkg, out := range map[string]string{"./cmd/collector": b.Collector, "./cmd/tboxctl": b.Tboxctl} {
		g.Go(func() error {
			cmd := commandContext(gctx, "go", "build", "-trimpath", "-o", out, pkg)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return b, nil
}

func since(t time.Time) time.Duration { return time.Since(t).Round(100 * time.Millisecond) }

// lineWriter splits a byte stream into lines for a callback.
type lineWriter struct {
	mu   sync.Mutex
	part []byte
	fn   func(string)
}

var _ io.Writer = (*lineWriter)(nil)

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.part = append(w.part, b...)
	for {
		i := indexByte(w.part, '\n')
		if i < 0 {
			return len(b), nil
		}
		line := string(w.part[:i])
		w.part = w.part[i+1:]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		w.fn(line)
	}
}

// flush passes on a last line without its newline.
func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.part) > 0 {
		w.fn(string(w.part))
		w.part = nil
	}
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}
