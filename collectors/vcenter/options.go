package vcenter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// VCF editions accepted in Options.VCFEdition. "" means the vCenter is not
// part of a VMware Cloud Foundation deployment.
var vcfEditions = []string{
	"", "standard", "standard-vsan", "advanced", "advanced-vsan",
	"enterprise", "enterprise-vsan", "sddc-manager",
}

// Tanzu metrics accepted in Options.TanzuMetric.
const (
	TanzuVRAM  = "vram"
	TanzuCores = "cores"
)

// EditionSDDCManager is the edition the vRAM observations carry when the
// vCenter is flagged VCF with the SDDC Manager edition.
const EditionSDDCManager = "vcf-sddc-manager"

// EditionTanzuBasic is the edition of every Tanzu (TKGs) observation.
const EditionTanzuBasic = "tanzu-basic"

// defaultPageSize is how many objects one RetrievePropertiesEx page asks for.
// vCenter refuses responses over 500,000 XML elements; a VM with the
// properties read here is well under 100 elements.
const defaultPageSize = 1000

// Options are the vcenter-specific settings of a product (Target.Options).
type Options struct {
	// VCFEdition flags the vCenter as part of VMware Cloud Foundation:
	// "" (not VCF), "standard", "standard-vsan", "advanced", "advanced-vsan",
	// "enterprise", "enterprise-vsan" or "sddc-manager".
	VCFEdition string `json:"vcf_edition"`
	// TanzuMetric is what Tanzu (TKGs) is metered on: "vram" (default) or
	// "cores".
	TanzuMetric string `json:"tanzu_metric"`
	// PageSize is the MaxObjects of one property-collector page; 0 means
	// 1000. Exposed for tests and for vCenters that need smaller pages.
	PageSize int `json:"page_size,omitempty"`
}

// ParseOptions decodes and validates raw (empty or null means defaults).
// Unknown keys and bad values are errors that name the option.
func ParseOptions(raw json.RawMessage) (Options, error) {
	o := Options{TanzuMetric: TanzuVRAM}
	if len(bytes.TrimSpace(raw)) != 0 && !bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&o); err != nil {
			return Options{}, fmt.Errorf("vcenter options: %w", describeJSONError(err))
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return Options{}, errors.New("vcenter options: trailing data after the JSON object")
		}
	}
	if o.TanzuMetric == "" {
		o.TanzuMetric = TanzuVRAM
	}
	o.VCFEdition = strings.ToLower(strings.TrimSpace(o.VCFEdition))
	if !slices.Contains(vcfEditions, o.VCFEdition) {
		return Options{}, fmt.Errorf("vcenter options: vcf_edition %q: must be one of %s", o.VCFEdition, quoteList(vcfEditions))
	}
	if o.TanzuMetric != TanzuVRAM && o.TanzuMetric != TanzuCores {
		return Options{}, fmt.Errorf("vcenter options: tanzu_metric %q: must be %q or %q", o.TanzuMetric, TanzuVRAM, TanzuCores)
	}
	if o.PageSize < 0 {
		return Options{}, fmt.Errorf("vcenter options: page_size %d: must be positive", o.PageSize)
	}
	if o.PageSize == 0 {
		o.PageSize = defaultPageSize
	}
	return o, nil
}

// vcfCores reports whether host cores are metered for VCF.
func (o Options) vcfCores() bool { return o.VCFEdition != "" && o.VCFEdition != "sddc-manager" }

// describeJSONError turns the decoder's errors into ones that name the option.
func describeJSONError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("option %s: expected a %s, got a JSON %s", te.Field, te.Type, te.Value)
	}
	if msg, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return fmt.Errorf("unknown option %s (known: vcf_edition, tanzu_metric, page_size)", msg)
	}
	return err
}

func quoteList(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}
