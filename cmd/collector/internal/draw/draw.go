// Package draw computes the Stone drop of README §C6: the per-batch supply, the tickets of a batch and its winners.
//
// # Units
//
// Amounts are integers in micro-Stones (1 Stone = 1,000,000 µStone), so that
// every collector computes the same awards without floating point.
//
// # Supply
//
// Batch b = floor(unix/600); the genesis batch is [Genesis]. The drop of
// batch b is
//
//	Drop(b) = floor(105,000,000 × 10^6 / (210,384 × 2^floor((b-Genesis)/210,384))) µStone
//
// and 0 before Genesis. The floor is taken once per batch: over the first
// era the drops sum to 105,000,000 Stones less 105×10^12 mod 210,384 µStone
// (less than 0.21 Stone); the halvings sum to 210,000,000 Stones within the
// same rounding.
//
// # Tickets
//
// Each attested meter in a batch is one ticket. An attestation covering
// batches B .. B+K-1 with M meters gives batch B+j floor(M/K) tickets, plus
// one more for the first M mod K batches (j < M mod K), so a span's tickets
// add up to M. The tickets of a batch are laid out in a canonical order:
// entries sorted by device address (bytes, ascending), then by seq; entry k
// holds the tickets [start_k, start_k + meters_k).
//
// # Winners
//
// With seed S (32 bytes, a public random value) and N winning tickets, win
// i (0 <= i < N) is ticket
//
//	t_i = uint256(keccak256(S || uint256(b) || uint256(i))) mod T
//
// where T is the batch's total tickets, uint256(x) is the 32-byte big-endian
// encoding (Solidity's abi.encodePacked(bytes32 seed, uint256 b, uint256 i))
// and keccak256 is Ethereum's (legacy Keccak, not SHA3-256). Tickets are
// drawn with replacement: a ticket, and a device, can win several times.
// Win i is worth floor(Drop(b)/N) µStone, plus one µStone for the first
// Drop(b) mod N wins (i < Drop(b) mod N), so that the wins add up to Drop(b)
// exactly. A batch without tickets awards nothing.
package draw

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"slices"

	"github.com/csop/tbox/signer"
	"golang.org/x/crypto/sha3"
)

// Schedule constants of README §C6.
const (
	// Genesis is the first batch of Mileage Mining: 2022-08-07 00:00 in
	// China (UTC+8), floor(1659801600/600).
	Genesis uint64 = 2766336
	// EraBatches is the number of batches between two halvings (four years).
	EraBatches uint64 = 210384
	// MicroPerStone is the number of µStone in a Stone.
	MicroPerStone uint64 = 1_000_000
	// FirstEraMicro is the supply of the first era: half of the 210,000,000
	// Stones mined in all.
	FirstEraMicro uint64 = 105_000_000 * MicroPerStone
	// BatchSeconds is the length of a batch.
	BatchSeconds = 600
)

// ErrNoTickets: a batch without attested meters has no winners.
var ErrNoTickets = errors.New("no tickets in batch")

// Drop returns the supply of batch b in µStone.
func Drop(b uint64) uint64 {
	if b < Genesis {
		return 0
	}
	era := (b - Genesis) / EraBatches
	if era >= 40 { // 210384 << 40 > FirstEraMicro: the drop is 0 long before
		return 0
	}
	return FirstEraMicro / (EraBatches << era)
}

// BatchOf returns the batch of a unix time in seconds: floor(unix/600).
func BatchOf(unix int64) uint64 {
	if unix < 0 {
		return 0
	}
	return uint64(unix) / BatchSeconds
}

// Share returns the tickets an attestation covering batches
// [batch, batch+batches) with meters meters gives to batch b: floor(M/K),
// plus one for the first M mod K batches; 0 outside the span.
func Share(batch uint64, batches uint32, meters uint64, b uint64) uint64 {
	if batches == 0 || b < batch || b-batch >= uint64(batches) {
		return 0
	}
	k := uint64(batches)
	s := meters / k
	if b-batch < meters%k {
		s++
	}
	return s
}

// Seed is the public random value of the draw (on a chain, a block hash).
type Seed [32]byte

// String returns the seed as 0x and 64 lowercase hex digits.
func (s Seed) String() string { return "0x" + hex.EncodeToString(s[:]) }

// MarshalText implements encoding.TextMarshaler.
func (s Seed) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with [ParseSeed].
func (s *Seed) UnmarshalText(b []byte) error {
	p, err := ParseSeed(string(b))
	if err != nil {
		return err
	}
	*s = p
	return nil
}

// ParseSeed parses 0x and 64 hex digits (32 bytes).
func ParseSeed(str string) (Seed, error) {
	var s Seed
	if len(str) != 66 || (str[:2] != "0x" && str[:2] != "0X") {
		return s, fmt.Errorf("expected 0x and 64 hex digits (32 bytes), found %q", excerpt(str))
	}
	if _, err := hex.Decode(s[:], []byte(str[2:])); err != nil {
		return s, fmt.Errorf("expected 0x and 64 hex digits (32 bytes), found %q: %w", excerpt(str), err)
	}
	return s, nil
}

func excerpt(s string) string {
	if len(s) > 70 {
		return s[:70] + "..."
	}
	return s
}

// Entry is one attestation's tickets in one batch.
type Entry struct {
	Device  signer.Address `json:"device"`
	Seq     uint64         `json:"seq"`
	Tickets uint64         `json:"tickets"`
}

// Win is one winning ticket.
type Win struct {
	Index  uint64         `json:"i"`      // i, 0 .. N-1
	Ticket uint64         `json:"ticket"` // t_i in [0, T)
	Device signer.Address `json:"device"` // holder of the ticket
	Seq    uint64         `json:"seq"`    // the attestation the ticket came from
	Micro  uint64         `json:"micro"`  // worth of the win in µStone
}

// Award is the total a device won in one batch.
type Award struct {
	Device signer.Address `json:"device"`
	Wins   int            `json:"wins"`
	Micro  uint64         `json:"micro"`
}

// Result is a batch's draw.
type Result struct {
	Batch   uint64  `json:"batch"`
	Seed    Seed    `json:"seed"`
	N       int     `json:"n"`
	Total   uint64  `json:"total"`   // T, total tickets
	Drop    uint64  `json:"drop"`    // Drop(Batch), µStone
	Entries int     `json:"entries"` // entries with tickets
	Wins    []Win   `json:"wins"`    // in draw order
	Awards  []Award `json:"awards"`  // by device address
}

// Ticket returns t_i for a batch with total tickets (total > 0).
func Ticket(seed Seed, b uint64, i uint64, total uint64) uint64 {
	var pre [96]byte
	copy(pre[:32], seed[:])
	binary.BigEndian.PutUint64(pre[56:64], b)
	binary.BigEndian.PutUint64(pre[88:96], i)
	h := sha3.NewLegacyKeccak256()
	h.Write(pre[:])
	var sum [32]byte
	h.Sum(sum[:0])
	// The 256-bit big-endian number mod total, one 64-bit limb at a time.
	var r uint64
	for off := 0; off < 32; off += 8 {
		_, r = bits.Div64(r, binary.BigEndian.Uint64(sum[off:off+8]), total)
	}
	return r
}

// Run draws n winning tickets of batch b from entries (any order; entries
// with zero tickets are ignored). It returns [ErrNoTickets] when no entry
// has tickets, and an error when n < 1 or the total overflows 64 bits.
func Run(seed Seed, b uint64, entries []Entry, n int) (*Result, error) {
	if n < 1 {
		return nil, fmt.Errorf("draw of batch %d: %d winners, expected at least 1", b, n)
	}
	es := make([]Entry, 0, len(entries))
	for _, e := range entries {
		if e.Tickets > 0 {
			es = append(es, e)
		}
	}
	slices.SortFunc(es, func(x, y Entry) int {
		if c := bytes.Compare(x.Device[:], y.Device[:]); c != 0 {
			return c
		}
		return cmp.Compare(x.Seq, y.Seq)
	})
	// ends[k] is one past the last ticket of es[k].
	ends := make([]uint64, len(es))
	var total uint64
	for k, e := range es {
		if k > 0 && e.Device == es[k-1].Device && e.Seq == es[k-1].Seq {
			return nil, fmt.Errorf("draw of batch %d: device %s seq %d listed twice", b, e.Device, e.Seq)
		}
		var carry uint64
		total, carry = bits.Add64(total, e.Tickets, 0)
		if carry != 0 {
			return nil, fmt.Errorf("draw of batch %d: more than 2^64-1 tickets", b)
		}
		ends[k] = total
	}
	if total == 0 {
		return nil, fmt.Errorf("draw of batch %d: %w", b, ErrNoTickets)
	}
	drop := Drop(b)
	each, extra := drop/uint64(n), drop%uint64(n)
	res := &Result{Batch: b, Seed: seed, N: n, Total: total, Drop: drop, Entries: len(es), Wins: make([]Win, n)}
	byDevice := make(map[signer.Address]int)
	for i := range uint64(n) {
		t := Ticket(seed, b, i, total)
		k, _ := slices.BinarySearchFunc(ends, t, func(end, t uint64) int {
			if end <= t {
				return -1
			}
			return 1
		})
		micro := each
		if i < extra {
			micro++
		}
		res.Wins[i] = Win{Index: i, Ticket: t, Device: es[k].Device, Seq: es[k].Seq, Micro: micro}
		j, ok := byDevice[es[k].Device]
		if !ok {
			j = len(res.Awards)
			byDevice[es[k].Device] = j
			res.Awards = append(res.Awards, Award{Device: es[k].Device})
		}
		res.Awards[j].Wins++
		res.Awards[j].Micro += micro
	}
	slices.SortFunc(res.Awards, func(x, y Award) int { return bytes.Compare(x.Device[:], y.Device[:]) })
	return res, nil
}

// FormatMicro formats µStone as a decimal Stone amount with six decimals.
func FormatMicro(micro uint64) string {
	return fmt.Sprintf("%d.%06d", micro/MicroPerStone, micro%MicroPerStone)
}
