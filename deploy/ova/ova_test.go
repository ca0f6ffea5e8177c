package ova_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/cli"
	_ "github.com/vmware/govmomi/cli/importx"
	"github.com/vmware/govmomi/find"
	govmomiovf "github.com/vmware/govmomi/ovf"
	"github.com/vmware/govmomi/ovf/importer"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vmdk"

	"github.com/usagemeter/usagemeter/deploy/ova"
)

// buildTestOVA writes a 1 MiB streamOptimized disk with a little data and
// packs it with the descriptor into dir/usagemeter.ova.
func buildTestOVA(t *testing.T, dir string) (string, []byte) {
	t.Helper()
	disk := filepath.Join(dir, "usagemeter-disk1.vmdk")
	const capacity = 1 << 20
	w, err := vmdk.NewStreamOptimizedWriter(disk, capacity)
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, capacity)
	copy(raw[4096:], "usagemeter test disk")
	if err := w.Write(bytes.NewReader(raw)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := ova.VMDKCapacity(disk)
	if err != nil || got != capacity {
		t.Fatalf("VMDKCapacity = %d, %v; want %d", got, err, capacity)
	}
	out := filepath.Join(dir, "usagemeter.ova")
	desc, err := ova.Build(out, "usagemeter", "test", disk, capacity, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	return out, desc
}

func TestDescriptorCategoriesAndPasswords(t *testing.T) {
	desc, err := ova.Descriptor(ova.Params{Name: "usagemeter", Version: "1.0", Disk: ova.Disk{File: "d.vmdk", Size: 1, Capacity: 1 << 30}})
	if err != nil {
		t.Fatal(err)
	}
	env, err := govmomiovf.Unmarshal(bytes.NewReader(desc))
	if err != nil {
		t.Fatalf("descriptor does not parse: %v\n%s", err, desc)
	}
	if len(env.VirtualSystem.Product) != 1 {
		t.Fatalf("want one ProductSection, got %d", len(env.VirtualSystem.Product))
	}
	// Walk Category/Property in document order: each property must sit
	// under the category the table gives it.
	cat := ""
	byKey := map[string]string{}
	var cats []string
	for _, it := range env.VirtualSystem.Product[0].Items {
		if it.Category != nil {
			cat = *it.Category
			cats = append(cats, cat)
			continue
		}
		byKey[it.Property.Key] = cat
		p := it.Property
		if p.Label == nil || *p.Label == "" || p.Description == nil || *p.Description == "" {
			t.Errorf("property %s: missing label or description", p.Key)
		}
		if p.UserConfigurable == nil || !*p.UserConfigurable {
			t.Errorf("property %s: not user-configurable", p.Key)
		}
		isPw := p.Password != nil && *p.Password
		if wantPw := strings.HasSuffix(p.Key, ".password"); isPw != wantPw {
			t.Errorf("property %s: password = %v, want %v", p.Key, isPw, wantPw)
		}
	}
	if got, want := strings.Join(cats, ","), "Network,Administrator,SMTP,Reporting,Registration,Logging"; got != want {
		t.Errorf("categories = %s, want %s", got, want)
	}
	for _, p := range ova.Properties {
		if byKey[p.Key] != p.Category {
			t.Errorf("property %s: under category %q, want %q", p.Key, byKey[p.Key], p.Category)
		}
	}
	for _, k := range []string{ova.KeyHostname, ova.KeyIP, ova.KeyGateway, ova.KeyDNS, ova.KeyAdminPassword,
		ova.KeySMTPHost, ova.KeySMTPPort, ova.KeySMTPTLS, ova.KeySMTPUsername, ova.KeySMTPPassword,
		ova.KeyAlertTo, ova.KeyReportTo, ova.KeyRecipientKey, ova.KeyTimezone,
		ova.KeyNTP, ova.KeyProxy, ova.KeyAdminSSHKey, ova.KeyContract, ova.KeyProgram, ova.KeySyslog} {
		if _, ok := byKey[k]; !ok {
			t.Errorf("property %s missing from the descriptor", k)
		}
	}

	hw := env.VirtualSystem.VirtualHardware[0]
	var firmware string
	for _, c := range hw.Config {
		if c.Key == "firmware" {
			firmware = c.Value
		}
	}
	if firmware != "efi" {
		t.Errorf("firmware = %q, want efi", firmware)
	}
	if hw.System == nil || hw.System.VirtualSystemType == nil || *hw.System.VirtualSystemType != "vmx-19" {
		t.Errorf("VirtualSystemType is not vmx-19")
	}
	if d := env.Disk.Disks[0]; d.Format == nil || !strings.HasSuffix(*d.Format, "#streamOptimized") {
		t.Errorf("disk format is not streamOptimized")
	}
}

func TestDescriptorRejectsMissingDisk(t *testing.T) {
	if _, err := ova.Descriptor(ova.Params{Name: "usagemeter"}); err == nil {
		t.Fatal("want an error for a descriptor without a disk")
	}
}

// TestOVALayout checks the tar: descriptor first, manifest second, and the
// manifest's SHA-256 sums match the files.
func TestOVALayout(t *testing.T) {
	path, _ := buildTestOVA(t, t.TempDir())
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var names []string
	sums := map[string]string{}
	var mf string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256(b)
		sums[h.Name] = hex.EncodeToString(s[:])
		if strings.HasSuffix(h.Name, ".mf") {
			mf = string(b)
		}
	}
	if got, want := strings.Join(names, " "), "usagemeter.ovf usagemeter.mf usagemeter-disk1.vmdk"; got != want {
		t.Fatalf("OVA entries = %q, want %q", got, want)
	}
	for _, n := range []string{"usagemeter.ovf", "usagemeter-disk1.vmdk"} {
		if line := "SHA256(" + n + ")= " + sums[n] + "\n"; !strings.Contains(mf, line) {
			t.Errorf("manifest lacks %q:\n%s", line, mf)
		}
	}
}

// runGovc runs one govc command in-process and returns its stdout.
func runGovc(t *testing.T, args ...string) string {
	t.Helper()
	out, err := os.CreateTemp(t.TempDir(), "stdout")
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = out
	rc := cli.Run(args)
	os.Stdout = stdout
	b, _ := os.ReadFile(out.Name())
	out.Close()
	if rc != 0 {
		t.Fatalf("govc %s: exit %d\n%s", strings.Join(args, " "), rc, b)
	}
	return string(b)
}

// TestImportIntoSimulator imports the OVA into govmomi's vCenter simulator
// with govc's import.spec and import.ova, then reads the VM back.
//
// With USAGEMETER_OVA set (make ova-test does), the OVA built by make ova is
// imported instead of the tiny test one.
func TestImportIntoSimulator(t *testing.T) {
	dir := t.TempDir()
	path := os.Getenv("USAGEMETER_OVA")
	if path == "" {
		path, _ = buildTestOVA(t, dir)
	}

	model := simulator.VPX()
	defer model.Remove()
	if err := model.Create(); err != nil {
		t.Fatal(err)
	}
	srv := model.Service.NewServer()
	defer srv.Close()
	t.Setenv("GOVC_URL", srv.URL.String())
	t.Setenv("GOVC_INSECURE", "true")
	t.Setenv("GOVC_DATACENTER", "")
	t.Setenv("GOVC_DATASTORE", "")
	t.Setenv("GOVC_NETWORK", "")
	t.Setenv("GOVC_RESOURCE_POOL", "/DC0/host/DC0_C0/Resources")
	t.Setenv("GOVC_HOST", "")
	t.Setenv("GOVC_FOLDER", "")

	// import.spec lists every property with its label (-verbose adds the spec).
	// importer.Property's promoted UnmarshalJSON drops Spec: read the
	// properties through a struct of our own.
	specOut := runGovc(t, "import.spec", "-verbose", path)
	var spec importer.Options
	var listing struct {
		PropertyMapping []struct {
			Key, Value string
			Spec       *govmomiovf.Property
		}
	}
	if err := json.Unmarshal([]byte(specOut), &spec); err != nil {
		t.Fatalf("import.spec output: %v\n%s", err, specOut)
	}
	if err := json.Unmarshal([]byte(specOut), &listing); err != nil {
		t.Fatalf("import.spec output: %v\n%s", err, specOut)
	}
	type listedProp struct {
		Value string
		Spec  *govmomiovf.Property
	}
	listed := map[string]listedProp{}
	for _, p := range listing.PropertyMapping {
		listed[p.Key] = listedProp{p.Value, p.Spec}
	}
	for _, want := range ova.Properties {
		p, ok := listed[want.Key]
		if !ok {
			t.Errorf("import.spec does not list %s", want.Key)
			continue
		}
		if p.Spec == nil || p.Spec.Label == nil || *p.Spec.Label != want.Label {
			t.Errorf("import.spec %s: label not %q", want.Key, want.Label)
		}
		if p.Value != want.Default {
			t.Errorf("import.spec %s: default %q, want %q", want.Key, p.Value, want.Default)
		}
		if want.Password && (p.Spec == nil || p.Spec.Password == nil || !*p.Spec.Password) {
			t.Errorf("import.spec %s: not marked as a password", want.Key)
		}
	}
	if len(spec.NetworkMapping) != 1 || spec.NetworkMapping[0].Name != "VM Network" {
		t.Errorf("import.spec networks = %+v, want one \"VM Network\"", spec.NetworkMapping)
	}

	// Fill in the options as an admin would and import.
	values := map[string]string{
		ova.KeyHostname:      "meter01.example.com",
		ova.KeyIP:            "192.0.2.10/24",
		ova.KeyGateway:       "192.0.2.1",
		ova.KeyDNS:           "192.0.2.53,192.0.2.54",
		ova.KeyAdminPassword: "admin-Secret-1",
		ova.KeySMTPHost:      "smtp.example.com",
		ova.KeySMTPPort:      "465",
		ova.KeySMTPTLS:       "tls",
		ova.KeySMTPUsername:  "meter",
		ova.KeySMTPPassword:  "smtp-Secret-2",
		ova.KeySMTPFrom:      "meter@example.com",
		ova.KeyAlertTo:       "ops@example.com",
		ova.KeyReportTo:      "usage@aggregator.example",
		ova.KeyRecipientKey:  "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nxjMEAAAA\n-----END PGP PUBLIC KEY BLOCK-----",
		ova.KeyTimezone:      "Europe/Berlin",
		ova.KeyNTP:           "ntp1.example.com,192.0.2.123",
		ova.KeyProxy:         "http://proxy.example.com:3128",
		ova.KeyAdminSSHKey:   "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGLu4ZqV2kPZzuy1Yq5lLlO7Q0ah0iWf8c2u8uWEbHkd ops@laptop",
		ova.KeyContract:      "CTR-2026-0042",
		ova.KeyProgram:       "sovereign-cloud",
		ova.KeySyslog:        "tcp://syslog.example.com:6514",
	}
	spec.PropertyMapping = nil
	for _, p := range ova.Properties {
		spec.PropertyMapping = append(spec.PropertyMapping, importer.Property{KeyValue: importer.KeyValue{Key: p.Key, Value: values[p.Key]}})
	}
	spec.NetworkMapping[0].Network = "VM Network"
	spec.DiskProvisioning = "thin"
	name := "meter01"
	spec.Name = &name
	opts, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	optsPath := filepath.Join(dir, "options.json")
	if err := os.WriteFile(optsPath, opts, 0o600); err != nil {
		t.Fatal(err)
	}
	// No -m: the simulator's NFC lease reports no checksums to compare the
	// manifest with; TestOVALayout checks the manifest instead.
	runGovc(t, "import.ova", "-options", optsPath, path)

	checkImportedVM(t, srv.URL, name, values)
}

func checkImportedVM(t *testing.T, u *url.URL, name string, values map[string]string) {
	t.Helper()
	ctx := context.Background()
	c, err := govmomi.NewClient(ctx, u, true)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := find.NewFinder(c.Client).VirtualMachine(ctx, name)
	if err != nil {
		t.Fatalf("imported VM %s: %v", name, err)
	}
	var m mo.VirtualMachine
	if err := vm.Properties(ctx, vm.Reference(), []string{"config"}, &m); err != nil {
		t.Fatal(err)
	}
	hw := m.Config.Hardware
	if hw.NumCPU != ova.CPUs || hw.MemoryMB != ova.MemoryMB {
		t.Errorf("VM has %d vCPU and %d MB, want %d and %d", hw.NumCPU, hw.MemoryMB, ova.CPUs, ova.MemoryMB)
	}
	var nics, pvscsi, disks int
	for _, d := range hw.Device {
		switch d := d.(type) {
		case *types.VirtualVmxnet3:
			nics++
		case *types.ParaVirtualSCSIController:
			pvscsi++
		case *types.VirtualDisk:
			disks++
		case types.BaseVirtualEthernetCard:
			t.Errorf("unexpected NIC type %T", d)
		case types.BaseVirtualSCSIController:
			t.Errorf("unexpected SCSI controller type %T", d)
		}
	}
	if nics != 1 || pvscsi != 1 || disks != 1 {
		t.Errorf("VM has %d vmxnet3 NIC(s), %d pvscsi controller(s), %d disk(s); want 1 each", nics, pvscsi, disks)
	}
	if m.Config.VAppConfig == nil {
		t.Fatal("VM has no vApp config: the OVF properties were not imported")
	}
	props := map[string]types.VAppPropertyInfo{}
	for _, p := range m.Config.VAppConfig.GetVmConfigInfo().Property {
		props[p.Id] = p
	}
	for _, want := range ova.Properties {
		p, ok := props[want.Key]
		if !ok {
			t.Errorf("vApp property %s missing on the VM", want.Key)
			continue
		}
		if p.Value != values[want.Key] {
			t.Errorf("vApp property %s = %q, want %q", want.Key, p.Value, values[want.Key])
		}
		if p.Label != want.Label || p.Description != want.Description {
			t.Errorf("vApp property %s: label/description %q/%q, want %q/%q", want.Key, p.Label, p.Description, want.Label, want.Description)
		}
	}
}
