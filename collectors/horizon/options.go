package horizon

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/usagemeter/usagemeter/collectors/internal/rest"
)

// DefaultPageSize is the size of list calls: the API's maximum (the paging
// guide), because the Connection Server throttles per minute and every page
// counts.
const DefaultPageSize = 1000

// MaxPageSize is the largest size the API accepts.
const MaxPageSize = 1000

// Options are the horizon-specific settings of a product (Target.Options).
type Options struct {
	// Domain is the Active Directory domain of the metering account (the
	// login's "domain"). Empty: taken from a user name written
	// DOMAIN\user. The API refuses UPN (user@domain) logins.
	Domain string `json:"domain,omitempty"`
	// PageSize is the size of paged list calls; 0 means 1000.
	PageSize int `json:"page_size,omitempty"`
	// Edition overrides the licence edition when the Connection Server
	// does not say it (releases without /config/v1/licenses): one of
	// Editions. Empty: read from the server, "" when it does not say.
	Edition string `json:"edition,omitempty"`
}

// ParseOptions decodes and validates raw (empty or null means defaults).
// Unknown keys and bad values are errors that name the option.
func ParseOptions(raw json.RawMessage) (Options, error) {
	var o Options
	if err := rest.DecodeOptions(Kind, raw, &o); err != nil {
		return Options{}, err
	}
	o.Domain = strings.TrimSpace(o.Domain)
	if o.PageSize < 0 || o.PageSize > MaxPageSize {
		return Options{}, fmt.Errorf("horizon options: page_size %d: must be between 1 and %d", o.PageSize, MaxPageSize)
	}
	if o.PageSize == 0 {
		o.PageSize = DefaultPageSize
	}
	if o.Edition != "" && editionRank(o.Edition) < 0 {
		return Options{}, fmt.Errorf("horizon options: edition %q: must be one of %s", o.Edition, strings.Join(Editions.Order, ", "))
	}
	return o, nil
}

// splitUser returns the login's domain and user name from the target's user
// name ("DOMAIN\user" or "user") and the domain option. A domain in both
// that differs is an error; a missing domain is not (New accepts it, the
// login refuses it without calling the server: see loginName).
func splitUser(user, domain string) (d, u string, err error) {
	user = strings.TrimSpace(user)
	if i := strings.IndexByte(user, '\\'); i >= 0 {
		d, u = user[:i], user[i+1:]
		if domain != "" && !strings.EqualFold(domain, d) {
			return "", "", fmt.Errorf("the user name's domain %q and the domain option %q differ", d, domain)
		}
		return d, u, nil
	}
	return domain, user, nil
}

// loginName says why a domain and user name cannot log in, "" when they
// can: the API needs a domain, and refuses UPN logins.
func loginName(domain, user string) string {
	switch {
	case domain == "" && strings.Contains(user, "@"):
		return "the Horizon REST API does not accept UPN logins: write the user name DOMAIN\\user or set the domain option"
	case domain == "" || user == "":
		return "a domain is required: write the user name DOMAIN\\user or set the domain option"
	}
	return ""
}
