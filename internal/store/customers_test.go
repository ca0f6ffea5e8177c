package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/collectors"
	"github.com/usagemeter/usagemeter/internal/store"
)

// TestCustomerRuleFollowsRenamedOrg (issue 17: customer rules by identity):
// a rule on a Cloud Director org follows the org by its id through a rename
// in Cloud Director; spans collected before the collector recorded the id
// still match by name; a same-named org of another Cloud Director does not
// take the label. A rule may name the org by id (UUID or URN), and a rule
// added by name before its org was collected gets the id later.
func TestCustomerRuleFollowsRenamedOrg(t *testing.T) {
	s := newStore(t)
	pid := addProduct(t, s)
	ctx := context.Background()
	m := store.MonthIn(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), time.UTC)
	const acme, other, globex, initech = "7d1e6a20-0001-4000-8000-000000000001", "7d1e6a20-0009-4000-8000-000000000009",
		"7d1e6a20-0002-4000-8000-000000000002", "7d1e6a20-0003-4000-8000-000000000003"
	vm := func(key, org, orgID string, day int) {
		t.Helper()
		dims := map[string]string{"vm": key, "org": org, "vcd": "vcd01.example"}
		if orgID != "" {
			dims["org_id"] = orgID
		}
		h := m.Start.AddDate(0, 0, day)
		insertSpan(t, s, pid, collectors.MetricVMManaged, key, h, h.Add(9*time.Hour), 1, "count", "", dims)
	}
	add := func(label, object string) store.CustomerRule {
		t.Helper()
		id, err := s.AddCustomerRule(ctx, store.CustomerRule{Label: label, ObjectType: "vcd-org", ObjectName: object})
		if err != nil {
			t.Fatal(err)
		}
		rules, err := s.CustomerRules(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rules {
			if r.ID == id {
				return r
			}
		}
		t.Fatalf("rule %d not listed", id)
		return store.CustomerRule{}
	}

	vm("old", "acme", "", 0) // collected before the collector recorded org ids
	vm("before", "acme", acme, 1)
	vm("globex-1", "globex", globex, 1)
	if r := add("Acme", "acme"); r.ObjectID != acme || r.ObjectName != "acme" {
		t.Fatalf("rule by name: %+v, want it bound to the org's id %s", r, acme)
	}
	if r := add("Globex", "urn:vcloud:org:"+"7D1E6A20-0002-4000-8000-000000000002"); r.ObjectID != globex || r.ObjectName != "globex" {
		t.Fatalf("rule by URN: %+v, want id %s named globex", r, globex)
	}
	if r := add("Initech", "initech"); r.ObjectID != "" {
		t.Fatalf("rule on an org never collected: %+v, want no id yet", r)
	}
	if _, err := s.AddCustomerRule(ctx, store.CustomerRule{Label: "Acme again", ObjectType: "vcd-org", ObjectName: acme}); err == nil {
		t.Fatal("a second rule on the org, by its id, was accepted")
	}

	// The orgs are renamed in Cloud Director; another one takes the old name.
	vm("renamed", "acme-corp", acme, 2)
	vm("other-vcd", "acme", other, 2)
	vm("globex-2", "globex-holdings", globex, 2)
	vm("initech-1", "initech", initech, 2)
	if n, err := s.ResolveCustomerOrgIDs(ctx); err != nil || n != 1 {
		t.Fatalf("resolved %d rules, %v; want Initech's", n, err)
	}
	vm("initech-2", "initech-llc", initech, 3)

	want := map[string]string{"old": "Acme", "before": "Acme", "renamed": "Acme", "other-vcd": "",
		"globex-1": "Globex", "globex-2": "Globex", "initech-1": "Initech", "initech-2": "Initech"}
	got := map[string]string{}
	if err := s.History(ctx, m, []string{collectors.MetricVMManaged}, func(h *store.HistoryRow) error {
		got[h.ObjectKey] = h.Customer
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for key, w := range want {
		if got[key] != w {
			t.Errorf("%s: customer %q, want %q", key, got[key], w)
		}
	}
}
