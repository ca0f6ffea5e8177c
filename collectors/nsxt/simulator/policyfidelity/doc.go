// Package policyfidelity holds only a test: the NSX-T simulator
// (collectors/nsxt/simulator) driven by the NSX Policy API bindings of
// github.com/vmware/vsphere-automation-sdk-go (services/nsxt, the version
// pinned in go.mod). It is a package of its own so that the bindings, large
// generated code, are compiled only for this test and not for every test of
// the simulator's package.
package policyfidelity
