package main

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestApplianceLinksNoTestCode: the appliance binary (built without the demo
// tag) links no simulator, no SMTP test server, no httptest and no testing
// package; the demo is built with -tags demo only (make demo).
func TestApplianceLinksNoTestCode(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	// The vendors' clients drive the simulators in their fidelity suites
	// (test-only dependencies): the appliance links none of them.
	forbidden := regexp.MustCompile(`(^|/)(simulator|smtptest|httptest)(/|$)|^testing$|^github\.com/vmware/(go-vcloud-director|go-vmware-nsxt|vsphere-automation-sdk-go)|^github\.com/vmware/govmomi/cli(/|$)|^github\.com/umich-vci/gohorizon`)
	var bad []string
	for _, p := range strings.Fields(string(out)) {
		if forbidden.MatchString(p) {
			bad = append(bad, p)
		}
	}
	if len(bad) > 0 {
		t.Fatalf("the appliance binary links %s", strings.Join(bad, ", "))
	}
	demo, err := exec.Command("go", "list", "-tags", "demo", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -tags demo: %v\n%s", err, demo)
	}
	if !strings.Contains(string(demo), "/collectors/vcenter/simulator") {
		t.Fatal("the demo build does not link the vCenter simulator: is the demo tag still what selects it?")
	}
}
