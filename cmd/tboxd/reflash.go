package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"

	"github.com/csop/tbox/agent/uplink"
	"github.com/csop/tbox/store"
)

// reflashWait bounds the look for the retained receipt at the start of a
// device with no chain (a new device, or one reflashed with its key kept).
const reflashWait = 3 * time.Second

// resumeFromReceipt continues a device's chain from the collector's
// retained receipt when its own state is behind it (README §C2 rev 2,
// "Reflash"): verified against mqtt.collector_addresses, the receipt says
// the collector stored the device's chain up to seq N. When the outbox has
// no chain (a reflash with the key kept) or its head is below N (a state
// restored from an old backup, or a flash that lost its last writes), the
// outbox adopts the receipt: the next attestation is N+1 with prev = its
// digest instead of a fork (seq 1, or head+1 over seqs the collector
// already holds), the records the old state still held are dropped (every
// one is at or below N: the collector has that seq for good), and the
// first odometer reading after it is the new base, so nothing is credited
// twice. A head at or above N (the normal case) is left as it is. Without
// a broker, a receipt or a valid one within reflashWait, the device goes
// on from its own state as before.
func resumeFromReceipt(ctx context.Context, ucfg uplink.Config, st *store.Store, log *slog.Logger) {
	head, _ := st.Last()
	acked := st.Stats().AckedThrough
	r, wire, err := uplink.FetchReceipt(ctx, ucfg, reflashWait)
	switch {
	case err != nil && head == 0:
		log.Warn("no chain in the outbox and no retained receipt read; starting at seq 1", "err", err)
		return
	case err != nil:
		log.Warn("retained receipt not read; going on from the outbox's head", "head", head, "err", err)
		return
	case r == nil && head == 0:
		log.Info("no chain in the outbox and no retained receipt: a new device, starting at seq 1")
		return
	case r == nil:
		return
	case r.Seq <= head:
		return // the normal case: the device is at or ahead of its last receipt
	}
	dropped, err := st.Adopt(r.Seq, r.Digest, wire)
	if err != nil {
		log.Error("retained receipt not adopted; going on from the outbox's head", "head", head, "seq", r.Seq, "err", err)
		return
	}
	if head == 0 {
		log.Warn("reflashed device: chain resumed from the collector's retained receipt", "receipted_seq", r.Seq,
			"digest", "0x"+hex.EncodeToString(r.Digest[:]), "next_seq", r.Seq+1, "records_dropped", dropped)
		return
	}
	// Which seqs: head+1..N were made by a later state of this device,
	// which is gone, and the collector stored them. The records the old
	// state held unreceipted (acked+1..head) are covered by the receipt.
	// What cannot be known here is lost: whatever that later state made
	// after N and had not delivered, and the distance driven since; the
	// next attestation's base is the first reading from now on.
	attrs := []any{"local_head", head, "local_acked", acked, "receipted_seq", r.Seq,
		"digest", "0x" + hex.EncodeToString(r.Digest[:]), "next_seq", r.Seq + 1,
		"stored_by_a_later_state", fmt.Sprintf("%d..%d", head+1, r.Seq), "records_dropped", dropped}
	if dropped > 0 {
		attrs = append(attrs, "dropped_seqs", fmt.Sprintf("%d..%d", acked+1, head))
	}
	attrs = append(attrs, "lost", fmt.Sprintf("any attestation after seq %d not delivered before this state was restored, and the distance driven since", r.Seq))
	log.Warn("outbox state older than the collector's retained receipt: chain resumed from the receipt", attrs...)
}
