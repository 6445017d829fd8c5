package pgledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/csop/tbox/cmd/collector/internal/draw"
	"github.com/csop/tbox/cmd/collector/internal/ledger"
	"github.com/csop/tbox/signer"
	"github.com/jackc/pgx/v5"
)

// devState is a device row locked by this transaction.
type devState struct {
	h     ledger.Head
	held  int
	used  bool
	lost  *ledger.Loss
	dirty bool // h, held or used to be written
}

// pgTx implements ledger.Tx.
type pgTx struct {
	ctx     context.Context
	tx      pgx.Tx
	write   bool
	devs    map[signer.Address]*devState // locked (write) devices
	shared  map[uint64]bool              // batches whose shared advisory lock is queued
	undrawn map[uint64]bool              // batches queued into undrawn
	batch   *pgx.Batch                   // queued writes
	rows    rows                         // appended rows not yet queued (see spill)
	err     error                        // the first failure of a method without an error result
}

// rows are the writes of consecutive Appends, gathered into arrays so
// that each table gets one multi-row statement (unnest) instead of one
// statement per row: PostgreSQL parses, plans and executes one INSERT of
// 256 rows in a fraction of the time of 256 INSERTs.
type rows struct {
	attDev, attDigest, attWire [][]byte
	attSeq                     []int64
	attVerdict                 []string
	modeDev                    [][]byte
	modeName, modeMeters       []string
	tkBatch, tkSeq, tkN        []int64
	tkDev                      [][]byte
	locks                      []int32 // batches whose shared advisory lock is not queued yet
	undrawn                    []int64 // batches to file as undrawn
}

func (r *rows) empty() bool { return len(r.attDev) == 0 && len(r.locks) == 0 && len(r.undrawn) == 0 }

// spill queues the gathered rows, in the order the single-row statements
// had: the attestations, their modes, the batches' shared locks before
// their tickets, the undrawn batches. Any other statement is queued after
// a spill, so the transaction's writes keep their order.
func (t *pgTx) spill() {
	r := &t.rows
	if r.empty() {
		return
	}
	if t.batch == nil {
		t.batch = &pgx.Batch{}
	}
	b := t.batch
	if len(r.attDev) > 0 {
		b.Queue(`INSERT INTO attestations (device, seq, digest, wire, verdict)
			SELECT u.d, u.s, u.g, u.w, u.v::jsonb FROM unnest($1::bytea[], $2::bigint[], $3::bytea[], $4::bytea[], $5::text[]) AS u(d, s, g, w, v)`,
			r.attDev, r.attSeq, r.attDigest, r.attWire, r.attVerdict)
	}
	if len(r.modeDev) > 0 {
		// One row per (device, mode): ON CONFLICT DO UPDATE may not touch
		// a row twice in one statement.
		b.Queue(`INSERT INTO modes (device, mode, meters)
			SELECT u.d, u.m, sum(u.x::numeric) FROM unnest($1::bytea[], $2::text[], $3::text[]) AS u(d, m, x) GROUP BY u.d, u.m
			ON CONFLICT (device, mode) DO UPDATE SET meters = modes.meters + EXCLUDED.meters`,
			r.modeDev, r.modeName, r.modeMeters)
	}
	for _, bt := range r.locks {
		b.Queue(`SELECT pg_advisory_xact_lock_shared($1, $2)`, int32(lockClass), bt)
	}
	if len(r.tkDev) > 0 {
		b.Queue(`INSERT INTO tickets (batch, device, seq, tickets, late)
			SELECT u.b, u.d, u.s, u.n, EXISTS (SELECT 1 FROM draws WHERE draws.batch = u.b) FROM unnest($1::bigint[], $2::bytea[], $3::bigint[], $4::bigint[]) AS u(b, d, s, n)`,
			r.tkBatch, r.tkDev, r.tkSeq, r.tkN)
	}
	if len(r.undrawn) > 0 {
		b.Queue(`INSERT INTO undrawn (batch) SELECT u.b FROM unnest($1::bigint[]) AS u(b) WHERE NOT EXISTS (SELECT 1 FROM draws WHERE draws.batch = u.b) ON CONFLICT (batch) DO NOTHING`, r.undrawn)
	}
	t.rows = rows{}
}

var _ ledger.Tx = (*pgTx)(nil)

// i64 and u64 carry unsigned values in bigint, bit for bit.
func i64(u uint64) int64 { return int64(u) }
func u64(i int64) uint64 { return uint64(i) }

func (t *pgTx) queue(sql string, args ...any) {
	t.spill()
	if t.batch == nil {
		t.batch = &pgx.Batch{}
	}
	t.batch.Queue(sql, args...)
}

// flush sends the queued writes and the dirty heads.
func (t *pgTx) flush() error {
	var devs, heads [][]byte
	var held []int32
	var used []bool
	for dev, st := range t.devs {
		if st.dirty {
			devs = append(devs, dev[:])
			heads = append(heads, st.h.Encode())
			held = append(held, int32(st.held))
			used = append(used, st.used)
			st.dirty = false
		}
	}
	if len(devs) > 0 {
		t.queue(`UPDATE devices SET head = u.h, held = u.n, used = u.u FROM unnest($1::bytea[], $2::bytea[], $3::integer[], $4::boolean[]) AS u(d, h, n, u)
			WHERE devices.device = u.d`, devs, heads, held, used)
	}
	t.spill()
	if t.batch == nil {
		return nil
	}
	b := t.batch
	t.batch = nil
	br := t.tx.SendBatch(t.ctx, b)
	for i := 0; i < b.Len(); i++ {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return fmt.Errorf("ledger write: %w", err)
		}
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("ledger write: %w", err)
	}
	return nil
}

// fail keeps the first failure of a method that has no error result.
func (t *pgTx) fail(err error) {
	if t.err == nil {
		t.err = err
	}
}

func (t *pgTx) needWrite(op string) error {
	if !t.write {
		return fmt.Errorf("%s: %w", op, ledger.ErrReadOnly)
	}
	return nil
}

// Lock locks the head rows of devs (creating them), in address order.
func (t *pgTx) Lock(devs []signer.Address) error {
	if !t.write {
		return nil
	}
	var need [][]byte
	for _, d := range devs {
		if t.devs[d] == nil {
			need = append(need, append([]byte(nil), d[:]...))
		}
	}
	if len(need) == 0 {
		return nil
	}
	if err := t.flush(); err != nil {
		return err
	}
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO devices (device, head) SELECT d, $2 FROM unnest($1::bytea[]) AS d ORDER BY d ON CONFLICT (device) DO NOTHING`, need, ledger.Head{}.Encode())
	b.Queue(`SELECT device, head, held, used, lost FROM devices WHERE device = ANY($1) ORDER BY device FOR UPDATE`, need)
	br := t.tx.SendBatch(t.ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("device lock: %w", err)
	}
	rows, err := br.Query()
	if err != nil {
		return fmt.Errorf("device lock: %w", err)
	}
	for rows.Next() {
		var dk, hk, lost []byte
		st := &devState{}
		if err := rows.Scan(&dk, &hk, &st.held, &st.used, &lost); err != nil {
			return fmt.Errorf("device lock: %w", err)
		}
		var dev signer.Address
		if len(dk) != len(dev) {
			return fmt.Errorf("device key %x: %w", dk, ledger.ErrCorrupt)
		}
		copy(dev[:], dk)
		if st.h, err = ledger.DecodeHead(hk); err != nil {
			return fmt.Errorf("device %s: %w", dev, err)
		}
		if lost != nil {
			var l ledger.Loss
			if err := json.Unmarshal(lost, &l); err != nil {
				return fmt.Errorf("device %s loss announcement: %w: %v", dev, ledger.ErrCorrupt, err)
			}
			st.lost = &l
		}
		t.devs[dev] = st
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("device lock: %w", err)
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("device lock: %w", err)
	}
	return nil
}

func (t *pgTx) lockDev(dev signer.Address) (*devState, error) {
	if st := t.devs[dev]; st != nil {
		return st, nil
	}
	if err := t.needWrite("device lock"); err != nil {
		return nil, err
	}
	if err := t.Lock([]signer.Address{dev}); err != nil {
		return nil, err
	}
	st := t.devs[dev]
	if st == nil {
		return nil, fmt.Errorf("device %s: head row not found after insert: %w", dev, ledger.ErrCorrupt)
	}
	return st, nil
}

// query flushes the queued writes and runs a query.
func (t *pgTx) query(sql string, args ...any) (pgx.Rows, error) {
	if err := t.flush(); err != nil {
		return nil, err
	}
	return t.tx.Query(t.ctx, sql, args...)
}

func (t *pgTx) queryRow(sql string, args []any, dest ...any) error {
	if err := t.flush(); err != nil {
		return err
	}
	return t.tx.QueryRow(t.ctx, sql, args...).Scan(dest...)
}

func (t *pgTx) exec(sql string, args ...any) (int64, error) {
	if err := t.flush(); err != nil {
		return 0, err
	}
	tag, err := t.tx.Exec(t.ctx, sql, args...)
	return tag.RowsAffected(), err
}

// Head returns the device's head (locked in a write transaction).
func (t *pgTx) Head(dev signer.Address) (ledger.Head, error) {
	if t.write {
		st, err := t.lockDev(dev)
		if err != nil {
			return ledger.Head{}, err
		}
		return st.h, nil
	}
	var hk []byte
	err := t.queryRow(`SELECT head FROM devices WHERE device = $1`, []any{dev[:]}, &hk)
	if errors.Is(err, pgx.ErrNoRows) {
		return ledger.Head{}, nil
	}
	if err != nil {
		return ledger.Head{}, fmt.Errorf("device %s head: %w", dev, err)
	}
	h, err := ledger.DecodeHead(hk)
	if err != nil {
		return h, fmt.Errorf("device %s: %w", dev, err)
	}
	return h, nil
}

// Stored returns the digest and wire form stored for seq.
func (t *pgTx) Stored(dev signer.Address, seq uint64) (digest [32]byte, wire []byte, ok bool) {
	var d []byte
	err := t.queryRow(`SELECT digest, wire FROM attestations WHERE device = $1 AND seq = $2`, []any{dev[:], i64(seq)}, &d, &wire)
	if errors.Is(err, pgx.ErrNoRows) {
		return digest, nil, false
	}
	if err != nil {
		t.fail(fmt.Errorf("device %s seq %d: %w", dev, seq, err))
		return digest, nil, false
	}
	if len(d) != 32 {
		t.fail(fmt.Errorf("device %s seq %d digest of %d bytes: %w", dev, seq, len(d), ledger.ErrCorrupt))
		return digest, nil, false
	}
	copy(digest[:], d)
	return digest, wire, true
}

// Append stores a as the device's next seq with its verdict.
func (t *pgTx) Append(a *signer.Attestation, digest [32]byte, wire []byte, v ledger.Verdict) error {
	st, err := t.lockDev(a.Device)
	if err != nil {
		return err
	}
	if a.Seq != st.h.Seq+1 {
		return fmt.Errorf("device %s: append seq %d, head is %d: %w", a.Device, a.Seq, st.h.Seq, ledger.ErrNotNext)
	}
	vj, err := ledger.MarshalVerdict(v)
	if err != nil {
		return err
	}
	dev := a.Device[:]
	r := &t.rows
	r.attDev, r.attSeq, r.attDigest, r.attWire = append(r.attDev, dev), append(r.attSeq, i64(a.Seq)), append(r.attDigest, digest[:]), append(r.attWire, wire)
	r.attVerdict = append(r.attVerdict, string(vj))
	for _, m := range a.Modes {
		r.modeDev, r.modeName, r.modeMeters = append(r.modeDev, dev), append(r.modeName, m.Mode), append(r.modeMeters, strconv.FormatUint(m.Meters, 10))
	}
	st.h = st.h.After(a, digest, v)
	st.used, st.dirty = true, true
	if !v.Eligible {
		return nil
	}
	return ledger.Tickets(a, func(b, n uint64) error {
		if !t.shared[b] {
			r.locks = append(r.locks, int32(uint32(b)))
			t.shared[b] = true
		}
		r.tkBatch, r.tkDev, r.tkSeq, r.tkN = append(r.tkBatch, i64(b)), append(r.tkDev, dev), append(r.tkSeq, i64(a.Seq)), append(r.tkN, i64(n))
		if !t.undrawn[b] {
			if t.undrawn == nil {
				t.undrawn = map[uint64]bool{}
			}
			r.undrawn = append(r.undrawn, i64(b))
			t.undrawn[b] = true
		}
		return nil
	})
}

// Verdict returns the verdict stored for seq.
func (t *pgTx) Verdict(dev signer.Address, seq uint64) (ledger.Verdict, bool, error) {
	var v ledger.Verdict
	var raw []byte
	err := t.queryRow(`SELECT verdict FROM attestations WHERE device = $1 AND seq = $2`, []any{dev[:], i64(seq)}, &raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return v, false, nil
	}
	if err != nil {
		return v, false, fmt.Errorf("device %s seq %d verdict: %w", dev, seq, err)
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, false, fmt.Errorf("device %s seq %d verdict: %w: %v", dev, seq, ledger.ErrCorrupt, err)
	}
	return v, true, nil
}

// Records calls fn for each stored attestation of dev, by seq.
func (t *pgTx) Records(dev signer.Address, fn func(seq uint64, digest [32]byte, wire []byte) error) error {
	type rec struct {
		seq    int64
		digest []byte
		wire   []byte
	}
	rows, err := t.query(`SELECT seq, digest, wire FROM attestations WHERE device = $1 ORDER BY (seq < 0), seq`, dev[:])
	if err != nil {
		return fmt.Errorf("device %s records: %w", dev, err)
	}
	recs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (rec, error) {
		var x rec
		err := r.Scan(&x.seq, &x.digest, &x.wire)
		return x, err
	})
	if err != nil {
		return fmt.Errorf("device %s records: %w", dev, err)
	}
	for _, r := range recs {
		if len(r.digest) != 32 {
			return fmt.Errorf("device %s seq %d digest of %d bytes: %w", dev, u64(r.seq), len(r.digest), ledger.ErrCorrupt)
		}
		var d [32]byte
		copy(d[:], r.digest)
		if err := fn(u64(r.seq), d, r.wire); err != nil {
			return err
		}
	}
	return nil
}

func scanAddrs(rows pgx.Rows, err error, what string) ([]signer.Address, error) {
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	out := make([]signer.Address, 0, len(keys))
	for _, k := range keys {
		var a signer.Address
		if len(k) != len(a) {
			return nil, fmt.Errorf("%s: key %x: %w", what, k, ledger.ErrCorrupt)
		}
		copy(a[:], k)
		out = append(out, a)
	}
	return out, nil
}

// Devices returns every device with anything stored, held, broken or
// announced, by address.
func (t *pgTx) Devices() ([]signer.Address, error) {
	rows, err := t.query(`SELECT device FROM devices WHERE used ORDER BY device`)
	return scanAddrs(rows, err, "devices")
}

func parseNumeric(s string) (uint64, error) { return strconv.ParseUint(s, 10, 64) }

// Modes returns the device's meters per drive mode.
func (t *pgTx) Modes(dev signer.Address) (map[string]uint64, error) {
	rows, err := t.query(`SELECT mode, (meters % 18446744073709551616)::text FROM modes WHERE device = $1`, dev[:])
	if err != nil {
		return nil, fmt.Errorf("device %s modes: %w", dev, err)
	}
	defer rows.Close()
	ms := map[string]uint64{}
	for rows.Next() {
		var mode, n string
		if err := rows.Scan(&mode, &n); err != nil {
			return nil, fmt.Errorf("device %s modes: %w", dev, err)
		}
		v, err := parseNumeric(n)
		if err != nil {
			return nil, fmt.Errorf("device %s mode %q meters %q: %w", dev, mode, n, ledger.ErrCorrupt)
		}
		ms[mode] = v
	}
	return ms, rows.Err()
}

// Awards returns the device's winning tickets and their worth.
func (t *pgTx) Awards(dev signer.Address) (wins, micro uint64, err error) {
	var w, m string
	err = t.queryRow(`SELECT coalesce(sum(wins), 0)::text, coalesce(sum(micro), 0)::text FROM awards WHERE device = $1`, []any{dev[:]}, &w, &m)
	if err != nil {
		return 0, 0, fmt.Errorf("device %s awards: %w", dev, err)
	}
	if wins, err = parseNumeric(w); err != nil {
		return 0, 0, fmt.Errorf("device %s awards: %w", dev, err)
	}
	if micro, err = parseNumeric(m); err != nil {
		return 0, 0, fmt.Errorf("device %s awards: %w", dev, err)
	}
	return wins, micro, nil
}

// Hold keeps an attestation beyond head + 1 (see ledger.Bolt's Hold).
func (t *pgTx) Hold(a *signer.Attestation, digest [32]byte, wire []byte, at time.Time) (*ledger.Held, error) {
	st, err := t.lockDev(a.Device)
	if err != nil {
		return nil, err
	}
	if st.held > 0 {
		var d, w []byte
		var rec int64
		err := t.queryRow(`SELECT digest, received, wire FROM held WHERE device = $1 AND seq = $2`, []any{a.Device[:], i64(a.Seq)}, &d, &rec, &w)
		switch {
		case err == nil:
			h := ledger.Held{Seq: a.Seq, Received: time.Unix(0, rec).UTC(), Wire: w}
			copy(h.Digest[:], d)
			if h.Digest == digest {
				return nil, nil
			}
			return &h, nil
		case !errors.Is(err, pgx.ErrNoRows):
			return nil, fmt.Errorf("device %s held seq %d: %w", a.Device, a.Seq, err)
		}
	}
	t.queue(`INSERT INTO held (device, seq, digest, received, wire) VALUES ($1, $2, $3, $4, $5)`, a.Device[:], i64(a.Seq), digest[:], at.UnixNano(), wire)
	st.held++
	st.used, st.dirty = true, true
	return nil, nil
}

// HeldSeqs returns the device's held attestations, by seq.
func (t *pgTx) HeldSeqs(dev signer.Address) ([]ledger.Held, error) {
	if t.write {
		st, err := t.lockDev(dev)
		if err != nil {
			return nil, err
		}
		if st.held == 0 {
			return nil, nil
		}
	}
	rows, err := t.query(`SELECT seq, digest, received, wire FROM held WHERE device = $1 ORDER BY (seq < 0), seq`, dev[:])
	if err != nil {
		return nil, fmt.Errorf("device %s held: %w", dev, err)
	}
	hs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ledger.Held, error) {
		var seq, rec int64
		var d []byte
		var h ledger.Held
		if err := r.Scan(&seq, &d, &rec, &h.Wire); err != nil {
			return h, err
		}
		if len(d) != 32 {
			return h, fmt.Errorf("held seq %d digest: %w", u64(seq), ledger.ErrCorrupt)
		}
		h.Seq, h.Received = u64(seq), time.Unix(0, rec).UTC()
		copy(h.Digest[:], d)
		return h, nil
	})
	if err != nil {
		return nil, fmt.Errorf("device %s held: %w", dev, err)
	}
	return hs, nil
}

// Release removes a held seq.
func (t *pgTx) Release(dev signer.Address, seq uint64) error {
	st, err := t.lockDev(dev)
	if err != nil {
		return err
	}
	if st.held == 0 {
		return nil
	}
	n, err := t.exec(`DELETE FROM held WHERE device = $1 AND seq = $2`, dev[:], i64(seq))
	if err != nil {
		return fmt.Errorf("device %s release seq %d: %w", dev, seq, err)
	}
	st.held -= int(n)
	st.dirty = true
	return nil
}

// RecordBreak records a chain break and moves the head past it.
func (t *pgTx) RecordBreak(b ledger.Break, prev [32]byte) error {
	st, err := t.lockDev(b.Device)
	if err != nil {
		return err
	}
	if b.From != st.h.Seq+1 || b.To < b.From {
		return fmt.Errorf("device %s: break %d .. %d, head is %d: %w", b.Device, b.From, b.To, st.h.Seq, ledger.ErrNotNext)
	}
	b.Prev = fmt.Sprintf("0x%x", prev)
	v, err := json.Marshal(b)
	if err != nil {
		return err
	}
	t.queue(`INSERT INTO breaks (device, from_seq, to_seq, record) VALUES ($1, $2, $3, $4)`, b.Device[:], i64(b.From), i64(b.To), string(v))
	st.h.Seq, st.h.Digest = b.To, prev
	st.h.Breaks++
	st.used, st.dirty = true, true
	return nil
}

// Breaks returns the device's recorded chain breaks, by seq.
func (t *pgTx) Breaks(dev signer.Address) ([]ledger.Break, error) {
	rows, err := t.query(`SELECT record FROM breaks WHERE device = $1 ORDER BY (from_seq < 0), from_seq`, dev[:])
	if err != nil {
		return nil, fmt.Errorf("device %s breaks: %w", dev, err)
	}
	raws, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, fmt.Errorf("device %s breaks: %w", dev, err)
	}
	var bs []ledger.Break
	for _, raw := range raws {
		var b ledger.Break
		if err := json.Unmarshal(raw, &b); err != nil {
			return nil, fmt.Errorf("device %s break: %w: %v", dev, ledger.ErrCorrupt, err)
		}
		bs = append(bs, b)
	}
	return bs, nil
}

// BreakOf returns the recorded break containing seq, if any.
func (t *pgTx) BreakOf(dev signer.Address, seq uint64) (*ledger.Break, error) {
	bs, err := t.Breaks(dev)
	if err != nil {
		return nil, err
	}
	for i := range bs {
		if bs[i].From <= seq && seq <= bs[i].To {
			return &bs[i], nil
		}
	}
	return nil, nil
}

// AnnounceLoss records the device's latest loss announcement.
func (t *pgTx) AnnounceLoss(dev signer.Address, l ledger.Loss) (bool, error) {
	st, err := t.lockDev(dev)
	if err != nil {
		return false, err
	}
	if st.lost != nil && st.lost.From == l.From && st.lost.To == l.To {
		return false, nil
	}
	v, err := json.Marshal(l)
	if err != nil {
		return false, err
	}
	t.queue(`UPDATE devices SET lost = $2 WHERE device = $1`, dev[:], string(v))
	st.lost = &l
	st.used, st.dirty = true, true
	return true, nil
}

// Lost returns the device's latest loss announcement.
func (t *pgTx) Lost(dev signer.Address) (ledger.Loss, bool, error) {
	if t.write {
		st, err := t.lockDev(dev)
		if err != nil || st.lost == nil {
			return ledger.Loss{}, false, err
		}
		return *st.lost, true, nil
	}
	var raw []byte
	err := t.queryRow(`SELECT lost FROM devices WHERE device = $1`, []any{dev[:]}, &raw)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && raw == nil) {
		return ledger.Loss{}, false, nil
	}
	if err != nil {
		return ledger.Loss{}, false, fmt.Errorf("device %s loss announcement: %w", dev, err)
	}
	var l ledger.Loss
	if err := json.Unmarshal(raw, &l); err != nil {
		return l, false, fmt.Errorf("device %s loss announcement: %w: %v", dev, ledger.ErrCorrupt, err)
	}
	return l, true, nil
}

// RecordFork records fork evidence; it reports whether it was new.
func (t *pgTx) RecordFork(f ledger.Fork, digest [32]byte) (bool, error) {
	if err := t.needWrite("fork record"); err != nil {
		return false, err
	}
	v, err := json.Marshal(f)
	if err != nil {
		return false, err
	}
	n, err := t.exec(`INSERT INTO forks (device, seq, digest, record) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, f.Device[:], i64(f.Seq), digest[:], string(v))
	if err != nil {
		return false, fmt.Errorf("fork record: %w", err)
	}
	return n == 1, nil
}

// Forks returns the recorded forks, by device and seq.
func (t *pgTx) Forks() ([]ledger.Fork, error) {
	rows, err := t.query(`SELECT record FROM forks ORDER BY device, (seq < 0), seq, digest`)
	if err != nil {
		return nil, fmt.Errorf("forks: %w", err)
	}
	raws, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, fmt.Errorf("forks: %w", err)
	}
	var fs []ledger.Fork
	for _, raw := range raws {
		var f ledger.Fork
		if err := json.Unmarshal(raw, &f); err != nil {
			return nil, fmt.Errorf("fork: %w: %v", ledger.ErrCorrupt, err)
		}
		fs = append(fs, f)
	}
	return fs, nil
}

// Undrawn returns the batches with tickets and no recorded draw, ascending.
func (t *pgTx) Undrawn() []uint64 {
	rows, err := t.query(`SELECT batch FROM undrawn ORDER BY (batch < 0), batch`)
	if err == nil {
		var bs []int64
		if bs, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err == nil {
			out := make([]uint64, len(bs))
			for i, b := range bs {
				out[i] = u64(b)
			}
			return out
		}
	}
	t.fail(fmt.Errorf("undrawn batches: %w", err))
	return nil
}

func (t *pgTx) entries(b uint64, late bool) ([]draw.Entry, error) {
	rows, err := t.query(`SELECT device, seq, tickets FROM tickets WHERE batch = $1 AND late = $2 ORDER BY device, (seq < 0), seq`, i64(b), late)
	if err != nil {
		return nil, fmt.Errorf("batch %d index: %w", b, err)
	}
	es, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (draw.Entry, error) {
		var e draw.Entry
		var d []byte
		var seq, n int64
		if err := r.Scan(&d, &seq, &n); err != nil {
			return e, err
		}
		if len(d) != len(e.Device) {
			return e, fmt.Errorf("device key %x: %w", d, ledger.ErrCorrupt)
		}
		copy(e.Device[:], d)
		e.Seq, e.Tickets = u64(seq), u64(n)
		return e, nil
	})
	if err != nil {
		return nil, fmt.Errorf("batch %d index: %w", b, err)
	}
	return es, nil
}

// Entries returns the ticket index of batch b, by device then seq.
func (t *pgTx) Entries(b uint64) ([]draw.Entry, error) { return t.entries(b, false) }

// Late returns the tickets that arrived for batch b after its draw.
func (t *pgTx) Late(b uint64) []draw.Entry {
	es, err := t.entries(b, true)
	if err != nil {
		t.fail(err)
	}
	return es
}

// Draw returns the recorded draw of batch b, or nil.
func (t *pgTx) Draw(b uint64) (*ledger.DrawRecord, error) {
	var raw []byte
	err := t.queryRow(`SELECT record FROM draws WHERE batch = $1`, []any{i64(b)}, &raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("draw of batch %d: %w", b, err)
	}
	var r ledger.DrawRecord
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("draw of batch %d: %w: %v", b, ledger.ErrCorrupt, err)
	}
	return &r, nil
}

// ClaimDraw takes the batch's exclusive lock and reports whether it has
// no recorded draw.
func (t *pgTx) ClaimDraw(b uint64) (bool, error) {
	if err := t.needWrite("draw claim"); err != nil {
		return false, err
	}
	if _, err := t.exec(`SELECT pg_advisory_xact_lock($1, $2)`, int32(lockClass), int32(uint32(b))); err != nil {
		return false, fmt.Errorf("draw claim of batch %d: %w", b, err)
	}
	var drawn bool
	if err := t.queryRow(`SELECT EXISTS (SELECT 1 FROM draws WHERE batch = $1)`, []any{i64(b)}, &drawn); err != nil {
		return false, fmt.Errorf("draw claim of batch %d: %w", b, err)
	}
	return !drawn, nil
}

// RecordDraw records the draw of a batch and its awards.
func (t *pgTx) RecordDraw(b uint64, res *draw.Result, at time.Time) error {
	if err := t.needWrite("draw record"); err != nil {
		return err
	}
	rec := ledger.DrawRecord{At: at.UTC()}
	if res != nil {
		if res.Batch != b {
			return fmt.Errorf("draw of batch %d recorded as batch %d", res.Batch, b)
		}
		rec.Result = *res
	} else {
		rec.Batch = b
	}
	if len(rec.Awards) > 0 {
		keys := make([][]byte, len(rec.Awards))
		for i, a := range rec.Awards {
			keys[i] = append([]byte(nil), a.Device[:]...)
		}
		var known int
		if err := t.queryRow(`SELECT count(*) FROM devices WHERE device = ANY($1) AND used`, []any{keys}, &known); err != nil {
			return fmt.Errorf("draw of batch %d: %w", b, err)
		}
		if known != len(keys) {
			return fmt.Errorf("draw of batch %d: %d of its %d awarded devices are unknown", b, len(keys)-known, len(keys))
		}
	}
	v, err := json.Marshal(&rec)
	if err != nil {
		return err
	}
	n, err := t.exec(`INSERT INTO draws (batch, record) VALUES ($1, $2) ON CONFLICT (batch) DO NOTHING`, i64(b), string(v))
	if err != nil {
		return fmt.Errorf("draw of batch %d: %w", b, err)
	}
	if n == 0 {
		return fmt.Errorf("batch %d: %w", b, ledger.ErrDrawn)
	}
	t.queue(`DELETE FROM undrawn WHERE batch = $1`, i64(b))
	for _, a := range rec.Awards {
		t.queue(`INSERT INTO awards (batch, device, wins, micro) VALUES ($1, $2, $3, $4)`, i64(b), a.Device[:], int64(a.Wins), i64(a.Micro))
	}
	return nil
}

// Draws returns how many draws are recorded.
func (t *pgTx) Draws() (int, error) {
	var n int
	if err := t.queryRow(`SELECT count(*) FROM draws`, nil, &n); err != nil {
		return 0, fmt.Errorf("draws: %w", err)
	}
	return n, nil
}

// LastDraws returns the draws of the n highest batches, highest first, in
// one query (batches in unsigned order, as everywhere in this schema).
func (t *pgTx) LastDraws(n int) ([]ledger.DrawRecord, error) {
	if n <= 0 {
		return nil, nil
	}
	rows, err := t.query(`SELECT record FROM draws ORDER BY (batch < 0) DESC, batch DESC LIMIT $1`, n)
	if err != nil {
		return nil, fmt.Errorf("last draws: %w", err)
	}
	raws, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, fmt.Errorf("last draws: %w", err)
	}
	out := make([]ledger.DrawRecord, 0, len(raws))
	for _, raw := range raws {
		var r ledger.DrawRecord
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, fmt.Errorf("last draws: %w: %v", ledger.ErrCorrupt, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// RegistryAdd adds devices to the registry; it returns how many were new.
func (t *pgTx) RegistryAdd(devs []signer.Address) (int, error) {
	if err := t.needWrite("registry"); err != nil {
		return 0, err
	}
	n := 0
	for _, d := range devs {
		k, err := t.exec(`INSERT INTO registry (device) VALUES ($1) ON CONFLICT DO NOTHING`, d[:])
		if err != nil {
			return n, fmt.Errorf("registry: %w", err)
		}
		n += int(k)
	}
	return n, nil
}

// RegistryRemove removes devices; it returns how many were listed.
func (t *pgTx) RegistryRemove(devs []signer.Address) (int, error) {
	if err := t.needWrite("registry"); err != nil {
		return 0, err
	}
	n := 0
	for _, d := range devs {
		k, err := t.exec(`DELETE FROM registry WHERE device = $1`, d[:])
		if err != nil {
			return n, fmt.Errorf("registry: %w", err)
		}
		n += int(k)
	}
	return n, nil
}

// Registry returns the registered devices, by address.
func (t *pgTx) Registry() ([]signer.Address, error) {
	rows, err := t.query(`SELECT device FROM registry ORDER BY device`)
	return scanAddrs(rows, err, "registry")
}
