package vra8

import "strings"

// RulesVersion names the Aria Automation 8 metering rules below; it is set
// on every observation (dims) so that a change of rules shows in the spans.
const RulesVersion = "vra8-managed-assumed-1"

// Cloud account types (cloudAccountType) with a known cloud; any other type
// (vmc, vcf, openstack, a new one) is counted under its own name.
const (
	CloudVSphere = "vsphere"
	CloudAWS     = "aws"
	CloudAzure   = "azure"
	CloudGCP     = "gcp"
	// CloudUnknown is the cloud of a machine none of whose cloud accounts
	// is listed and that carries no vSphere identity.
	CloudUnknown = "unknown"
)

// Editions are the report's names of the known clouds: the edition of each
// vm.managed observation, so that the monthly report has one line per cloud.
var Editions = map[string]string{CloudVSphere: "vSphere", CloudAWS: "AWS", CloudAzure: "Azure", CloudGCP: "GCP"}

// edition is the report's name of a cloud type: Editions, else the type.
func edition(cloud string) string {
	if e, ok := Editions[cloud]; ok {
		return e
	}
	return cloud
}

// Known reports whether cloud is one of the clouds METERING.md names.
func Known(cloud string) bool { _, ok := Editions[cloud]; return ok }

// Join states of a vSphere machine (dim vcenter_join).
const (
	// Joined: keyed on its vCenter's identity, a vCenter registered on
	// this appliance (or the registered ones are not known).
	Joined = "joined"
	// Unjoined: its vCenter or MoRef is not known (counted on its own
	// key), or its vCenter is not registered on this appliance (keyed on
	// its identity all the same).
	Unjoined = "unjoined"
)

// Custom properties of a vSphere machine (and of a vSphere cloud account)
// that give its vCenter identity.
const (
	PropVCenterUUID = "vcUuid"
	PropMoRef       = "__moref"
	// PropHostName is the vCenter's host name among a vSphere cloud
	// account's cloudAccountProperties.
	PropHostName = "hostName"
)

// morefOf is the MoRef value of a __moref property ("VirtualMachine:vm-42"
// → "vm-42"); "" when empty.
func morefOf(p string) string {
	p = strings.TrimSpace(p)
	if i := strings.LastIndexByte(p, ':'); i >= 0 {
		p = p[i+1:]
	}
	return p
}

// counts reports whether a managed machine counts (*assumed*, METERING.md
// "non-unique VM count" of managed VMs): every machine Aria Automation
// lists is under management, whatever its power state (ON, OFF,
// GUEST_OFF, SUSPEND, UNKNOWN) and its provisioning status. Only a record
// with neither an id nor an external id is left out: it names no VM.
func counts(m *machine) bool {
	return strings.TrimSpace(m.ID) != "" || strings.TrimSpace(m.ExternalID) != ""
}
