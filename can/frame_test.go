package can

import (
	"errors"
	"testing"
)

func TestFrameValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    Frame
		ok   bool
	}{
		{"zero frame", Frame{}, true},
		{"standard max id", Frame{ID: MaxID, Len: 8}, true},
		{"standard id too big", Frame{ID: MaxID + 1}, false},
		{"extended max id", Frame{ID: MaxExtendedID, Flags: Extended}, true},
		{"extended id too big", Frame{ID: MaxExtendedID + 1, Flags: Extended}, false},
		{"classic 9 bytes", Frame{Len: 9}, false},
		{"remote with length", Frame{Flags: Remote, Len: 8}, true},
		{"remote length 9", Frame{Flags: Remote, Len: 9}, false},
		{"FD 64 bytes", Frame{Flags: FD | BRS | ESI, Len: 64}, true},
		{"FD 12 bytes", Frame{Flags: FD, Len: 12}, true},
		{"FD 13 bytes", Frame{Flags: FD, Len: 13}, false},
		{"FD 65 bytes", Frame{Flags: FD, Len: 65}, false},
		{"FD remote", Frame{Flags: FD | Remote}, false},
		{"BRS without FD", Frame{Flags: BRS}, false},
		{"ESI without FD", Frame{Flags: ESI}, false},
		{"error frame", Frame{Flags: ErrorFrame, ID: 0x4, Len: 8}, true},
		{"error class of 29 bits", Frame{Flags: ErrorFrame, ID: MaxExtendedID}, true},
		{"error class over 29 bits", Frame{Flags: ErrorFrame, ID: MaxExtendedID + 1}, false},
		{"extended error frame", Frame{Flags: ErrorFrame | Extended, ID: 0x4}, false},
		{"remote error frame", Frame{Flags: ErrorFrame | Remote, ID: 0x4}, false},
		{"FD error frame", Frame{Flags: ErrorFrame | FD, ID: 0x4}, false},
		{"undefined flag 0x40", Frame{Flags: 0x40}, false},
		{"undefined flag 0x80", Frame{Flags: 0x80 | Extended}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.f.Validate()
			if tc.ok && err != nil {
				t.Errorf("Validate() = %v, want nil", err)
			}
			if !tc.ok && !errors.Is(err, ErrInvalidFrame) {
				t.Errorf("Validate() = %v, want ErrInvalidFrame", err)
			}
		})
	}
}

func TestFramePayload(t *testing.T) {
	f := Frame{Len: 3, Data: data(1, 2, 3, 4)}
	if p := f.Payload(); len(p) != 3 || p[2] != 3 {
		t.Errorf("Payload() = %v, want [1 2 3]", p)
	}
	f.Payload()[0] = 9
	if f.Data[0] != 9 {
		t.Error("Payload() does not alias Data")
	}
	r := Frame{Flags: Remote, Len: 4, Data: data(1, 2, 3, 4)}
	if p := r.Payload(); p != nil {
		t.Errorf("remote frame Payload() = %v, want nil", p)
	}
}

func TestFrameKinds(t *testing.T) {
	for _, tc := range []struct {
		flags                     Flags
		extended, remote, err, fd bool
	}{
		{0, false, false, false, false},
		{Extended, true, false, false, false},
		{Extended | Remote, true, true, false, false},
		{ErrorFrame, false, false, true, false},
		{FD | BRS, false, false, false, true},
	} {
		f := Frame{Flags: tc.flags}
		if f.IsExtended() != tc.extended || f.IsRemote() != tc.remote || f.IsError() != tc.err || f.IsFD() != tc.fd {
			t.Errorf("flags %#x: IsExtended %v IsRemote %v IsError %v IsFD %v", tc.flags,
				f.IsExtended(), f.IsRemote(), f.IsError(), f.IsFD())
		}
	}
}

func TestFrameString(t *testing.T) {
	for _, tc := range []struct {
		f    Frame
		want string
	}{
		{Frame{ID: 0x1A3, Len: 2, Data: data(0, 0xAB)}, "1A3#00AB"},
		{Frame{ID: 0x18FEF100, Flags: Extended | Remote, Len: 2}, "18FEF100#R2"},
		{Frame{ID: 0x123, Flags: FD | BRS, Len: 1, Data: data(0xAA)}, "123##1AA"},
		{Frame{ID: 0x4, Flags: ErrorFrame, Len: 1}, "20000004#00"},
	} {
		if got := tc.f.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}
