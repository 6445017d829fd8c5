package agent

import (
	"bytes"
	"sync"

	"github.com/csop/tbox/store"
)

// MemoryOutbox is an Outbox in memory, for a replay without --state and for
// tests. It keeps every record; it is safe for concurrent use.
type MemoryOutbox struct {
	mu      sync.Mutex
	records []store.Record
	state   []byte
}

var _ Outbox = (*MemoryOutbox)(nil)

// Append adds rec, which must be the next seq.
func (m *MemoryOutbox) Append(rec store.Record, state []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if want := uint64(len(m.records)) + 1; rec.Seq != want {
		return &store.SeqError{Got: rec.Seq, Want: want}
	}
	rec.Wire = bytes.Clone(rec.Wire)
	m.records = append(m.records, rec)
	m.state = bytes.Clone(state)
	return nil
}

// Checkpoint keeps state.
func (m *MemoryOutbox) Checkpoint(state []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.state = bytes.Clone(state)
	return nil
}

// Last returns the chain head.
func (m *MemoryOutbox) Last() (uint64, [32]byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.records) == 0 {
		return 0, [32]byte{}
	}
	r := m.records[len(m.records)-1]
	return r.Seq, r.Digest
}

// State returns the last state saved.
func (m *MemoryOutbox) State() ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return bytes.Clone(m.state), nil
}

// Stats reports the depth; a MemoryOutbox is never full.
func (m *MemoryOutbox) Stats() store.Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	var st store.Stats
	st.Depth = len(m.records)
	if n := len(m.records); n > 0 {
		st.Head = m.records[n-1].Seq
	}
	return st
}

// Records returns a copy of every record appended.
func (m *MemoryOutbox) Records() []store.Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]store.Record(nil), m.records...)
}

// Get returns the record seq.
func (m *MemoryOutbox) Get(seq uint64) (store.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if seq == 0 || seq > uint64(len(m.records)) {
		return store.Record{}, errorf("seq %d: %w", seq, store.ErrNotFound)
	}
	return m.records[seq-1], nil
}

// Flush does nothing: a MemoryOutbox keeps nothing on disk.
func (m *MemoryOutbox) Flush() error { return nil }
