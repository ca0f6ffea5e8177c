package ova_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/usagemeter/usagemeter/deploy/ova/firstboot"
)

func readRootfs(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile("rootfs/" + path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestServiceHardening keeps the daemon's unit as locked down as the issue asks.
func TestServiceHardening(t *testing.T) {
	unit := readRootfs(t, "etc/systemd/system/usagemeter.service")
	for _, want := range []string{
		"User=usagemeter", "Group=usagemeter",
		"ProtectSystem=strict", "ReadWritePaths=/var/lib/usagemeter",
		"NoNewPrivileges=yes", "PrivateTmp=yes", "PrivateDevices=yes", "ProtectHome=yes",
		"CapabilityBoundingSet=\n", "AmbientCapabilities=\n",
		"ExecStart=/usr/bin/usagemeter serve --config " + firstboot.ConfigPath + "\n",
		"Requires=postgresql.service", "After=network-online.target postgresql.service",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("usagemeter.service lacks %q", want)
		}
	}
	fb := readRootfs(t, "etc/systemd/system/usagemeter-firstboot.service")
	for _, want := range []string{
		"ConditionPathExists=!" + firstboot.MarkerPath + "\n",
		"Before=usagemeter.service ssh.service",
		"ExecStart=/usr/lib/usagemeter/firstboot\n",
		"StandardOutput=journal+console",
	} {
		if !strings.Contains(fb, want) {
			t.Errorf("usagemeter-firstboot.service lacks %q", want)
		}
	}
}

// TestFirewallOpensOnlyWhatIsServed: SSH and the daemon's HTTP port.
func TestFirewallOpensOnlyWhatIsServed(t *testing.T) {
	nft := readRootfs(t, "etc/nftables.conf")
	if !strings.Contains(nft, "policy drop;") {
		t.Error("input policy is not drop")
	}
	// The TCP ports are defined once at the top (TCP_IN), so that they are easy to change.
	defs := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^define (\w+) = (.*)$`).FindAllStringSubmatch(nft, -1) {
		defs["$"+m[1]] = m[2]
	}
	ports := regexp.MustCompile(`(tcp|udp) dport (\{[^}]*\}|\d+|\$\w+) accept`).FindAllStringSubmatch(nft, -1)
	var got []string
	for _, m := range ports {
		v := m[2]
		if d, ok := defs[v]; ok {
			v = d
		}
		got = append(got, m[1]+" "+v)
	}
	if want := "udp 546,tcp { 22, 8080 }"; strings.Join(got, ",") != want {
		t.Errorf("firewall opens %q, want %q", strings.Join(got, ","), want)
	}
	if firstboot.HTTPPort != 8080 {
		t.Errorf("first boot configures port %d but the firewall opens 8080", firstboot.HTTPPort)
	}
}
