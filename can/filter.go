package can

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Kernel encoding of a CAN identifier (linux/can.h): the top three bits of
// can_id are flags, the rest is the identifier.
const (
	KernelEFFFlag = 0x80000000 // CAN_EFF_FLAG: extended frame format
	KernelRTRFlag = 0x40000000 // CAN_RTR_FLAG: remote transmission request
	KernelERRFlag = 0x20000000 // CAN_ERR_FLAG: error frame
	KernelSFFMask = 0x000007FF // CAN_SFF_MASK
	KernelEFFMask = 0x1FFFFFFF // CAN_EFF_MASK
)

// Key names one message on the bus: an identifier and its format. An 11-bit
// and a 29-bit identifier with the same number are different messages.
type Key struct {
	ID       uint32
	Extended bool
}

// String formats the key as candump does: three hex digits for a standard
// identifier, eight for an extended one.
func (k Key) String() string {
	if k.Extended {
		return fmt.Sprintf("%08X", k.ID)
	}
	return fmt.Sprintf("%03X", k.ID)
}

// ParseKey parses "0x5A1", "5A1" (standard) or an 8-digit "18FEF100"
// (extended). An identifier above 0x7FF is extended whatever its spelling.
func ParseKey(s string) (Key, error) {
	h := strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	if h == "" || len(h) > 8 {
		return Key{}, errorf("CAN id %q: want 1 to 8 hex digits", s)
	}
	v, err := strconv.ParseUint(h, 16, 32)
	if err != nil || v > MaxExtendedID {
		return Key{}, errorf("CAN id %q: want a hex identifier up to 0x1FFFFFFF", s)
	}
	return Key{ID: uint32(v), Extended: len(h) == 8 || v > MaxID}, nil
}

// KeyOf returns the key of a frame.
func KeyOf(f *Frame) Key { return Key{ID: f.ID, Extended: f.IsExtended()} }

// Rule is one kernel receive filter (struct can_filter): a frame passes when
// kernelID(frame) & Mask == ID & Mask.
type Rule struct {
	ID   uint32
	Mask uint32
}

// Filter is an allowlist of data frames. It passes exactly the data frames
// (not remote frames, not error frames) whose key is on the list, which is
// what the kernel does with the Rules it returns installed as CAN_RAW_FILTER.
// The zero Filter passes nothing. A Filter is immutable and safe for
// concurrent use.
type Filter struct {
	std  []uint32 // sorted standard identifiers
	ext  []uint32 // sorted extended identifiers
	keys []Key
}

// NewFilter returns a filter that passes data frames with the given keys.
func NewFilter(keys ...Key) *Filter {
	f := &Filter{}
	seen := make(map[Key]bool, len(keys))
	for _, k := range keys {
		if seen[k] {
			continue
		}
		seen[k] = true
		f.keys = append(f.keys, k)
	}
	SortKeys(f.keys)
	for _, k := range f.keys {
		if k.Extended {
			f.ext = append(f.ext, k.ID)
		} else {
			f.std = append(f.std, k.ID)
		}
	}
	return f
}

// SortKeys sorts keys as a Filter lists them: standard identifiers first,
// each kind by identifier.
func SortKeys(keys []Key) { sort.Sort(byKey(keys)) }

// byKey sorts keys through sort.Sort, which tboxd links anyway, where each
// sort.Slice or slices.SortFunc use would link a sort of its own.
type byKey []Key

func (k byKey) Len() int      { return len(k) }
func (k byKey) Swap(i, j int) { k[i], k[j] = k[j], k[i] }
func (k byKey) Less(i, j int) bool {
	if k[i].Extended != k[j].Extended {
		return !k[i].Extended
	}
	return k[i].ID < k[j].ID
}

// Keys returns the allowlist, standard identifiers first, each sorted. A nil
// Filter has an empty allowlist.
func (f *Filter) Keys() []Key {
	if f == nil {
		return nil
	}
	return append([]Key(nil), f.keys...)
}

// Match reports whether the frame passes the filter. A nil Filter passes
// nothing.
func (f *Filter) Match(fr *Frame) bool {
	if f == nil || fr.Flags&(Remote|ErrorFrame) != 0 {
		return false
	}
	ids := f.std
	if fr.Flags&Extended != 0 {
		ids = f.ext
	}
	// The allowlists are a handful of IDs: a linear scan beats a map.
	for _, id := range ids {
		if id == fr.ID {
			return true
		}
		if id > fr.ID {
			return false
		}
	}
	return false
}

// Rules returns the kernel filters that implement f. An empty allowlist
// yields no rules; installing zero rules with CAN_RAW_FILTER makes the
// socket receive no data frames at all, which is what an empty allowlist
// means. A nil Filter, like the zero Filter, yields no rules.
func (f *Filter) Rules() []Rule {
	if f == nil {
		return []Rule{}
	}
	rules := make([]Rule, 0, len(f.keys))
	for _, k := range f.keys {
		if k.Extended {
			rules = append(rules, Rule{
				ID:   k.ID | KernelEFFFlag,
				Mask: KernelEFFMask | KernelEFFFlag | KernelRTRFlag,
			})
		} else {
			rules = append(rules, Rule{
				ID:   k.ID,
				Mask: KernelSFFMask | KernelEFFFlag | KernelRTRFlag,
			})
		}
	}
	return rules
}

// KernelID returns the frame's identifier in the kernel's can_id encoding.
func KernelID(fr *Frame) uint32 {
	id := fr.ID
	if fr.Flags&Extended != 0 {
		id |= KernelEFFFlag
	}
	if fr.Flags&Remote != 0 {
		id |= KernelRTRFlag
	}
	if fr.Flags&ErrorFrame != 0 {
		id |= KernelERRFlag
	}
	return id
}
