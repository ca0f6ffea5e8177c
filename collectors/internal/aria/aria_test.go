package aria

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/collectors/internal/rest"
)

const vc = "564d1a2b-3c4d-5e6f-7a8b-9c0d1e2f3a4b"

func TestBuild(t *testing.T) {
	p := Product{Kind: "vrni", Host: "ni01", VCenterUUID: vc, VCenterHost: "vc01", Mode: collectors.AriaStandalone, Edition: "Enterprise", RulesVersion: "r1"}
	obs, sum := p.Build([]VM{
		{Name: "a", MoRef: "vm-1", VCenter: vc},
		{Name: "a again", MoRef: " vm-1 ", VCenter: strings.ToUpper(vc)}, // twice: once
		{Name: "b", MoRef: "vm-2", VCenter: "vc02.corp.example"},         // another vCenter: its own key
		{Name: "c", MoRef: "", VCenter: vc},
		{Name: "d", MoRef: "vm-4", VCenter: vc, Skip: "template"},
	})
	if len(obs) != 2 || sum.Duplicates != 1 || sum.NoID != 1 || sum.Skipped["template"] != 1 || sum.Unjoined["vc02.corp.example"] != 1 {
		t.Fatalf("obs %+v, summary %+v", obs, sum)
	}
	a, b := obs[0], obs[1]
	if a.ObjectKey != vc+"/moref/vm-1" || a.Edition != "Enterprise (standalone)" || a.Dims[DimVCenter] != "vc01" || a.Dims["vrni"] != "ni01" || a.Dims[DimRulesVersion] != "r1" {
		t.Errorf("a: %+v", a)
	}
	if b.ObjectKey != "vc02.corp.example/moref/vm-2" || b.Dims[DimVCenter] != "" {
		t.Errorf("b: %+v", b)
	}
	var buf bytes.Buffer
	sum.Log(slog.New(slog.NewTextHandler(&buf, nil)), p, len(obs))
	for _, w := range []string{"template=1", "without_vcenter_or_moref=1", "listed_twice=1", `unjoined_vcenters="vc02.corp.example (1 VMs)"`} {
		if !strings.Contains(buf.String(), w) {
			t.Errorf("the summary lacks %q:\n%s", w, buf.String())
		}
	}
}

func TestParseMode(t *testing.T) {
	if m, err := ParseMode("vrops", ""); err != nil || m != collectors.AriaAddon {
		t.Fatalf("default: %q %v", m, err)
	}
	if _, err := ParseMode("vrni", "flex"); err == nil || !strings.Contains(err.Error(), `vrni options: mode "flex": must be one of addon, standalone`) {
		t.Fatalf("bad mode: %v", err)
	}
}

func TestTokenSession(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tok := Token{Now: func() time.Time { return now }}
	logins := 0
	s := tok.Session("Product", slog.New(slog.NewTextHandler(&buf, nil)), func(context.Context) error {
		logins++
		tok.Set("t", now.Add(time.Hour).UnixMilli())
		return nil
	})
	if s.Active() {
		t.Fatal("active before a login")
	}
	_ = s.Login(context.Background())
	if !s.Active() || tok.Expires.IsZero() {
		t.Fatalf("not active after a login: %+v", tok)
	}
	now = now.Add(time.Hour - RenewBefore + time.Second)
	if s.Active() || !strings.Contains(buf.String(), "Product token expired") {
		t.Fatalf("still active a minute before the expiry:\n%s", buf.String())
	}
	tok.Set("u", 0)
	if !s.Active() || !tok.Expires.IsZero() {
		t.Fatal("a token without an expiry is not kept")
	}
	if !s.Refused(&rest.HTTPError{Status: 401}) || s.Refused(&rest.HTTPError{Status: 500}) {
		t.Fatal("Refused")
	}
}
