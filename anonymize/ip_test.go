package anonymize

import (
	"fmt"
	"strings"
	"testing"
)

func TestFindIPs(t *testing.T) {
	for _, tc := range []struct {
		text string
		want []string
	}{
		{"10.1.2.3", []string{"10.1.2.3"}},
		{"backup-10.1.2.3", []string{"10.1.2.3"}},
		{"https://192.168.0.10:443/sdk", []string{"192.168.0.10"}},
		{"nodes 10.0.0.1, 10.0.0.2.", []string{"10.0.0.1", "10.0.0.2"}},
		{"[fe80::1]:443", []string{"fe80::1"}},
		{"2001:db8:0:0:1:0:0:1 and 2001:DB8::42", []string{"2001:db8:0:0:1:0:0:1", "2001:DB8::42"}},
		{"mapped ::ffff:10.1.2.3", []string{"::ffff:10.1.2.3"}},
		{"loopback ::1.", []string{"::1"}},
		{"version 1.2.3.4.5", nil},
		{"v1.2.3.4", nil},
		{"web10.0.0.1", nil},
		{"999.1.1.1", nil},
		{"std::map and Foo::Bar", nil},
		{"at 12:30:45", nil},
		{"mac 00:50:56:aa:bb:cc", nil},
		{"deadbeef cafe", nil},
		{"", nil},
	} {
		got := FindIPs(tc.text)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("FindIPs(%q) = %q, want %q", tc.text, got, tc.want)
		}
		if ContainsIP(tc.text) != (len(tc.want) > 0) {
			t.Errorf("ContainsIP(%q) = %v", tc.text, !(len(tc.want) > 0))
		}
	}
}

func TestScrubIPs(t *testing.T) {
	a := mustNew(t, ModeHashed, testSecret(9))
	text := "connecting to 10.1.2.3:443 failed; fallback [2001:db8::7] too"
	got := a.ScrubIPs(text)
	want := "connecting to " + a.Name(KindIP, "10.1.2.3") + ":443 failed; fallback [" + a.Name(KindIP, "2001:db8::7") + "] too"
	if got != want {
		t.Fatalf("ScrubIPs = %q, want %q", got, want)
	}
	if back := Reverse(got, a.Map()); back != text {
		t.Errorf("Reverse(ScrubIPs) = %q", back)
	}
	r := mustNew(t, ModeRedacted, nil)
	if got := r.ScrubIPs("from 10.1.2.3"); got != "from "+Redacted {
		t.Errorf("redacted ScrubIPs = %q", got)
	}
	if got := a.ScrubIPs("no address here"); got != "no address here" || strings.Contains(got, Redacted) {
		t.Errorf("ScrubIPs without address = %q", got)
	}
}
