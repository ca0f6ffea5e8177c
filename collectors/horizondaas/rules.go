package horizondaas

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// RulesVersion names the DaaS metering rules below; it is set on every
// observation (dims) so that a change of rules shows in the spans.
const RulesVersion = "daas-connections-assumed-1"

// QuotaConnections is the quota type whose licence edition is the tenant's
// edition (assumed, see the simulator's package comment).
const QuotaConnections = "CONCURRENT_CONNECTIONS"

// connected reports whether a session is a concurrent connection
// (*assumed*, METERING.md "concurrent connections"): a session whose user is
// connected now. A disconnected session keeps its desktop but holds no
// connection; a session without a desktop (an application session, or a
// desktop not yet assigned) that is connected counts: it is a brokered
// connection all the same.
func connected(state string) bool {
	return strings.EqualFold(strings.TrimSpace(state), "CONNECTED")
}

// metered reports whether an organization is a tenant whose connections
// are metered: a tenant (not the service provider's own organization) that
// is enabled. A disabled tenant's users cannot connect; its sessions are not
// read.
func metered(o *organization) (tenant, enabled bool) {
	tenant = !strings.EqualFold(o.OrgType, "SERVICE_PROVIDER")
	enabled = o.Enabled == nil || *o.Enabled
	return tenant, enabled
}

// editionOf is the tenant's licence edition: that of its concurrent
// connection quota, "" when it has none.
func editionOf(qs []quota) string {
	for _, q := range qs {
		if strings.EqualFold(q.Type, QuotaConnections) && strings.TrimSpace(q.Edition) != "" {
			return normEdition(q.Edition)
		}
	}
	return ""
}

// normEdition writes an edition as the report does: "ENTERPRISE" and
// "enterprise" are "Enterprise"; "APPS_STANDARD" is "Apps Standard".
func normEdition(e string) string {
	words := strings.Fields(strings.ReplaceAll(strings.TrimSpace(e), "_", " "))
	for i, w := range words {
		r, n := utf8.DecodeRuneInString(w)
		words[i] = string(unicode.ToUpper(r)) + strings.ToLower(w[n:])
	}
	return strings.Join(words, " ")
}
