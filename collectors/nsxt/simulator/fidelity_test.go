package simulator

// The fidelity suite: the simulator driven by NSX's own public Go client,
// github.com/vmware/go-vmware-nsxt (the version pinned in go.mod), which
// nobody here wrote. A gap it finds is a place where the simulator does not
// answer as NSX Manager does.

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	nsxt "github.com/vmware/go-vmware-nsxt"
)

// fidelityState has 2,503 VMs (three pages at NSX's largest page), each with
// one NIC on a segment, and two licences.
func fidelityState() State {
	st := State{User: "admin", Password: "VMware1!VMware1!",
		Segments: []Segment{{ID: "seg-a", Name: "web", Connectivity: "/infra/tier-1s/t1"}},
		Licenses: []License{
			{Key: "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE", Description: "NSX Data Center Enterprise Plus", Quantity: 64, CapacityType: "CPU",
				Features: "Switching and Routing;Distributed Firewall;Distributed IDS/IPS"},
			{Key: "FFFFF-GGGGG-HHHHH-IIIII-JJJJJ", Description: "NSX for vShield Endpoint", Quantity: 0, CapacityType: "VM"},
		},
	}
	for i := range 2503 {
		st.VMs = append(st.VMs, VM{ExternalID: fmt.Sprintf("5010%04d-0000-0000-0000-000000000000", i), Name: fmt.Sprintf("vm-%04d", i),
			PowerState: "VM_RUNNING", Moref: fmt.Sprintf("vm-%d", 100+i), HostID: fmt.Sprintf("host-%d", i%3),
			NICs: []NIC{{Segment: "seg-a"}}})
	}
	return st
}

// client logs go-vmware-nsxt in (POST /api/session/create: JSESSIONID and
// X-XSRF-TOKEN, sent on every later call).
func client(t *testing.T, s *Server) (*nsxt.APIClient, string) {
	t.Helper()
	base, _ := s.Start(t)
	c, err := nsxt.NewAPIClient(&nsxt.Configuration{BasePath: base + "/api/v1", UserName: "admin", Password: "VMware1!VMware1!",
		Insecure: true, UserAgent: "fidelity", DefaultHeader: map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Logins() != 1 {
		t.Fatalf("go-vmware-nsxt did not create a session (%d logins)", s.Logins())
	}
	return c, base
}

func TestNsxtSessionAndCursorPaging(t *testing.T) {
	s := New(fidelityState())
	c, _ := client(t, s)
	var all []string
	cursor := ""
	pages := 0
	for {
		opts := map[string]any{"pageSize": int64(1000)}
		if cursor != "" {
			opts["cursor"] = cursor
		}
		res, _, err := c.FabricApi.ListVirtualMachines(c.Context, opts)
		if err != nil {
			t.Fatalf("ListVirtualMachines page %d: %v", pages+1, err)
		}
		pages++
		if res.ResultCount != 2503 {
			t.Fatalf("result_count %d", res.ResultCount)
		}
		for _, vm := range res.Results {
			all = append(all, vm.DisplayName)
		}
		if cursor = res.Cursor; cursor == "" {
			break
		}
	}
	if pages != 3 || len(all) != 2503 || all[2502] != "vm-2502" {
		t.Fatalf("%d pages, %d VMs", pages, len(all))
	}
	vifs, _, err := c.FabricApi.ListVifs(c.Context, map[string]any{"ownerVmId": "50100042-0000-0000-0000-000000000000"})
	if err != nil || len(vifs.Results) != 1 || vifs.Results[0].LportAttachmentId == "" {
		t.Fatalf("ListVifs(owner_vm_id): %d results, %v", len(vifs.Results), err)
	}
}

// TestNsxtListFilters: display_name, external_id and host_id select VMs;
// NSX's by-name lookups rely on them.
func TestNsxtListFilters(t *testing.T) {
	c, _ := client(t, New(fidelityState()))
	for _, tc := range []struct {
		opts map[string]any
		want int
	}{
		{map[string]any{"displayName": "vm-0042"}, 1},
		{map[string]any{"displayName": "nope"}, 0},
		{map[string]any{"externalId": "50100007-0000-0000-0000-000000000000"}, 1},
		{map[string]any{"hostId": "host-1"}, 834},
		{map[string]any{"hostId": "host-1", "displayName": "vm-0001"}, 1},
		{map[string]any{"hostId": "host-2", "displayName": "vm-0001"}, 0},
	} {
		res, _, err := c.FabricApi.ListVirtualMachines(c.Context, tc.opts)
		if err != nil {
			t.Fatalf("%v: %v", tc.opts, err)
		}
		if int(res.ResultCount) != tc.want || len(res.Results) != tc.want {
			t.Errorf("%v: result_count %d, %d results; want %d", tc.opts, res.ResultCount, len(res.Results), tc.want)
		}
	}
}

// TestNsxtIncludedFields: included_fields trims every result to the fields
// asked for.
func TestNsxtIncludedFields(t *testing.T) {
	s := New(fidelityState())
	c, base := client(t, s)
	res, _, err := c.FabricApi.ListVirtualMachines(c.Context, map[string]any{"includedFields": "display_name,external_id", "pageSize": int64(5)})
	if err != nil {
		t.Fatal(err)
	}
	vm := res.Results[0]
	if vm.DisplayName != "vm-0000" || vm.ExternalId == "" || vm.PowerState != "" || vm.HostId != "" || len(vm.ComputeIds) != 0 {
		t.Fatalf("included_fields=display_name,external_id: %+v", vm)
	}
	code, raw := rawGet(t, base, "/api/v1/fabric/virtual-machines?page_size=1&included_fields=display_name")
	results, _ := raw["results"].([]any)
	if code != 200 || len(results) != 1 {
		t.Fatalf("included_fields=display_name: %d %v", code, raw)
	}
	if first := results[0].(map[string]any); len(first) != 1 || first["display_name"] != "vm-0000" {
		t.Fatalf("included_fields=display_name: %v", first)
	}
}

// rawGet is a GET with Basic auth, for what the client does not show.
func rawGet(t *testing.T, base, path string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+path, nil)
	req.SetBasicAuth("admin", "VMware1!VMware1!")
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET %s: %d, %v", path, resp.StatusCode, err)
	}
	return resp.StatusCode, body
}

func TestNsxtLicences(t *testing.T) {
	c, _ := client(t, New(fidelityState()))
	list, _, err := c.LicensingApi.GetLicenses(c.Context)
	if err != nil || len(list.Results) != 2 || list.Results[0].Description != "NSX Data Center Enterprise Plus" ||
		list.Results[0].Quantity != 64 || list.Results[0].CapacityType != "CPU" || !strings.Contains(list.Results[0].Features, "Distributed Firewall") {
		t.Fatalf("GetLicenses: %d licences, %v", len(list.Results), err)
	}
	one, _, err := c.LicensingApi.GetLicense(c.Context)
	if err != nil || one.LicenseKey != "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE" {
		t.Fatalf("GetLicense: %+v %v", one, err)
	}
	usage, _, err := c.LicensingApi.GetLicenseUsageReport(c.Context)
	if err != nil || len(usage.FeatureUsageInfo) == 0 {
		t.Fatalf("GetLicenseUsageReport: %+v %v", usage, err)
	}
	counts := map[string]int64{}
	for _, f := range usage.FeatureUsageInfo {
		for _, u := range f.CapacityUsage {
			counts[f.Feature+"/"+u.CapacityType] = u.UsageCount
		}
	}
	if counts["Switching and Routing/VM"] != 2503 {
		t.Fatalf("licence usage: %v", counts)
	}
}

// TestNsxtPageSizeOverMax: page_size is 0 to 1000 in NSX's API schema; a
// larger one is refused with a field validation error, not served short.
func TestNsxtPageSizeOverMax(t *testing.T) {
	c, base := client(t, New(fidelityState()))
	_, resp, err := c.FabricApi.ListVirtualMachines(c.Context, map[string]any{"pageSize": int64(2000)})
	if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("page_size=2000: %v %v", resp, err)
	}
	code, body := rawGet(t, base, "/api/v1/fabric/virtual-machines?page_size=1001")
	if code != http.StatusBadRequest || body["error_code"] != float64(255) || !strings.Contains(fmt.Sprint(body["error_message"]), "page_size") {
		t.Fatalf("page_size=1001: %d %v", code, body)
	}
	if code, body := rawGet(t, base, "/api/v1/fabric/virtual-machines?page_size=1000"); code != 200 || len(body["results"].([]any)) != 1000 {
		t.Fatalf("page_size=1000: %d", code)
	}
}
