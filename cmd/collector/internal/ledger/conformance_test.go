package ledger_test

import (
	"path/filepath"
	"testing"

	"github.com/csop/tbox/cmd/collector/internal/ledger"
	"github.com/csop/tbox/cmd/collector/internal/ledger/ledgertest"
)

// TestConformance runs the ledger suite against bbolt.
func TestConformance(t *testing.T) {
	ledgertest.Run(t, func(t *testing.T) (ledger.Ledger, func() ledger.Ledger) {
		l, err := ledger.Open(filepath.Join(t.TempDir(), "c.db"), &ledger.Options{ChainID: ledgertest.ChainID, NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l, func() ledger.Ledger { return l }
	})
}
