package ova_test

import (
	"os"
	"path/filepath"
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
		"CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n", "AmbientCapabilities=CAP_NET_BIND_SERVICE\n", // port 443, nothing else
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
	if want := "udp 546,tcp { 22, 443 }"; strings.Join(got, ",") != want {
		t.Errorf("firewall opens %q, want %q", strings.Join(got, ","), want)
	}
	if firstboot.HTTPPort != 443 {
		t.Errorf("first boot configures port %d but the firewall opens 443", firstboot.HTTPPort)
	}
}

// TestLogsBounded: the journal is persistent and bounded, PostgreSQL logs
// into it (no file of its own that grows), and nothing feeds the syslog
// socket rsyslog does not read.
func TestLogsBounded(t *testing.T) {
	j := readRootfs(t, "etc/systemd/journald.conf.d/usagemeter.conf")
	for _, want := range []string{"[Journal]\n", "\nStorage=persistent\n", "\nSystemMaxUse=1G\n", "\nSystemKeepFree=2G\n", "\nSystemMaxFileSize=64M\n", "\nForwardToSyslog=no\n"} {
		if !strings.Contains(j, want) {
			t.Errorf("journald.conf.d/usagemeter.conf lacks %q", want)
		}
	}
	pg := readRootfs(t, "etc/postgresql/15/main/conf.d/usagemeter-logging.conf")
	for _, want := range []string{"\nlog_destination = 'syslog'\n", "\nlogging_collector = off\n", "\nsyslog_ident = 'postgres'\n"} {
		if !strings.Contains(pg, want) {
			t.Errorf("PostgreSQL's logging conf lacks %q", want)
		}
	}
}

// TestFirstbootFilesAreRead: where first boot writes chrony's sources and
// the syslog forwarding rule is where chrony and rsyslog read them, and the
// image adds no time source of its own.
func TestFirstbootFilesAreRead(t *testing.T) {
	chrony := readRootfs(t, "etc/chrony/chrony.conf")
	if dir := filepath.Dir(firstboot.ChronySourcesPath); !strings.Contains(chrony, "\nsourcedir "+dir+"\n") || !strings.HasSuffix(firstboot.ChronySourcesPath, ".sources") {
		t.Errorf("chrony.conf does not read %s", firstboot.ChronySourcesPath)
	}
	if regexp.MustCompile(`(?m)^(pool|server|peer) `).MatchString(chrony) {
		t.Error("chrony.conf has a time source of its own besides net.ntp")
	}
	rs := readRootfs(t, "etc/rsyslog.conf")
	if !strings.Contains(rs, `module(load="imjournal"`) {
		t.Error("rsyslog does not read the journal")
	}
	if ok, _ := filepath.Match("/etc/rsyslog.d/*.conf", firstboot.SyslogForwardPath); !ok || !strings.Contains(rs, `include(file="/etc/rsyslog.d/*.conf"`) {
		t.Errorf("rsyslog.conf does not include %s", firstboot.SyslogForwardPath)
	}
	if regexp.MustCompile(`(?m)^[^#].*(omfile|/var/log/)`).MatchString(rs) {
		t.Error("rsyslog writes files of its own")
	}
	fb := readRootfs(t, "etc/systemd/system/usagemeter-firstboot.service")
	if !strings.Contains(fb, " chrony.service ") {
		t.Error("chrony may start before first boot wrote its sources")
	}
}
