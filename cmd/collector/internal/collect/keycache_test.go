package collect

import "testing"

// TestKeyCacheConfig: the collector's cache bounds (key_cache,
// table_cache) reach the signature check: a table tier turned off builds
// no table, a key tier of one holds one key of 3 devices (which, taking
// turns, always miss), a key tier turned off recovers every signature;
// every attestation is stored either way, and KeyCache counts each check
// once.
func TestKeyCacheConfig(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		keys, tables          int
		wantKeys, wantTables  int
		wantCached, recovered bool // some checks through a cache; every one recovered
	}{
		{"defaults", 0, 0, 3, 3, true, false},
		{"keys, no tables", 3, -1, 3, 0, true, false},
		{"one key", 1, 0, 1, 0, false, true}, // 3 devices in turn evict each other
		{"no key tier", -1, 0, 0, 0, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := []*device{newDevice(t, nowBatch()-20), newDevice(t, nowBatch()-20), newDevice(t, nowBatch()-20)}
			allow := allowSet{}
			for _, d := range ds {
				allow[d.addr] = true
			}
			c, err := New(newLedger(t, true), Config{ChainID: testChainID, Allow: allow, KeyCache: tc.keys, TableCache: tc.tables}, nil)
			if err != nil {
				t.Fatal(err)
			}
			const rounds = 4
			for range rounds {
				var msgs []Message
				for _, d := range ds {
					msgs = append(msgs, d.msg(d.next(1000)))
				}
				rs, err := c.Process(msgs)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range rs {
					if !r.Ack() {
						t.Fatalf("refused: %v", r.Err)
					}
				}
			}
			kc := c.KeyCache()
			if kc.Keys != tc.wantKeys || kc.Tables != tc.wantTables {
				t.Errorf("cached %d keys, %d tables; want %d, %d", kc.Keys, kc.Tables, tc.wantKeys, tc.wantTables)
			}
			total := kc.TableHits + kc.KeyHits + kc.Recovered
			if total != rounds*uint64(len(ds)) {
				t.Errorf("%d checks counted (%+v), want %d", total, kc, rounds*len(ds))
			}
			if cached := kc.TableHits+kc.KeyHits > 0; cached != tc.wantCached {
				t.Errorf("checks through a cache: %+v, want some: %v", kc, tc.wantCached)
			}
			if tc.recovered && kc.Recovered != total {
				t.Errorf("%d of %d recovered, want all", kc.Recovered, total)
			}
			if tc.tables < 0 && kc.TableHits != 0 {
				t.Errorf("%d table hits with the table tier off", kc.TableHits)
			}
		})
	}
}
