package web

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/csop/tbox/cmd/collector/internal/collect"
)

func TestParseHealth(t *testing.T) {
	long := strings.Repeat("é", 100)
	for _, tc := range []struct {
		in      string
		want    HealthReport
		wantErr bool
	}{
		{in: `{"status":"online","device":"0xab","agent":{"version":"v1"}}`, want: HealthReport{Status: "online", Device: "0xab", Version: "v1"}},
		{in: `{"status":"offline","device":"0xab"}`, want: HealthReport{Status: "offline", Device: "0xab"}},
		{in: `{"status":"` + long + `"}`, want: HealthReport{Status: strings.Repeat("é", 32)}},
		{in: `{"status":"online","agent":"text"}`, wantErr: true},
		{in: `{"device":"0xab"}`, wantErr: true},
		{in: `{"status":1}`, wantErr: true},
		{in: `[]`, wantErr: true},
		{in: ``, wantErr: true},
		{in: `{"status":"online"`, wantErr: true},
		{in: `{"status":"` + strings.Repeat("a", collect.MaxHealthBytes) + `"}`, wantErr: true},
	} {
		got, err := ParseHealth([]byte(tc.in))
		if tc.wantErr {
			if !errors.Is(err, ErrHealth) {
				t.Errorf("%.40q: err %v, want ErrHealth", tc.in, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%.40q: %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func FuzzParseHealth(f *testing.F) {
	f.Add([]byte(`{"status":"online","device":"0x0000000000000000000000000000000000000001","agent":{"version":"1"}}`))
	f.Add([]byte(`{"status":"\xff\xfe","agent":{"version":null}}`))
	f.Add([]byte(`{"status":"online","maybe_lost":{"from":1,"to":2}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseHealth(b)
		if err != nil {
			if !errors.Is(err, ErrHealth) {
				t.Fatalf("error %v is not ErrHealth", err)
			}
			return
		}
		for _, s := range []string{r.Status, r.Device, r.Version} {
			if len(s) > maxHealthString+utf8.UTFMax || !utf8.ValidString(s) {
				t.Fatalf("kept string %q: too long or not UTF-8", s)
			}
		}
		tr := newTracker(allowSet{addr(1): true}, 1)
		tr.health("csop/v1/"+addr(1).String()+"/health", b, time.Now())
		_, kept := tr.lookup(addr(1))
		if own := r.Device == "" || strings.EqualFold(r.Device, addr(1).String()); kept != own {
			t.Fatalf("report naming device %q on device %s's topic: kept %v", r.Device, addr(1), kept)
		}
	})
}

// TestTrackerIsBounded: only registered devices are kept, at most max of
// them; a device removed from the registry makes room.
func TestTrackerIsBounded(t *testing.T) {
	allow := allowSet{addr(1): true, addr(2): true, addr(3): true}
	tr := newTracker(allow, 2)
	now := time.Now()
	rep := []byte(`{"status":"online"}`)
	for i := 1; i <= 4; i++ {
		tr.health("csop/v1/"+addr(i).String()+"/health", rep, now)
	}
	if tr.len() != 2 {
		t.Fatalf("%d devices kept, want 2", tr.len())
	}
	if tr.ignoredCounts()[ignoredUnregistered] != 1 || tr.dropped != 1 {
		t.Errorf("ignored %v, dropped %d", tr.ignoredCounts(), tr.dropped)
	}
	delete(allow, addr(1))
	tr.attested(addr(3), now)
	if s, ok := tr.lookup(addr(3)); !ok || !s.attested.Equal(now) || tr.len() != 2 {
		t.Errorf("after a removal from the registry: device 3 %v %v, %d kept", s, ok, tr.len())
	}
	// A mixed-case topic is another spelling of the device: refused, as the
	// collector refuses attestations on it.
	up := "csop/v1/0x" + strings.ToUpper(addr(2).String()[2:]) + "/health"
	tr.health(up, rep, now)
	if tr.ignoredCounts()[ignoredTopic] != 1 {
		t.Errorf("mixed-case topic: ignored %v", tr.ignoredCounts())
	}
	// An empty retained message (a report cleared) is neither kept nor
	// counted as hostile.
	tr.health("csop/v1/"+addr(2).String()+"/health", nil, now)
	if n := tr.ignoredCounts()[ignoredMalformed]; n != 0 {
		t.Errorf("empty report counted as malformed")
	}
}
