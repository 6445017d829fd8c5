package draw

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/csop/tbox/signer"
	"golang.org/x/crypto/sha3"
)

func addr(b byte) signer.Address {
	var a signer.Address
	a[0] = b
	a[19] = b
	return a
}

// refTicket computes t_i with big.Int from the preimage spelled out in hex,
// apart from Ticket's limb arithmetic.
func refTicket(t *testing.T, seed Seed, b, i, total uint64) uint64 {
	t.Helper()
	pre, err := hex.DecodeString(hex.EncodeToString(seed[:]) + fmt.Sprintf("%064x%064x", b, i))
	if err != nil || len(pre) != 96 {
		t.Fatalf("preimage: %v, %d bytes", err, len(pre))
	}
	h := sha3.NewLegacyKeccak256()
	h.Write(pre)
	n := new(big.Int).SetBytes(h.Sum(nil))
	return n.Mod(n, new(big.Int).SetUint64(total)).Uint64()
}

func TestKeccakIsEthereums(t *testing.T) {
	// keccak256("") as Ethereum computes it (SHA3-256("") is a7ffc6f8...).
	h := sha3.NewLegacyKeccak256()
	if got := hex.EncodeToString(h.Sum(nil)); got != "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470" {
		t.Fatalf("keccak256(\"\") = %s", got)
	}
}

func TestTicketMatchesReference(t *testing.T) {
	seeds := []Seed{{}, {0xff, 1, 2, 3}, {31: 7}}
	for _, seed := range seeds {
		for _, total := range []uint64{1, 2, 10, 1_000_003, 1<<63 + 12345, ^uint64(0)} {
			for i := range uint64(5) {
				b := Genesis + 1000*i
				if got, want := Ticket(seed, b, i, total), refTicket(t, seed, b, i, total); got != want {
					t.Errorf("Ticket(seed %x, b %d, i %d, T %d) = %d, want %d", seed[:4], b, i, total, got, want)
				}
			}
		}
	}
}

// A small draw worked out by hand: device A holds seq 1 (3 tickets) and seq
// 2 (2 tickets), device B seq 4 (5 tickets). In canonical order the tickets
// are A/1 = 0..2, A/2 = 3..4, B/4 = 5..9, T = 10.
func TestRunSmallExample(t *testing.T) {
	A, B := addr(0x0a), addr(0x0b)
	seed := Seed{1, 2, 3, 4, 5, 6, 7, 8}
	b := Genesis + 5
	const n = 7
	entries := []Entry{{B, 4, 5}, {A, 2, 2}, {A, 1, 3}, {B, 9, 0}}
	res, err := Run(seed, b, entries, n)
	if err != nil {
		t.Fatal(err)
	}
	holder := func(ticket uint64) (signer.Address, uint64) {
		switch {
		case ticket < 3:
			return A, 1
		case ticket < 5:
			return A, 2
		default:
			return B, 4
		}
	}
	// Drop(Genesis) = 499087383 µStone; /7 = 71298197 rest 4: wins 0..3
	// get 71298198, wins 4..6 get 71298197.
	if res.Drop != 499087383 || res.Total != 10 || res.Entries != 3 || len(res.Wins) != n {
		t.Fatalf("drop %d total %d entries %d wins %d; want 499087383, 10, 3, %d", res.Drop, res.Total, res.Entries, len(res.Wins), n)
	}
	want := map[signer.Address]*Award{}
	for i, w := range res.Wins {
		tk := refTicket(t, seed, b, uint64(i), 10)
		dev, seq := holder(tk)
		micro := uint64(71298197)
		if i < 4 {
			micro = 71298198
		}
		if w != (Win{Index: uint64(i), Ticket: tk, Device: dev, Seq: seq, Micro: micro}) {
			t.Errorf("win %d = %+v, want ticket %d of %s/%d worth %d", i, w, tk, dev, seq, micro)
		}
		if want[dev] == nil {
			want[dev] = &Award{Device: dev}
		}
		want[dev].Wins++
		want[dev].Micro += micro
	}
	var sum uint64
	for _, a := range res.Awards {
		if w := want[a.Device]; w == nil || *w != a {
			t.Errorf("award %+v, want %+v", a, w)
		}
		sum += a.Micro
	}
	if sum != res.Drop {
		t.Errorf("awards sum to %d µStone, drop is %d", sum, res.Drop)
	}
}

func TestRunDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var entries []Entry
	for d := range 20 {
		for s := range 3 {
			entries = append(entries, Entry{addr(byte(d * 7)), uint64(s + 1), r.Uint64N(50_000)})
		}
	}
	seed := Seed{9: 9}
	first, err := Run(seed, Genesis+77, entries, 100)
	if err != nil {
		t.Fatal(err)
	}
	for k := range 5 {
		r.Shuffle(len(entries), func(i, j int) { entries[i], entries[j] = entries[j], entries[i] })
		again, err := Run(seed, Genesis+77, entries, 100)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(first, again) {
			t.Fatalf("shuffle %d: draw differs", k)
		}
	}
	other, err := Run(Seed{9: 8}, Genesis+77, entries, 100)
	if err != nil {
		t.Fatal(err)
	}
	if reflect.DeepEqual(first.Wins, other.Wins) {
		t.Error("another seed drew the same wins")
	}
}

func TestRunErrors(t *testing.T) {
	A := addr(1)
	tests := []struct {
		name    string
		entries []Entry
		n       int
		wantNo  bool
	}{
		{"no entries", nil, 10, true},
		{"zero tickets", []Entry{{A, 1, 0}}, 10, true},
		{"zero winners", []Entry{{A, 1, 5}}, 0, false},
		{"duplicate entry", []Entry{{A, 1, 5}, {A, 1, 5}}, 1, false},
		{"overflow", []Entry{{A, 1, ^uint64(0)}, {A, 2, 1}}, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Run(Seed{}, Genesis, tt.entries, tt.n)
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, ErrNoTickets) != tt.wantNo {
				t.Errorf("error %v: ErrNoTickets %v, want %v", err, !tt.wantNo, tt.wantNo)
			}
		})
	}
}

func TestDropSchedule(t *testing.T) {
	tests := []struct {
		b    uint64
		want uint64
	}{
		{0, 0},
		{Genesis - 1, 0},
		{Genesis, 499087383},                  // floor(105e12 / 210384)
		{Genesis + EraBatches - 1, 499087383}, // last batch of era 0
		{Genesis + EraBatches, 249543691},     // floor(105e12 / 420768)
		{Genesis + 2*EraBatches, 124771845},   // floor(105e12 / 841536)
		{Genesis + 28*EraBatches, 1},          // floor(105e12 / (210384 << 28))
		{Genesis + 29*EraBatches, 0},          // below one µStone
		{^uint64(0), 0},
	}
	for _, tt := range tests {
		if got := Drop(tt.b); got != tt.want {
			t.Errorf("Drop(%d) = %d, want %d", tt.b, got, tt.want)
		}
	}
	// Each batch of an era drops the same, so an era sums to
	// EraBatches × Drop(its first batch).
	firstEra := EraBatches * Drop(Genesis)
	if lost := FirstEraMicro - firstEra; firstEra > FirstEraMicro || lost >= EraBatches {
		t.Errorf("first era sums to %d µStone, want 105,000,000 Stones less under %d µStone", firstEra, EraBatches)
	}
	var all uint64
	for era := uint64(0); era < 64; era++ {
		all += EraBatches * Drop(Genesis+era*EraBatches)
	}
	const supply = 2 * FirstEraMicro
	if all > supply || supply-all > 40*EraBatches {
		t.Errorf("all eras sum to %s Stones, want 210,000,000 within rounding", FormatMicro(all))
	}
}

func TestShare(t *testing.T) {
	tests := []struct {
		batch   uint64
		batches uint32
		meters  uint64
		want    []uint64 // for batch-1 .. batch+batches
	}{
		{100, 1, 7, []uint64{0, 7, 0}},
		{100, 3, 10, []uint64{0, 4, 3, 3, 0}},
		{100, 3, 11, []uint64{0, 4, 4, 3, 0}},
		{100, 4, 2, []uint64{0, 1, 1, 0, 0, 0}},
		{100, 2, 0, []uint64{0, 0, 0, 0}},
	}
	for _, tt := range tests {
		var sum uint64
		for j, want := range tt.want {
			b := tt.batch - 1 + uint64(j)
			got := Share(tt.batch, tt.batches, tt.meters, b)
			if got != want {
				t.Errorf("Share(%d, %d, %d, %d) = %d, want %d", tt.batch, tt.batches, tt.meters, b, got, want)
			}
			sum += got
		}
		if sum != tt.meters {
			t.Errorf("span %d+%d: shares sum to %d, want %d", tt.batch, tt.batches, sum, tt.meters)
		}
	}
}

func ExampleDrop() {
	fmt.Println(FormatMicro(Drop(Genesis)), "Stones per batch in the first era")
	fmt.Println(FormatMicro(Drop(Genesis+EraBatches)), "after the first halving")
	// Output:
	// 499.087383 Stones per batch in the first era
	// 249.543691 after the first halving
}
