package vra7

import "strings"

// RulesVersion names the Aria Automation 7 metering rules below; it is set
// on every observation (dims) so that a change of rules shows in the spans.
const RulesVersion = "vra7-managed-assumed-1"

// Join states of a machine (dim vcenter_join).
const (
	// Joined: keyed on its vCenter's identity, a vCenter registered on
	// this appliance (or the registered ones are not known).
	Joined = "joined"
	// Unjoined: its vCenter or MoRef is not known (counted on its own
	// key), or its vCenter is not registered on this appliance (keyed on
	// its identity all the same).
	Unjoined = "unjoined"
)

// InterfaceVSphere is MachineInterfaceType of a vSphere machine.
const InterfaceVSphere = "vSphere"

// StatusDeleted is the status of a catalog resource that was destroyed.
const StatusDeleted = "DELETED"

// verdict says whether a catalog resource counts as a managed vSphere VM
// (*assumed*, METERING.md "managed vSphere VMs", non-unique VM count):
// every resource of type Infrastructure.Virtual on a vSphere endpoint
// counts, whatever its power state (MachineStatus On, Off, ...): it is
// under management. A machine of another endpoint type (Hyper-V, KVM,
// Amazon, ...) is not a vSphere VM and is skipped; so is a resource whose
// status is DELETED, and one without an id.
type verdict int

const (
	counted verdict = iota
	otherType
	notVSphere
	deleted
	noID
)

func judge(r *resource) verdict {
	switch {
	case strings.TrimSpace(r.ID) == "":
		return noID
	case r.ResourceTypeRef.ID != "" && r.ResourceTypeRef.ID != "Infrastructure.Virtual":
		return otherType
	case strings.EqualFold(r.Status, StatusDeleted):
		return deleted
	}
	// A machine that does not say its endpoint type is taken as vSphere
	// (the only endpoint type the catalog's vSphere machines name).
	if it := strings.TrimSpace(r.Data.get(KeyInterfaceType)); it != "" && !strings.EqualFold(it, InterfaceVSphere) {
		return notVSphere
	}
	return counted
}
