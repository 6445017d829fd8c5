package collect

import (
	"errors"
	"testing"

	"github.com/csop/tbox/cmd/collector/internal/ledger"
)

// errAbort rolls back the first attempt of retryLedger's transactions.
var errAbort = errors.New("first attempt aborted")

// retryLedger runs every Update twice, as a PostgreSQL ledger does when
// the database aborts a transaction (a deadlock, the server restarting):
// the first attempt runs fn to its end and is rolled back, the second
// commits.
type retryLedger struct {
	ledger.Ledger
	attempts int
}

func (l *retryLedger) Update(fn func(ledger.Tx) error) error {
	l.attempts++
	err := l.Ledger.Update(func(tx ledger.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return errAbort
	})
	if !errors.Is(err, errAbort) {
		return err
	}
	l.attempts++
	return l.Ledger.Update(fn)
}

// TestCountsOnceWhenRetried: a group whose transaction ran twice (rolled
// back once) is counted once: stored, ineligible and chain breaks, as
// /metrics reports them.
func TestCountsOnceWhenRetried(t *testing.T) {
	l := &retryLedger{Ledger: newLedger(t, true)}
	d := newDevice(t, nowBatch()-5)
	c, err := New(l, Config{ChainID: testChainID, Allow: allowSet{d.addr: true}}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	s1 := d.next(1000)
	d.batch++
	s2 := d.next(90_000) // 90 km in one batch: stored, ineligible
	d.batch++
	_ = d.next(1000) // seq 3: lost
	d.batch++
	s4 := d.next(1000) // held beyond the gap, then stored after the break
	lost := Message{Topic: d.topic("health"), Payload: []byte(`{"status":"online","maybe_lost":{"from":3,"to":3}}`)}
	rs, err := c.Process([]Message{d.msg(s1), d.msg(s2), d.msg(s4), lost})
	if err != nil {
		t.Fatal(err)
	}
	if l.attempts != 2 {
		t.Fatalf("%d attempts, want 2 (the test's premise)", l.attempts)
	}
	if len(rs) != 1 || !rs[0].Ack() || rs[0].Seq != 4 {
		t.Fatalf("replies %+v, want one ack of seq 4", rs)
	}
	want := Counts{Received: 4, Accepted: 3, Ineligible: 1, Breaks: 1, Held: 0}
	if got := c.Counts(); got != want {
		t.Errorf("counts %+v, want %+v", got, want)
	}
	s, err := l.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if dv := s.Devices[0]; dv.Attestations != 3 || dv.Breaks != 1 || dv.Ineligible != 1 {
		t.Errorf("ledger: %+v", dv)
	}
}
