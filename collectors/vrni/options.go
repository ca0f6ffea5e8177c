package vrni

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"

	"github.com/usagemeter/usagemeter/collectors/internal/aria"
	"github.com/usagemeter/usagemeter/collectors/internal/rest"
)

// DefaultPageSize is the size of the VM list pages (and so of each fetch).
const DefaultPageSize = 500

// MaxPageSize is the largest size: what one fetch may ask for.
const MaxPageSize = 1000

// Options are the vrni-specific settings of a product (Target.Options).
type Options struct {
	// Mode is how the product is billed: "addon" (default, the Flex
	// add-on: capped billed vRAM of the monitored VMs) or "standalone"
	// (the non-unique count of monitored VMs). Chosen when the product is
	// added; a change applies from the hour it is collected with.
	Mode string `json:"mode,omitempty"`
	// Domain is the user's LDAP domain; "" means a local user.
	Domain string `json:"domain,omitempty"`
	// PageSize is the size of the VM list pages; 0 means 500.
	PageSize int `json:"page_size,omitempty"`
	// VCenterUUIDs maps the fqdn or IP address of a vCenter data source
	// other than the paired vCenter to its instance UUID, so that its VMs
	// join that vCenter's when it is registered too (the API does not say
	// a vCenter's UUID).
	VCenterUUIDs map[string]string `json:"vcenter_uuids,omitempty"`
}

// ParseOptions decodes and validates raw (empty or null means defaults).
// Unknown keys and bad values are errors that name the option.
func ParseOptions(raw json.RawMessage) (Options, error) {
	var o Options
	if err := rest.DecodeOptions(Kind, raw, &o); err != nil {
		return Options{}, err
	}
	var err error
	if o.Mode, err = aria.ParseMode(Kind, o.Mode); err != nil {
		return Options{}, err
	}
	if o.PageSize < 0 || o.PageSize > MaxPageSize {
		return Options{}, fmt.Errorf("vrni options: page_size %d: must be between 1 and %d", o.PageSize, MaxPageSize)
	}
	if o.PageSize == 0 {
		o.PageSize = DefaultPageSize
	}
	uuids := make(map[string]string, len(o.VCenterUUIDs))
	for addr, uuid := range o.VCenterUUIDs {
		if strings.TrimSpace(addr) == "" || strings.Contains(addr, "/") {
			return Options{}, fmt.Errorf("vrni options: vcenter_uuids: %q is not a vCenter fqdn or IP address", addr)
		}
		if len(uuid) != 36 || strings.Count(uuid, "-") != 4 {
			return Options{}, fmt.Errorf("vrni options: vcenter_uuids[%q]: %q is not a vCenter instance UUID", addr, uuid)
		}
		uuids[normalAddr(addr)] = strings.ToLower(uuid)
	}
	o.VCenterUUIDs = uuids
	return o, nil
}

// normalAddr is an fqdn or IP address as compared: lower case, an IP in
// its canonical form.
func normalAddr(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if ip, err := netip.ParseAddr(s); err == nil {
		return ip.String()
	}
	return strings.TrimSuffix(s, ".")
}
