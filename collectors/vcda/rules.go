package vcda

import (
	"strings"

	"github.com/usagemeter/usagemeter/collectors"
)

// RulesVersion names the VCDA metering rules below; it is set on every
// observation (dims) so that a change of rules shows in the spans.
const RulesVersion = "vcda-replications-1"

// Replication directions, seen from the local site.
const (
	DirIncoming = "incoming" // the destination is the local site
	DirOutgoing = "outgoing" // the source is the local site
	DirOther    = "other"    // neither (a replication between two other sites)
)

// metricOf is the metric of a replication (METERING.md: each replication,
// protection or migration): a migration is vm.migrated, anything else
// vm.protected. Whatever the source VM's power state: a powered-off VM
// (dataConnectionState POWERED_OFF) is replicated, and counts.
func metricOf(isMigration bool) string {
	if isMigration {
		return collectors.MetricVMMigrated
	}
	return collectors.MetricVMProtected
}

// objectKey is the stable identity of a replicated VM (*assumed*, in one
// place): for a replication from an on-premises vCenter (the reference's
// DR2C, source vimServerUuid set) "<vCenter instance UUID>/moref/<MoRef>",
// the key SRM uses to join vCenter VMs; else "<source site>/vm/<vmId>",
// the Cloud Director VM id qualified by the VCDA site it lives on. "" when
// the record has no VM id (its VM no longer exists): such a record is
// skipped, never guessed.
func objectKey(src endpoint) string {
	if src.VMID == nil {
		return ""
	}
	id := strings.TrimSpace(*src.VMID)
	if id == "" {
		return ""
	}
	if vc := strings.TrimSpace(src.VimServer); vc != "" {
		return vc + "/moref/" + id
	}
	site := strings.TrimSpace(src.Site)
	if site == "" {
		site = "unknown-site"
	}
	return site + "/vm/" + id
}

// direction of a replication seen from local ("" when unknown).
func direction(local string, src, dst endpoint) string {
	switch {
	case local == "":
		return ""
	case strings.EqualFold(dst.Site, local):
		return DirIncoming
	case strings.EqualFold(src.Site, local):
		return DirOutgoing
	}
	return DirOther
}

// tenantOf is the org a replication is metered for: the destination org
// of an incoming replication (the tenant whose replicas this cloud holds),
// the source org otherwise.
func tenantOf(dir string, src, dst endpoint) string {
	if dir == DirIncoming && dst.Org != "" {
		return dst.Org
	}
	if src.Org != "" {
		return src.Org
	}
	return dst.Org
}
