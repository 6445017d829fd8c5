// Package pgledger is the collector's ledger in PostgreSQL: the store that
// several collector processes share (README "Collectors side by side").
//
// # Order
//
// A device's chain is decided on its head row, locked with SELECT ... FOR
// UPDATE at the first Head or Lock of the device in a write transaction
// and held until commit: two collectors that receive seqs of one device
// take turns, and each sees what the other committed. A group's devices
// are locked at once in address order, so two groups never wait on each
// other in a cycle; a deadlock or serialization failure reported anyway is
// retried.
//
// The draw of a batch and the ticket index of that batch exclude each
// other with an advisory lock on the batch (exclusive for the draw, shared
// for each attestation indexing tickets), so an attestation stored while a
// batch is drawn waits and then goes to the late list: re-running the draw
// from the index always gives the recorded one. The draws table's primary
// key is the claim: one draw per batch.
//
// # Round trips
//
// In a write transaction, a locked device's head is cached; the writes are
// queued and sent in one pipelined batch before the next read or at
// commit, and consecutive appends are gathered into one multi-row
// statement per table (INSERT ... SELECT FROM unnest of arrays; the heads
// in one UPDATE ... FROM unnest). A group of in-order attestations costs
// two round trips and the commit, and about six statements whatever its
// size. synchronous_commit stays as the server has it (on by default):
// an ack is published only after its group's commit is durable.
package pgledger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/csop/tbox/cmd/collector/internal/ledger"
	"github.com/csop/tbox/signer"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Options configure Open. A nil *Options means the defaults.
type Options struct {
	ChainID uint64
	// ReadOnly opens for the read commands: no migration is applied, and a
	// database of another schema version is refused ([ledger.ErrVersion]).
	ReadOnly bool
	// RetryFor bounds how long Update retries a transaction that failed
	// for a transient reason (deadlock, serialization, the server
	// restarting or unreachable); DefaultRetryFor if zero.
	RetryFor time.Duration
	// MaxConns bounds the pool; pgxpool's default if zero.
	MaxConns int32
}

// DefaultRetryFor is how long Update retries transient failures.
const DefaultRetryFor = 15 * time.Second

// txTimeout bounds one transaction attempt.
const txTimeout = 60 * time.Second

// lockClass is the first key of the advisory locks this package takes
// ("tB" and 1): the second is the batch, or 0 for migrations.
const lockClass = 0x74420001

// PG is a ledger in a PostgreSQL database.
type PG struct {
	pool     *pgxpool.Pool
	chainID  uint64
	where    string
	readOnly bool
	retryFor time.Duration
}

var _ ledger.Ledger = (*PG)(nil)

// Open connects to the database at url (postgres://...), applies the
// missing schema migrations (unless read-only) and checks the chain ID.
func Open(ctx context.Context, url string, opts *Options) (*PG, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.RetryFor <= 0 {
		o.RetryFor = DefaultRetryFor
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database_url: %w", err) // pgx redacts the password
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	if o.MaxConns > 0 {
		cfg.MaxConns = o.MaxConns
	}
	where := redact(url, cfg)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("ledger %s: %w", where, err)
	}
	l := &PG{pool: pool, chainID: o.ChainID, where: where, readOnly: o.ReadOnly, retryFor: o.RetryFor}
	if err := l.prepare(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("ledger %s: %w", where, err)
	}
	return l, nil
}

// redact names the database without its password.
func redact(raw string, cfg *pgxpool.Config) string {
	if u, err := url.Parse(raw); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		return u.Redacted()
	}
	c := cfg.ConnConfig
	return fmt.Sprintf("postgres://%s@%s/%s", c.User, c.Host+":"+strconv.Itoa(int(c.Port)), c.Database)
}

// prepare applies the migrations and checks the chain ID, under an
// advisory lock so that collectors starting together take turns.
func (l *PG) prepare(ctx context.Context) error {
	return pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, 0)`, int32(lockClass)); err != nil {
			return fmt.Errorf("migration lock: %w", err)
		}
		var have int
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
			return fmt.Errorf("schema version: %w", err)
		}
		if exists {
			if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
				return fmt.Errorf("schema version: %w", err)
			}
		}
		switch {
		case have > schemaVersion:
			return fmt.Errorf("schema %d, this collector knows schema %d: %w", have, schemaVersion, ledger.ErrVersion)
		case have < schemaVersion && l.readOnly:
			return fmt.Errorf("schema %d, this collector reads schema %d: run `collector run` (or `collector migrate`) once to migrate it: %w", have, schemaVersion, ledger.ErrVersion)
		}
		if !exists {
			if _, err := tx.Exec(ctx, `CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied timestamptz NOT NULL DEFAULT now())`); err != nil {
				return fmt.Errorf("schema_migrations: %w", err)
			}
		}
		for v := have + 1; v <= schemaVersion; v++ {
			if _, err := tx.Exec(ctx, migrations[v]); err != nil {
				return fmt.Errorf("migration %d: %w", v, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, v); err != nil {
				return fmt.Errorf("migration %d: %w", v, err)
			}
		}
		want := strconv.FormatUint(l.chainID, 10)
		if !l.readOnly {
			if _, err := tx.Exec(ctx, `INSERT INTO meta (key, value) VALUES ('chain_id', $1) ON CONFLICT (key) DO NOTHING`, want); err != nil {
				return fmt.Errorf("chain ID: %w", err)
			}
		}
		var found string
		err := tx.QueryRow(ctx, `SELECT value FROM meta WHERE key = 'chain_id'`).Scan(&found)
		if errors.Is(err, pgx.ErrNoRows) {
			found = "none"
		} else if err != nil {
			return fmt.Errorf("chain ID: %w", err)
		}
		if found != want {
			return fmt.Errorf("chain ID %s, expected %d: %w", found, l.chainID, ledger.ErrChainID)
		}
		return nil
	})
}

// ChainID returns the chain ID the stored digests are computed for.
func (l *PG) ChainID() uint64 { return l.chainID }

// Where returns the database URL without its password.
func (l *PG) Where() string { return l.where }

// Close closes the pool.
func (l *PG) Close() error { l.pool.Close(); return nil }

// Pool returns the connection pool (tests and the benchmark).
func (l *PG) Pool() *pgxpool.Pool { return l.pool }

// transient reports whether a failed transaction may succeed if run again.
func transient(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "40P01", pe.Code == "40001": // deadlock, serialization failure
			return true
		case pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03": // admin shutdown, crash shutdown, cannot connect now
			return true
		case len(pe.Code) == 2+3 && pe.Code[:2] == "08": // connection exception
			return true
		}
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) || pgconn.SafeToRetry(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) ||
		strings.Contains(err.Error(), "conn closed")
}

// Update runs fn in a write transaction, retried while it fails for a
// transient reason, for at most Options.RetryFor.
func (l *PG) Update(fn func(ledger.Tx) error) error {
	if l.readOnly {
		return fmt.Errorf("update: %w", ledger.ErrReadOnly)
	}
	return l.retry(func() error { return l.run(true, fn) })
}

// View runs fn in a read-only transaction (one snapshot: REPEATABLE READ).
func (l *PG) View(fn func(ledger.Tx) error) error {
	return l.retry(func() error { return l.run(false, fn) })
}

func (l *PG) retry(attempt func() error) error {
	deadline := time.Now().Add(l.retryFor)
	wait := 20 * time.Millisecond
	for {
		err := attempt()
		if err == nil || !transient(err) || time.Now().Add(wait).After(deadline) {
			return err
		}
		time.Sleep(wait)
		if wait < time.Second {
			wait *= 2
		}
	}
}

func (l *PG) run(write bool, fn func(ledger.Tx) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), txTimeout)
	defer cancel()
	opts := pgx.TxOptions{IsoLevel: pgx.ReadCommitted}
	if !write {
		opts = pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	}
	return pgx.BeginTxFunc(ctx, l.pool, opts, func(tx pgx.Tx) error {
		t := &pgTx{ctx: ctx, tx: tx, write: write, devs: map[signer.Address]*devState{}, shared: map[uint64]bool{}}
		if err := fn(t); err != nil {
			return err
		}
		if t.err != nil {
			return t.err
		}
		return t.flush()
	})
}

// Stats summarizes the ledger (see ledger.StatsOf).
func (l *PG) Stats() (*ledger.Stats, error) { return ledger.StatsOf(l) }

// Device reports one device (see ledger.DeviceOf).
func (l *PG) Device(dev signer.Address) (*ledger.DeviceReport, error) { return ledger.DeviceOf(l, dev) }

// Audit re-checks every stored chain (ledger.AuditTx) in one snapshot,
// and that the ticket index names only stored eligible attestations.
func (l *PG) Audit() error {
	return l.View(func(t ledger.Tx) error {
		if err := ledger.AuditTx(t, l.chainID); err != nil {
			return err
		}
		pt := t.(*pgTx)
		var n int64
		err := pt.tx.QueryRow(pt.ctx, `SELECT count(*) FROM tickets t LEFT JOIN attestations a ON a.device = t.device AND a.seq = t.seq
			WHERE a.device IS NULL OR NOT (a.verdict->>'eligible')::boolean`).Scan(&n)
		if err != nil {
			return fmt.Errorf("ticket index check: %w", err)
		}
		if n > 0 {
			return fmt.Errorf("%d ticket index entries name no stored eligible attestation: %w", n, ledger.ErrCorrupt)
		}
		return nil
	})
}
