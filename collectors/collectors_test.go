package collectors_test

import (
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/collectors/nsxt"
	"github.com/usagemeter/usagemeter/collectors/nsxv"
	"github.com/usagemeter/usagemeter/collectors/vcd"
	"github.com/usagemeter/usagemeter/collectors/vcenter"
)

// TestWrongCredentialsAreAuthErrors: every collector's login error is
// ErrAuth, which the scheduler does not retry within the hour (a retry storm
// could lock the metering account out).
func TestWrongCredentialsAreAuthErrors(t *testing.T) {
	for kind, err := range map[string]error{"vcenter": vcenter.ErrLogin, "vcd": vcd.ErrLogin, "nsxt": nsxt.ErrLogin, "nsxv": nsxv.ErrLogin} {
		wrapped := fmt.Errorf("logging in to %s.example as meter: %w", kind, err)
		if !errors.Is(wrapped, collectors.ErrAuth) {
			t.Errorf("%s: ErrLogin is not collectors.ErrAuth", kind)
		}
		if err.Error() != "incorrect user name or password" {
			t.Errorf("%s: %q", kind, err)
		}
	}
	if errors.Is(errors.New("incorrect user name or password"), collectors.ErrAuth) {
		t.Fatal("a look-alike error matched ErrAuth")
	}
}

func TestCappedBilledMB(t *testing.T) {
	for _, c := range []struct{ cfg, res, want float64 }{
		{4096, 0, 2048},       // half the configured memory
		{4096, 3072, 3072},    // reservation above half
		{4096, 2048, 2048},    // reservation at half
		{131072, 0, 24576},    // capped at 24 GB
		{65536, 65536, 24576}, // reservation capped too
	} {
		if got := collectors.CappedBilledMB(c.cfg, c.res); got != c.want {
			t.Errorf("CappedBilledMB(%v, %v) = %v, want %v", c.cfg, c.res, got, c.want)
		}
	}
}

func TestEditionsHighest(t *testing.T) {
	e := collectors.Editions{Order: []string{"base", "advanced", "enterprise"},
		ByFeature: map[string]string{"switch": "base", "dfw": "advanced", "l2vpn": "enterprise"}}
	for _, c := range []struct {
		features []string
		want     string
	}{
		{nil, ""},
		{[]string{"unknown"}, ""},
		{[]string{"switch"}, "base"},
		{[]string{"dfw", "switch"}, "advanced"},
		{[]string{"switch", "l2vpn", "dfw"}, "enterprise"},
		{[]string{"unknown", "dfw"}, "advanced"},
	} {
		if got := e.Highest(c.features); got != c.want {
			t.Errorf("Highest(%q) = %q, want %q", c.features, got, c.want)
		}
	}
}

func TestAriaEdition(t *testing.T) {
	for _, c := range []struct{ ed, mode, want string }{
		{"Advanced", collectors.AriaAddon, "Advanced (Flex add-on)"},
		{"Enterprise", collectors.AriaStandalone, "Enterprise (standalone)"},
		{"", collectors.AriaAddon, "(Flex add-on)"},
	} {
		got := collectors.AriaEdition(c.ed, c.mode)
		if got != c.want || collectors.AriaMode(got) != c.mode {
			t.Errorf("AriaEdition(%q, %q) = %q (mode %q), want %q", c.ed, c.mode, got, collectors.AriaMode(got), c.want)
		}
	}
	if m := collectors.AriaMode("Enterprise"); m != "" {
		t.Errorf("a plain edition has mode %q", m)
	}
	if collectors.AriaModes[0] != collectors.AriaAddon {
		t.Error("the default mode is not the Flex add-on")
	}
}

func TestTargetSetDefaults(t *testing.T) {
	var tg collectors.Target
	tg.SetDefaults()
	if tg.Logger == nil || tg.Timeout != collectors.DefaultTimeout {
		t.Fatalf("defaults not filled in: %+v", tg)
	}
	l := slog.New(slog.DiscardHandler)
	tg = collectors.Target{Logger: l, Timeout: 5 * time.Second}
	tg.SetDefaults()
	if tg.Logger != l || tg.Timeout != 5*time.Second {
		t.Fatalf("set values replaced: %+v", tg)
	}
}
