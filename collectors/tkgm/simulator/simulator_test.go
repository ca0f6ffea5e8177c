package simulator_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/usagemeter/usagemeter/collectors/tkgm/simulator"
)

type page struct {
	Kind     string `json:"kind"`
	Metadata struct {
		ResourceVersion    string `json:"resourceVersion"`
		Continue           string `json:"continue"`
		RemainingItemCount *int   `json:"remainingItemCount"`
	} `json:"metadata"`
	Items []struct {
		Metadata struct {
			Name, Namespace string
			Labels          map[string]string
		} `json:"metadata"`
		Spec struct {
			ProviderID  string `json:"providerID"`
			ClusterName string `json:"clusterName"`
		} `json:"spec"`
	} `json:"items"`
	Code   int    `json:"code"`
	Reason string `json:"reason"`
}

func get(t *testing.T, s *simulator.Server, token, path string) (int, page) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "https://mgmt.example:6443"+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	var p page
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("%s: %v: %s", path, err, rec.Body)
	}
	return rec.Code, p
}

// TestFleetPagedToTheEnd: the demo's fleet, listed in pages of 7, gives
// every machine once, in key order, each page with the list's resource
// version and the count still to come.
func TestFleetPagedToTheEnd(t *testing.T) {
	uuids := func(prefix string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%s-%04d", prefix, i)
		}
		return out
	}
	st := simulator.Fleet("tok", uuids("m", 3), uuids("a", 10), uuids("b", 12))
	s := simulator.New(st)
	seen := map[string]bool{}
	last, cont, pages := "", "", 0
	for {
		code, p := get(t, s, "tok", simulator.APIPath+"/machines?limit=7&continue="+url.QueryEscape(cont))
		if code != 200 || p.Kind != "MachineList" || p.Metadata.ResourceVersion != "48213" {
			t.Fatalf("page %d: %d %+v", pages, code, p)
		}
		pages++
		for _, it := range p.Items {
			k := it.Metadata.Namespace + "/" + it.Metadata.Name
			if seen[k] || k <= last || !strings.HasPrefix(it.Spec.ProviderID, "vsphere://") || it.Metadata.Labels[simulator.LabelClusterName] != it.Spec.ClusterName {
				t.Fatalf("item %s after %s: %+v", k, last, it)
			}
			seen[k], last = true, k
		}
		if p.Metadata.Continue == "" {
			if p.Metadata.RemainingItemCount != nil {
				t.Fatal("remainingItemCount on the last page")
			}
			break
		}
		if p.Metadata.RemainingItemCount == nil || *p.Metadata.RemainingItemCount != 25-len(seen) {
			t.Fatalf("remainingItemCount %v after %d items", p.Metadata.RemainingItemCount, len(seen))
		}
		cont = p.Metadata.Continue
	}
	if len(seen) != 25 || pages != 4 {
		t.Fatalf("%d machines in %d pages, want 25 in 4", len(seen), pages)
	}
	_, cl := get(t, s, "tok", simulator.APIPath+"/clusters")
	if len(cl.Items) != 3 || cl.Items[2].Metadata.Labels[simulator.LabelManagement] != "" || cl.Items[2].Metadata.Name != "tkg-mgmt" {
		t.Fatalf("clusters %+v", cl.Items)
	}
	if _, ok := cl.Items[0].Metadata.Labels[simulator.LabelManagement]; ok {
		t.Fatal("a workload cluster labelled management")
	}
}

func TestStatusAnswers(t *testing.T) {
	st := simulator.Fleet("tok", []string{"u1"}, []string{"u2", "u3"})
	st.Forbidden = []string{"clusters"}
	s := simulator.New(st)
	for _, tc := range []struct {
		token, path string
		code        int
		reason      string
	}{
		{"", "/version", 401, "Unauthorized"},
		{"nope", simulator.APIPath + "/machines", 401, "Unauthorized"},
		{"tok", simulator.APIPath + "/clusters", 403, "Forbidden"},
		{"tok", "/apis/cluster.x-k8s.io/v1alpha3/machines", 404, "NotFound"},
		{"tok", simulator.APIPath + "/machines?continue=bm90LWpzb24", 400, "BadRequest"},
		{"tok", simulator.APIPath + "/machines?limit=x", 400, "BadRequest"},
	} {
		code, p := get(t, s, tc.token, tc.path)
		if code != tc.code || p.Code != tc.code || p.Reason != tc.reason || p.Kind != "Status" {
			t.Errorf("%s with %q: %d %+v, want %d %s", tc.path, tc.token, code, p, tc.code, tc.reason)
		}
	}
	s.SetFaults(simulator.Faults{ExpireContinue: 1})
	_, p := get(t, s, "tok", simulator.APIPath+"/machines?limit=1")
	if code, g := get(t, s, "tok", simulator.APIPath+"/machines?limit=1&continue="+p.Metadata.Continue); code != 410 || g.Reason != "Expired" {
		t.Fatalf("expired continue: %d %+v", code, g)
	}
	if code, _ := get(t, s, "tok", simulator.APIPath+"/machines?limit=1&continue="+p.Metadata.Continue); code != 200 {
		t.Fatalf("second use: %d", code)
	}
	// A bound token past its exp claim is refused.
	s.SetFaults(simulator.Faults{})
	for exp, want := range map[time.Time]int{time.Now().Add(-time.Minute): 401, time.Now().Add(time.Hour): 200} {
		tok := simulator.ServiceAccountToken(simulator.DefaultServiceAccount, exp)
		s.SetToken(tok)
		if code, _ := get(t, s, tok, simulator.APIPath+"/machines"); code != want {
			t.Fatalf("bound token expiring at %s: %d, want %d", exp, code, want)
		}
	}
}
