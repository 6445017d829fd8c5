package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/csop/tbox/agent/uplink"
	"github.com/csop/tbox/store"
)

// reflashWait bounds the look for the retained receipt at the start of a
// device with no chain (a new device, or one reflashed with its key kept).
const reflashWait = 3 * time.Second

// resumeFromReceipt continues a reflashed device's chain (README §C2 rev
// 2): when the outbox has no chain yet, the collector's retained receipt,
// verified against mqtt.collector_addresses, says the device's chain is
// stored up to seq N; the outbox adopts it, so the next attestation is
// N+1 with prev = its digest instead of a fork at seq 1, and the first
// odometer reading after it is the new base. Without a broker, a receipt
// or a valid one within reflashWait, the device starts at seq 1 as before.
// A state of its own (head > 0) is never touched here.
func resumeFromReceipt(ctx context.Context, ucfg uplink.Config, st *store.Store, log *slog.Logger) {
	if head, _ := st.Last(); head != 0 {
		return
	}
	r, wire, err := uplink.FetchReceipt(ctx, ucfg, reflashWait)
	switch {
	case err != nil:
		log.Warn("no chain in the outbox and no retained receipt read; starting at seq 1", "err", err)
		return
	case r == nil:
		log.Info("no chain in the outbox and no retained receipt: a new device, starting at seq 1")
		return
	}
	dropped, err := st.Adopt(r.Seq, r.Digest, wire)
	if err != nil {
		log.Error("retained receipt not adopted; starting at seq 1", "seq", r.Seq, "err", err)
		return
	}
	log.Warn("reflashed device: chain resumed from the collector's retained receipt", "receipted_seq", r.Seq,
		"digest", fmt.Sprintf("0x%x", r.Digest), "next_seq", r.Seq+1, "records_dropped", dropped)
}
