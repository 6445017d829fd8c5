package pgledger_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/csop/tbox/cmd/collector/internal/ledger"
	"github.com/csop/tbox/cmd/collector/internal/ledger/ledgertest"
	"github.com/csop/tbox/cmd/collector/internal/ledger/pgledger"
	"github.com/csop/tbox/cmd/collector/internal/ledger/pgledger/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.StopShared()
	os.Exit(code)
}

func open(t *testing.T, url string, o *pgledger.Options) *pgledger.PG {
	t.Helper()
	l, err := pgledger.Open(context.Background(), url, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// TestConformance runs the ledger suite against a real PostgreSQL.
func TestConformance(t *testing.T) {
	ledgertest.Run(t, func(t *testing.T) (ledger.Ledger, func() ledger.Ledger) {
		url := pgtest.DB(t)
		l := open(t, url, &pgledger.Options{ChainID: ledgertest.ChainID})
		return l, func() ledger.Ledger { return open(t, url, &pgledger.Options{ChainID: ledgertest.ChainID}) }
	})
}

// TestMigrations: applied once (a second open changes nothing), recorded
// in schema_migrations; another chain ID, a newer schema and a read-only
// open of an empty database are refused.
func TestMigrations(t *testing.T) {
	url := pgtest.DB(t)
	if _, err := pgledger.Open(context.Background(), url, &pgledger.Options{ChainID: 1, ReadOnly: true}); !errors.Is(err, ledger.ErrVersion) {
		t.Errorf("read-only open of an empty database: %v, want ErrVersion", err)
	}
	l := open(t, url, &pgledger.Options{ChainID: 1})
	open(t, url, &pgledger.Options{ChainID: 1})
	var n, max int
	if err := l.Pool().QueryRow(context.Background(), `SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &max); err != nil {
		t.Fatal(err)
	}
	if n != 1 || max != 1 {
		t.Errorf("schema_migrations: %d rows, max %d; want 1, 1", n, max)
	}
	if _, err := pgledger.Open(context.Background(), url, &pgledger.Options{ChainID: 2}); !errors.Is(err, ledger.ErrChainID) {
		t.Errorf("open with another chain ID: %v, want ErrChainID", err)
	}
	if _, err := l.Pool().Exec(context.Background(), `INSERT INTO schema_migrations (version) VALUES (99)`); err != nil {
		t.Fatal(err)
	}
	if _, err := pgledger.Open(context.Background(), url, &pgledger.Options{ChainID: 1}); !errors.Is(err, ledger.ErrVersion) {
		t.Errorf("open of a newer schema: %v, want ErrVersion", err)
	}
}
