package vcenter

import (
	"strings"
	"testing"

	"github.com/usagemeter/usagemeter/collectors"
)

func TestParseOptions(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want Options
	}{
		{"", Options{TanzuMetric: "vram", PageSize: 1000}},
		{"null", Options{TanzuMetric: "vram", PageSize: 1000}},
		{"{}", Options{TanzuMetric: "vram", PageSize: 1000}},
		{`{"vcf_edition": "", "tanzu_metric": "vram"}`, Options{TanzuMetric: "vram", PageSize: 1000}},
		{`{"vcf_edition": "advanced-vsan", "tanzu_metric": "cores"}`, Options{VCFEdition: "advanced-vsan", TanzuMetric: "cores", PageSize: 1000}},
		{`{"vcf_edition": "SDDC-Manager"}`, Options{VCFEdition: "sddc-manager", TanzuMetric: "vram", PageSize: 1000}},
		{`{"page_size": 250}`, Options{TanzuMetric: "vram", PageSize: 250}},
	} {
		got, err := ParseOptions([]byte(tc.raw))
		if err != nil {
			t.Errorf("%s: %v", tc.raw, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.raw, got, tc.want)
		}
	}
}

// TestParseOptionsErrors: each bad option gives the error an admin sees at
// `product add`.
func TestParseOptionsErrors(t *testing.T) {
	for _, tc := range []struct{ raw, want string }{
		{`{"vcf_edition": "platinum"}`, `vcenter options: vcf_edition "platinum": must be one of "", "standard", "standard-vsan", "advanced", "advanced-vsan", "enterprise", "enterprise-vsan", "sddc-manager"`},
		{`{"tanzu_metric": "pods"}`, `vcenter options: tanzu_metric "pods": must be "vram" or "cores"`},
		{`{"vcf": "standard"}`, `vcenter options: unknown option "vcf" (known: vcf_edition, tanzu_metric, page_size)`},
		{`{"vcf_edition": 3}`, `vcenter options: option vcf_edition: expected a string, got a JSON number`},
		{`{"page_size": -1}`, `vcenter options: page_size -1: must be positive`},
		{`{"vcf_edition": "standard"} {}`, `vcenter options: trailing data after the JSON object`},
		{`{"vcf_edition": `, `vcenter options: unexpected EOF`},
	} {
		_, err := ParseOptions([]byte(tc.raw))
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s:\n got %v\nwant %s", tc.raw, err, tc.want)
		}
	}
}

// TestNewValidates: the factory refuses bad options and endpoints without
// contacting vCenter.
func TestNewValidates(t *testing.T) {
	for _, tc := range []struct {
		t    collectors.Target
		want string
	}{
		{collectors.Target{Kind: Kind, Endpoint: "vc01.example.net", Username: "u", Options: []byte(`{"tanzu_metric": "gpu"}`)}, "tanzu_metric"},
		{collectors.Target{Kind: Kind, Endpoint: "http://vc01.example.net", Username: "u"}, "scheme must be https"},
		{collectors.Target{Kind: Kind, Endpoint: "https://", Username: "u"}, "not a URL or host name"},
		{collectors.Target{Kind: Kind, Endpoint: "vc01.example.net"}, "a user name is required"},
	} {
		_, err := collectors.New(tc.t)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error containing %q", tc.t.Endpoint, err, tc.want)
		}
	}
	c, err := collectors.New(collectors.Target{Kind: Kind, Endpoint: "vc01.example.net:8443", Username: "u"})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.(*Collector).u.String(); got != "https://vc01.example.net:8443/sdk" {
		t.Errorf("SDK URL %s", got)
	}
}
