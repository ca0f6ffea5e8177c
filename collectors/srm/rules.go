package srm

import "strings"

// RulesVersion names the SRM metering rules below; it is set on every
// observation (dims) so that a change of rules shows in the spans.
const RulesVersion = "srm-protected-assumed-1"

// StatusMissing is the protection status of a VM that is listed in a group
// but was deleted from the vCenter inventory (the reference's
// VmProtectionStatusDetails: MISSING_UNPROTECTED_VM).
const StatusMissing = "MISSING_UNPROTECTED_VM"

// counts reports whether a VM in a protection group, with this protection
// status, is a protected VM for metering (*assumed*, METERING.md): every VM
// a group lists counts, whatever its power state (SRM does not say it) and
// whatever its status (configuring, a replication warning or error: the
// provider still protects it), except one that no longer exists.
func counts(status string) bool {
	return !strings.EqualFold(status, StatusMissing)
}

// morefOf is the vCenter MoRef value of an SRM VM id: the id itself
// ("vm-1042"), or its part after the last ':' when SRM qualifies it with a
// server guid ("<vc guid>:vm-1042"). "" when the id is empty.
func morefOf(id string) string {
	id = strings.TrimSpace(id)
	if i := strings.LastIndexByte(id, ':'); i >= 0 {
		id = id[i+1:]
	}
	return id
}
