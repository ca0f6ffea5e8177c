// Package ova builds the appliance's OVF descriptor and packs it with its
// disk into an OVA.
//
// The descriptor has one source: the Properties table below and the template
// in Descriptor. The deploy-time properties it declares are read back on the
// appliance by the first-boot program (package firstboot), which uses the same
// keys. The hardware is fixed: 2 vCPU, 4 GB, a paravirtual SCSI controller with
// one streamOptimized disk, a vmxnet3 NIC, EFI firmware.
package ova

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"text/template"
)

// Property is one user-configurable deploy-time property of the appliance.
type Property struct {
	Key         string // ovf:key; the key in the OVF environment
	Category    string // the group the vSphere client shows it under
	Type        string // string | int | boolean
	Qualifiers  string // ovf:qualifiers, e.g. MinLen(8) or ValueMap{"a","b"}
	Default     string
	Password    bool // ovf:password="true": masked in the vSphere client
	Label       string
	Description string
}

// Property keys, shared with the first-boot program.
const (
	KeyHostname = "net.hostname"
	KeyIP       = "net.ip"
	KeyGateway  = "net.gateway"
	KeyDNS      = "net.dns"
	KeyNTP      = "net.ntp"
	KeyProxy    = "net.proxy"

	KeyAdminPassword = "admin.password"
	KeyAdminSSHKey   = "admin.ssh_key"

	KeySMTPHost     = "smtp.host"
	KeySMTPPort     = "smtp.port"
	KeySMTPTLS      = "smtp.tls"
	KeySMTPUsername = "smtp.username"
	KeySMTPPassword = "smtp.password"
	KeySMTPFrom     = "smtp.from"

	KeyAlertTo      = "report.alert_to"
	KeyReportTo     = "report.to"
	KeyRecipientKey = "report.recipient_key"
	KeyTimezone     = "report.timezone"

	KeyContract = "registration.contract"
	KeyProgram  = "registration.program"

	KeySyslog = "log.syslog"
)

// Categories, in the order the vSphere client shows them.
const (
	CategoryNetwork      = "Network"
	CategoryAdmin        = "Administrator"
	CategorySMTP         = "SMTP"
	CategoryReport       = "Reporting"
	CategoryRegistration = "Registration"
	CategoryLogging      = "Logging"
)

// Properties is every deploy-time property, grouped by category in order.
var Properties = []Property{
	{Key: KeyHostname, Category: CategoryNetwork, Type: "string", Default: "usagemeter", Qualifiers: "MaxLen(253)",
		Label:       "Host name",
		Description: "Host name (or fully qualified domain name) of the appliance."},
	{Key: KeyIP, Category: CategoryNetwork, Type: "string",
		Label:       "IP address (CIDR)",
		Description: "Static IPv4 or IPv6 address with prefix length, e.g. 192.0.2.10/24. Leave empty to use DHCP. An invalid value falls back to DHCP and is reported on the console."},
	{Key: KeyGateway, Category: CategoryNetwork, Type: "string",
		Label:       "Default gateway",
		Description: "Default gateway for the static address. Ignored with DHCP."},
	{Key: KeyDNS, Category: CategoryNetwork, Type: "string",
		Label:       "DNS servers",
		Description: "Comma-separated DNS server addresses. Ignored with DHCP unless set."},
	{Key: KeyNTP, Category: CategoryNetwork, Type: "string",
		Label:       "NTP servers",
		Description: "Comma-separated NTP server names or addresses. Empty means the Debian pool (2.debian.pool.ntp.org). Reports are cut by the hour: keep the clock in sync."},
	{Key: KeyProxy, Category: CategoryNetwork, Type: "string",
		Label:       "HTTP proxy",
		Description: "Proxy for connections to the internet, e.g. http://proxy.example.com:3128 (user:password@ allowed): the report upload and Debian updates. Products (vCenter, NSX, ...) and SMTP are reached directly. Empty means no proxy."},

	{Key: KeyAdminPassword, Category: CategoryAdmin, Type: "string", Password: true, Qualifiers: "MinLen(8) MaxLen(128)",
		Label:       "Administrator password",
		Description: "Password of the 'admin' account (console and SSH; admin may use sudo). At least 8 characters; with 12 or more it is also the password of the web console's 'admin' account."},
	{Key: KeyAdminSSHKey, Category: CategoryAdmin, Type: "string",
		Label:       "Administrator SSH public key",
		Description: "OpenSSH public key(s) allowed to log in as admin, e.g. ssh-ed25519 AAAA... user@host; several separated by line breaks. Empty means password login only."},

	{Key: KeySMTPHost, Category: CategorySMTP, Type: "string",
		Label:       "SMTP server",
		Description: "Host name or address of the mail server that sends alerts and reports."},
	{Key: KeySMTPPort, Category: CategorySMTP, Type: "int", Default: "587", Qualifiers: "MinValue(1) MaxValue(65535)",
		Label:       "SMTP port",
		Description: "TCP port of the mail server: 587 for STARTTLS, 465 for implicit TLS, 25 for plain."},
	{Key: KeySMTPTLS, Category: CategorySMTP, Type: "string", Default: "starttls", Qualifiers: `ValueMap{"starttls","tls","none"}`,
		Label:       "SMTP TLS mode",
		Description: "starttls (upgrade after connecting), tls (implicit TLS) or none (plain text; no authentication allowed)."},
	{Key: KeySMTPUsername, Category: CategorySMTP, Type: "string",
		Label:       "SMTP user name",
		Description: "User name for SMTP authentication. Leave empty if the server needs none."},
	{Key: KeySMTPPassword, Category: CategorySMTP, Type: "string", Password: true,
		Label:       "SMTP password",
		Description: "Password for SMTP authentication. Stored only in /etc/usagemeter/config.yaml (mode 0600)."},
	{Key: KeySMTPFrom, Category: CategorySMTP, Type: "string",
		Label:       "Sender address",
		Description: "From address of the appliance's e-mails. Empty means usagemeter@<host name>."},

	{Key: KeyAlertTo, Category: CategoryReport, Type: "string",
		Label:       "Alert recipients",
		Description: "Comma-separated e-mail addresses told when collection or delivery fails."},
	{Key: KeyReportTo, Category: CategoryReport, Type: "string",
		Label:       "Report recipients",
		Description: "Comma-separated e-mail addresses the monthly encrypted usage report is sent to."},
	{Key: KeyRecipientKey, Category: CategoryReport, Type: "string",
		Label:       "Report recipient public key",
		Description: "ASCII-armored PGP public key the monthly report is encrypted to (paste the whole block)."},
	{Key: KeyTimezone, Category: CategoryReport, Type: "string", Default: "UTC",
		Label:       "Report time zone",
		Description: "IANA time zone of the monthly report, e.g. UTC or Europe/Berlin."},

	{Key: KeyContract, Category: CategoryRegistration, Type: "string", Qualifiers: "MaxLen(128)",
		Label:       "Contract",
		Description: "The provider's contract id with the aggregator. First boot registers the appliance with it (usagemeter register); empty leaves the appliance unregistered until you run usagemeter register."},
	{Key: KeyProgram, Category: CategoryRegistration, Type: "string", Default: "rental", Qualifiers: `ValueMap{"rental","sovereign-cloud"}`,
		Label:       "Programme",
		Description: "Licence programme of the contract: rental or sovereign-cloud."},

	{Key: KeySyslog, Category: CategoryLogging, Type: "string",
		Label:       "Remote syslog server",
		Description: "Forward the appliance's journal (usagemeter, PostgreSQL, the system) to this syslog server: host, host:port, udp://host:port or tcp://host:port (default UDP port 514). Empty means logs stay on the appliance (bounded to 1 GB)."},
}

// Hardware of the appliance VM.
const (
	CPUs     = 2
	MemoryMB = 4096
)

// Disk is one disk file referenced by the descriptor.
type Disk struct {
	File     string // file name inside the OVA, e.g. usagemeter-disk1.vmdk
	Size     int64  // size of that (streamOptimized) file in bytes
	Capacity int64  // virtual capacity in bytes
}

// Params are what changes between builds.
type Params struct {
	Name    string // VM and product name
	Version string
	Disk    Disk
}

// Descriptor renders the OVF descriptor.
func Descriptor(p Params) ([]byte, error) {
	if p.Name == "" || p.Disk.File == "" || p.Disk.Size <= 0 || p.Disk.Capacity <= 0 {
		return nil, fmt.Errorf("ovf descriptor: name, disk file, size and capacity must be set (got %+v)", p)
	}
	if p.Version == "" {
		p.Version = "dev"
	}
	var b bytes.Buffer
	err := descriptorTmpl.Execute(&b, struct {
		Params
		Properties []Property
		CPUs       int
		MemoryMB   int
	}{p, Properties, CPUs, MemoryMB})
	if err != nil {
		return nil, fmt.Errorf("ovf descriptor: %w", err)
	}
	return b.Bytes(), nil
}

func xmlEscape(s string) (string, error) {
	var b bytes.Buffer
	if err := xml.EscapeText(&b, []byte(s)); err != nil {
		return "", err
	}
	return b.String(), nil
}

var descriptorTmpl = template.Must(template.New("ovf").Funcs(template.FuncMap{
	"x": xmlEscape,
	"newCategory": func(ps []Property, i int) bool {
		return i == 0 || ps[i-1].Category != ps[i].Category
	},
}).Parse(`<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <References>
    <File ovf:href="{{x .Disk.File}}" ovf:id="file1" ovf:size="{{.Disk.Size}}"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="{{.Disk.Capacity}}" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <NetworkSection>
    <Info>The list of logical networks</Info>
    <Network ovf:name="VM Network">
      <Description>The network the appliance is reachable on</Description>
    </Network>
  </NetworkSection>
  <VirtualSystem ovf:id="{{x .Name}}">
    <Info>The usagemeter metering appliance</Info>
    <Name>{{x .Name}}</Name>
    <AnnotationSection>
      <Info>A human-readable annotation</Info>
      <Annotation>usagemeter {{x .Version}}: collects hourly usage from VMware products and sends the monthly encrypted usage report. Web console and API over HTTPS on port 443, SSH on port 22 (user admin).</Annotation>
    </AnnotationSection>
    <OperatingSystemSection ovf:id="96" vmw:osType="debian11_64Guest">
      <Info>The kind of installed guest operating system</Info>
      <Description>Debian GNU/Linux 12 (64-bit)</Description>
    </OperatingSystemSection>
    <VirtualHardwareSection ovf:transport="com.vmware.guestInfo">
      <Info>Virtual hardware requirements</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>{{x .Name}}</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>vmx-19</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>
        <rasd:Description>Number of Virtual CPUs</rasd:Description>
        <rasd:ElementName>{{.CPUs}} virtual CPU(s)</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>{{.CPUs}}</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>
        <rasd:Description>Memory Size</rasd:Description>
        <rasd:ElementName>{{.MemoryMB}}MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>{{.MemoryMB}}</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Description>SCSI Controller</rasd:Description>
        <rasd:ElementName>SCSI Controller 0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>VirtualSCSI</rasd:ResourceSubType>
        <rasd:ResourceType>6</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:ElementName>Hard Disk 1</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>7</rasd:AddressOnParent>
        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Connection>VM Network</rasd:Connection>
        <rasd:Description>VmxNet3 ethernet adapter on "VM Network"</rasd:Description>
        <rasd:ElementName>Network adapter 1</rasd:ElementName>
        <rasd:InstanceID>5</rasd:InstanceID>
        <rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType>
      </Item>
      <Item ovf:required="false">
        <rasd:AutomaticAllocation>false</rasd:AutomaticAllocation>
        <rasd:ElementName>Video card</rasd:ElementName>
        <rasd:InstanceID>6</rasd:InstanceID>
        <rasd:ResourceType>24</rasd:ResourceType>
      </Item>
      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/>
      <vmw:Config ovf:required="false" vmw:key="tools.syncTimeWithHost" vmw:value="false"/>
      <vmw:Config ovf:required="false" vmw:key="tools.toolsUpgradePolicy" vmw:value="manual"/>
    </VirtualHardwareSection>
    <ProductSection ovf:required="false">
      <Info>Deploy-time settings of the appliance</Info>
      <Product>usagemeter</Product>
      <Vendor>usagemeter</Vendor>
      <Version>{{x .Version}}</Version>
      <FullVersion>usagemeter {{x .Version}}</FullVersion>
{{- range $i, $p := .Properties}}
{{- if newCategory $.Properties $i}}
      <Category>{{x $p.Category}}</Category>
{{- end}}
      <Property ovf:key="{{x $p.Key}}" ovf:type="{{$p.Type}}" ovf:userConfigurable="true"{{if $p.Default}} ovf:value="{{x $p.Default}}"{{end}}{{if $p.Qualifiers}} ovf:qualifiers="{{x $p.Qualifiers}}"{{end}}{{if $p.Password}} ovf:password="true"{{end}}>
        <Label>{{x $p.Label}}</Label>
        <Description>{{x $p.Description}}</Description>
      </Property>
{{- end}}
    </ProductSection>
  </VirtualSystem>
</Envelope>
`))
