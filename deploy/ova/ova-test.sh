#!/bin/bash
# Boots the built appliance (deploy/ova/out/usagemeter.ova) under qemu the way
# vSphere would run it: EFI firmware, the disk on a paravirtual SCSI
# controller, a vmxnet3 NIC, and the OVF environment on a CD (the ISO
# transport). Checks that first boot runs, that usagemeter answers /healthz on
# a forwarded port, that the admin can log in on the serial console with the
# deploy-time password, that no secret is left on disk or in a log, and that a
# reboot keeps the data and does not run first boot again.
#
# Installs what it needs with apt-get when missing (qemu-system-x86,
# qemu-utils, xorriso, ovmf, curl, openssh-client, openssl; needs root for that). KVM
# when a short probe boot with the CPU model succeeds (a nested KVM may refuse
# -cpu host), TCG otherwise (minutes); ACCEL=tcg|kvm and CPU= force a choice.
# Runs niced. Serial console logs and the report (figures first, then the
# log) are kept in deploy/ova/out/.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$HERE/out}
WORK=${WORK:-/var/tmp/usagemeter-ova}/test
OVA=${OVA:-$OUT/usagemeter.ova}
PORT=${PORT:-18443}        # the appliance's 443, forwarded on 127.0.0.1
SSH_PORT=${SSH_PORT:-18022} # its 22
SYSLOG_PORT=${SYSLOG_PORT:-15514} # a UDP syslog receiver on 127.0.0.1 (10.0.2.2 in the guest)
BOOT_TIMEOUT=${BOOT_TIMEOUT:-1200}
UNIT_TIMEOUT=${UNIT_TIMEOUT:-420} # for the systemd units to be active, once /healthz answers
REPORT=$OUT/ova-test-report.txt
LOG=$OUT/ova-test.log

mkdir -p "$OUT"
: >"$LOG"
log() { printf '%s ova-test: %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$LOG" >&2; }
die() {
	log "FAIL: $*"
	write_report "FAIL: $*"
	exit 1
}

# write_report [verdict]: the figures, then the log.
T1=- T2=- T3=-
write_report() {
	{
		echo "usagemeter OVA test report"
		echo "date:        $(date -u +%Y-%m-%dT%H:%M:%SZ)"
		echo "result:      ${1:-PASS}"
		echo "image:       $OVA ($(($(stat -c %s "$OVA" 2>/dev/null || echo 0) / 1024 / 1024)) MiB)"
		[ -f "$OUT/build.log" ] && grep -ho 'done in [0-9]*s' "$OUT/build.log" | tail -1 | sed 's/^/build:       /'
		echo "accelerator: ${ACCEL:-not chosen yet}, -cpu ${CPU:-none}, 2 vCPU, 4096 MB, host $(nproc) CPUs"
		echo "boot 1 (first boot, EFI):         /healthz after ${T1}s"
		echo "boot 2 (reboot, BIOS, pvscsi):    /healthz after ${T2}s"
		echo "boot 3 (fresh, bad net.ip, EFI):  /healthz after ${T3}s"
		echo
		cat "$LOG"
	} >"$REPORT"
}

# --- prerequisites ---------------------------------------------------------
OVMF_CODE=/usr/share/OVMF/OVMF_CODE_4M.fd
OVMF_VARS=/usr/share/OVMF/OVMF_VARS_4M.fd
need=()
for t in qemu-system-x86_64:qemu-system-x86 qemu-img:qemu-utils xorriso:xorriso curl:curl python3:python3 ssh:openssh-client ssh-keygen:openssh-client timeout:coreutils openssl:openssl; do
	command -v "${t%%:*}" >/dev/null || need+=("${t##*:}")
done
[ -f "$OVMF_CODE" ] && [ -f "$OVMF_VARS" ] || need+=(ovmf)
if [ ${#need[@]} -gt 0 ]; then
	mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
	[ "$(id -u)" = 0 ] || die "missing ${need[*]}: run as root (the test installs them) or apt-get install them"
	log "installing ${need[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >&2 ||
		{ DEBIAN_FRONTEND=noninteractive apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >&2; } ||
		die "could not install ${need[*]}"
fi
for t in qemu-system-x86_64 qemu-img xorriso curl python3 ssh ssh-keygen; do
	command -v "$t" >/dev/null || die "$t still missing after apt-get install"
done
[ -f "$OVMF_CODE" ] || die "no OVMF firmware at $OVMF_CODE after apt-get install ovmf"
[ -f "$OVA" ] || die "$OVA not found: run make ova first"

# --- accelerator -----------------------------------------------------------
# probe accel cpu firmware: starts the test's machine, CPU model and vCPU
# count with that firmware and no disk, and passes once the firmware shows it
# ran (OVMF's boot manager on the serial port, SeaBIOS's banner on the debug
# port), within 30 s. A nested KVM may abort at once ("failed to set MSR
# 0x10a" with -cpu host) or stop the guest ("KVM internal error", emulation
# failure) in OVMF although SeaBIOS runs: both firmwares are tried.
probe() {
	local p=$WORK/probe-$1-$2-$3 pid want out fwargs=() ok=0 i
	rm -f "$p".*
	: >"$p.out"
	if [ "$3" = efi ]; then
		cp "$OVMF_VARS" "$p.vars"
		fwargs=(-drive if=pflash,format=raw,readonly=on,file="$OVMF_CODE" -drive if=pflash,format=raw,file="$p.vars"
			-serial file:"$p.out")
		want=BdsDxe
	else
		fwargs=(-chardev file,id=dbg,path="$p.out" -device isa-debugcon,iobase=0x402,chardev=dbg)
		want=SeaBIOS
	fi
	nice -n 19 qemu-system-x86_64 -machine q35,accel="$1" -cpu "$2" -smp 2 -m 256 \
		-nodefaults -display none -no-reboot "${fwargs[@]}" >"$p.err" 2>&1 &
	pid=$!
	for i in $(seq 60); do
		if grep -qa "$want" "$p.out"; then ok=1; break; fi
		if ! kill -0 "$pid" 2>/dev/null || grep -q 'internal error' "$p.err"; then break; fi
		sleep 0.5
	done
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	if [ "$ok" = 1 ] && ! grep -q 'internal error' "$p.err"; then
		return 0
	fi
	out=$(grep -v '^qemu-system-x86_64: warning:' "$p.err" | grep -v 'terminating on signal' | head -3 | tr '\n' ' ' | cut -c1-200)
	log "probe: accel=$1 -cpu $2 with $3 firmware did not run a guest: ${out:-no firmware output in 30 s}"
	return 1
}
rm -rf "$WORK"
mkdir -p "$WORK"
if [ -n "${ACCEL:-}" ]; then
	CPU=${CPU:-$([ "$ACCEL" = kvm ] && echo host || echo max)}
	log "accelerator $ACCEL -cpu $CPU (forced)"
else
	ACCEL=tcg CPU=max
	if [ -w /dev/kvm ]; then
		for c in host qemu64; do
			if probe kvm "$c" bios && probe kvm "$c" efi; then ACCEL=kvm CPU=$c; break; fi
		done
	else
		log "probe: /dev/kvm is not there or not writable"
	fi
	log "accelerator $ACCEL -cpu $CPU (chosen by probe boots)"
fi

mkdir -p "$WORK/env"
log "OVA $OVA ($(($(stat -c %s "$OVA") / 1024 / 1024)) MiB)"

# --- unpack and check the OVA like vSphere does ------------------------------
tar -xf "$OVA" -C "$WORK"
names=$(tar -tf "$OVA")
first=${names%%$'\n'*}
[ "${first##*.}" = ovf ] || die "first file in the OVA is $first, not the descriptor"
while read -r line; do
	f=${line#SHA256(}; f=${f%%)=*}; sum=${line##*= }
	[ "$(sha256sum "$WORK/$f" | cut -d' ' -f1)" = "$sum" ] || die "manifest: $f does not match"
done <"$WORK/usagemeter.mf"
log "manifest checked"
if command -v go >/dev/null; then
	(cd "$HERE/../.." && USAGEMETER_OVA="$OVA" nice -n 19 go test -count=1 -run TestImportIntoSimulator ./deploy/ova/ >&2) ||
		die "the built OVA does not import into govmomi's simulator as specified"
	log "the built OVA imports into govmomi's simulator: 2 vCPU, 4096 MB, vmxnet3, pvscsi, properties"
fi
vmdk=$(ls "$WORK"/*.vmdk)
nice -n 19 qemu-img convert -f vmdk -O qcow2 "$vmdk" "$WORK/base.qcow2"
rm -f "$vmdk"
# Boots 1 and 2 share one disk; boot 3 starts again from the image.
qemu-img create -q -f qcow2 -F qcow2 -b "$WORK/base.qcow2" "$WORK/disk.qcow2"
qemu-img create -q -f qcow2 -F qcow2 -b "$WORK/base.qcow2" "$WORK/disk3.qcow2"
cp "$OVMF_VARS" "$WORK/vars.fd"

# --- the OVF environment, as vSphere writes it, on a CD -----------------------
secret() { head -c 18 /dev/urandom | base64 | tr -d '/+='; }
ADMIN_PW="Adm-$(secret)"
SMTP_PW="Smtp-$(secret)"
env_xml() { # hostname [ip]
	cat <<XML
<?xml version="1.0" encoding="UTF-8"?>
<Environment xmlns="http://schemas.dmtf.org/ovf/environment/1" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:oe="http://schemas.dmtf.org/ovf/environment/1" xmlns:ve="http://www.vmware.com/schema/ovfenv" oe:id="">
  <PlatformSection><Kind>qemu</Kind><Version>test</Version><Vendor>usagemeter</Vendor><Locale>en</Locale></PlatformSection>
  <PropertySection>
    <Property oe:key="net.hostname" oe:value="$1"/>
    <Property oe:key="net.ip" oe:value="${2:-}"/>
    <Property oe:key="net.gateway" oe:value=""/>
    <Property oe:key="net.dns" oe:value=""/>
    <Property oe:key="admin.password" oe:value="$ADMIN_PW"/>
    <Property oe:key="smtp.host" oe:value="smtp.example.invalid"/>
    <Property oe:key="smtp.port" oe:value="587"/>
    <Property oe:key="smtp.tls" oe:value="starttls"/>
    <Property oe:key="smtp.username" oe:value="meter"/>
    <Property oe:key="smtp.password" oe:value="$SMTP_PW"/>
    <Property oe:key="smtp.from" oe:value=""/>
    <Property oe:key="report.alert_to" oe:value="ops@example.invalid"/>
    <Property oe:key="report.to" oe:value=""/>
    <Property oe:key="report.recipient_key" oe:value=""/>
    <Property oe:key="report.timezone" oe:value="Europe/Berlin"/>
    <Property oe:key="net.ntp" oe:value="192.0.2.123, ntp.example.invalid"/>
    <Property oe:key="net.proxy" oe:value="http://proxy.example.invalid:3128"/>
    <Property oe:key="admin.ssh_key" oe:value="$(cat "$WORK/id_test.pub")"/>
    <Property oe:key="registration.contract" oe:value="CTR-TEST-0001"/>
    <Property oe:key="registration.program" oe:value="sovereign-cloud"/>
    <Property oe:key="log.syslog" oe:value="udp://10.0.2.2:$SYSLOG_PORT"/>
  </PropertySection>
</Environment>
XML
}
make_iso() { # hostname iso [ip]
	env_xml "$1" "${3:-}" >"$WORK/env/ovf-env.xml"
	xorriso -as mkisofs -quiet -V "OVF ENV" -J -r -o "$2" "$WORK/env" 2>/dev/null
	rm -f "$WORK/env/ovf-env.xml"
}
ssh-keygen -q -t ed25519 -N '' -C ova-test -f "$WORK/id_test"
make_iso meter-test "$WORK/env1.iso"
# The second boot gets another host name: first boot must not apply it.
make_iso renamed-by-second-boot "$WORK/env2.iso"
# Bad input: an invalid address must be reported and fall back to DHCP.
make_iso meter-badip "$WORK/env3.iso" 192.0.2.999/24

# The remote syslog server of log.syslog: a UDP receiver appending each
# message as a line. The guest reaches it at 10.0.2.2 (qemu's user network).
SYSLOG_PID=
: >"$WORK/syslog.txt"
python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
with open(sys.argv[2], "ab", buffering=0) as f:
    while True:
        d, _ = s.recvfrom(65535)
        f.write(d.rstrip(b"\n").replace(b"\n", b" ") + b"\n")
' "$SYSLOG_PORT" "$WORK/syslog.txt" &
SYSLOG_PID=$!

QEMU_PID=
cleanup() {
	if [ -n "$QEMU_PID" ] && kill -0 "$QEMU_PID" 2>/dev/null; then kill "$QEMU_PID"; fi
	if [ -n "$SYSLOG_PID" ]; then kill "$SYSLOG_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT

# boot n iso firmware: "efi" boots OVMF with the disk on the q35 AHCI
# controller (Debian's OVMF has no pvscsi driver; ESXi's EFI does); "bios"
# boots SeaBIOS with the disk on pvscsi, as on vSphere.
boot() { # n iso firmware [disk image]
	local n=$1 iso=$2 fw=$3 image=${4:-$WORK/disk.qcow2} fwargs disk
	rm -f "$WORK/serial.sock" "$WORK/mon.sock"
	if [ "$fw" = efi ]; then
		fwargs=(-drive if=pflash,format=raw,readonly=on,file="$OVMF_CODE" -drive if=pflash,format=raw,file="$WORK/vars.fd")
		disk=(-device ide-hd,drive=disk0,bus=ide.0,bootindex=0)
	else
		fwargs=()
		disk=(-device pvscsi,id=scsi0 -device scsi-hd,drive=disk0,bus=scsi0.0,bootindex=0)
	fi
	nice -n 19 qemu-system-x86_64 \
		-name usagemeter-test -machine q35,accel=$ACCEL -cpu $CPU -smp 2 -m 4096 \
		"${fwargs[@]}" \
		-drive if=none,id=disk0,file="$image",format=qcow2 "${disk[@]}" \
		-drive if=none,id=cd0,file="$iso",media=cdrom,readonly=on -device ide-cd,drive=cd0,bus=ide.2 \
		-netdev user,id=net0,hostfwd=tcp:127.0.0.1:$PORT-:443,hostfwd=tcp:127.0.0.1:$SSH_PORT-:22 \
		-device vmxnet3,netdev=net0,romfile= \
		-chardev socket,id=ser0,path="$WORK/serial.sock",server=on,wait=off,logfile="$OUT/serial-boot$n.log",logappend=off \
		-serial chardev:ser0 \
		-monitor unix:"$WORK/mon.sock",server=on,wait=off \
		-display none -no-reboot 2>"$OUT/qemu-boot$n.err" &
	QEMU_PID=$!
	BOOT_START=$(date +%s)
}

serial_tail() { # n
	tr -d '\r' <"$OUT/serial-boot$1.log" 2>/dev/null | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g' | tail -25 | sed 's/^/  serial: /' | tee -a "$LOG" >&2 || true
}

wait_healthz() { # n
	local deadline=$(($(date +%s) + BOOT_TIMEOUT)) body
	while :; do
		if body=$(curl -fsSk --max-time 5 "https://127.0.0.1:$PORT/healthz" 2>/dev/null); then
			HEALTHZ_SECS=$(($(date +%s) - BOOT_START))
			log "boot $1: /healthz answered after ${HEALTHZ_SECS}s: $body"
			return 0
		fi
		if ! kill -0 "$QEMU_PID" 2>/dev/null; then
			serial_tail "$1"
			die "boot $1: qemu exited: $(grep -v ': warning:' "$OUT/qemu-boot$1.err" | head -3 | tr '\n' ' '); see $OUT/serial-boot$1.log"
		fi
		if grep -q 'internal error' "$OUT/qemu-boot$1.err"; then
			serial_tail "$1"
			die "boot $1: $ACCEL stopped the guest ($(grep -m1 'internal error' "$OUT/qemu-boot$1.err")); ACCEL=tcg avoids it"
		fi
		if [ "$(date +%s)" -ge "$deadline" ]; then
			serial_tail "$1"
			die "boot $1: no /healthz after ${BOOT_TIMEOUT}s; see $OUT/serial-boot$1.log"
		fi
		sleep 3
	done
}

# console runs commands as admin on the serial console and prints their
# output. Passwords are typed at prompts that do not echo; the secret checked
# for on disk is typed with echo off, so none reaches the serial log.
console() { # script (one command per line)
	ADMIN_PW="$ADMIN_PW" SMTP_PW="$SMTP_PW" SOCK="$WORK/serial.sock" python3 - "$1" <<'PY'
import os, re, socket, sys, time
pw = os.environ["ADMIN_PW"]
s = socket.socket(socket.AF_UNIX)
s.connect(os.environ["SOCK"])
s.settimeout(1)
buf = b""
def expect(pat, timeout=300):
    global buf
    end = time.time() + timeout
    while time.time() < end:
        m = re.search(pat, buf)
        if m:
            out = buf[:m.end()]
            buf = buf[m.end():]
            return out
        try:
            d = s.recv(4096)
            if d:
                buf += d
        except socket.timeout:
            pass
    sys.exit("console: timed out waiting for %r; got %r" % (pat, buf[-500:]))
def clean(b):
    # no terminal escapes or carriage returns in what the checks read
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b.decode(errors="replace")).replace("\r", "")
def send(t):
    s.sendall(t.encode() + b"\r")
send("")
expect(rb"login: $|login: ")
send("admin")
expect(rb"Password: ")
send(pw)
expect(rb"\$ $|\$ ")
# Quotes split the markers so that the echoed command line never matches them.
send("bind 'set enable-bracketed-paste off' 2>/dev/null; export PS1='PROM''PT> '; stty cols 250")
expect(rb"PROMPT> ")
for cmd in sys.argv[1].strip().split("\n"):
    send(cmd)
    while True:
        out = expect(rb"\[sudo\] password for admin: |PROMPT> |SECRET[12]\? ", 900)
        if out.endswith(b"[sudo] password for admin: "):
            sys.stdout.write(clean(out).replace("[sudo] password for admin: ", ""))
            send(pw)
            continue
        if out.endswith(b"SECRET1? ") or out.endswith(b"SECRET2? "):
            sys.stdout.write(clean(out))
            send(os.environ["SMTP_PW"] if out.endswith(b"SECRET1? ") else pw)
            continue
        sys.stdout.write(clean(out).replace("PROMPT> ", ""))
        break
send("exit")
PY
}

# shutdown_vm presses the ACPI power button (again every 20 s: a press while
# the guest is still starting can be lost) and waits for qemu to exit.
shutdown_vm() { # n
	local deadline=$(($(date +%s) + 300)) next=0
	while kill -0 "$QEMU_PID" 2>/dev/null; do
		if [ "$(date +%s)" -ge "$next" ]; then
			python3 -c "
import socket,sys
s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b'system_powerdown\n')" "$WORK/mon.sock" 2>/dev/null || true
			next=$(($(date +%s) + 20))
		fi
		[ "$(date +%s)" -lt "$deadline" ] || die "boot $1: no clean power-off after 300s"
		sleep 2
	done
	wait "$QEMU_PID" || true
	QEMU_PID=
	log "boot $1: powered off cleanly"
}

# wait_units (defined in the guest) waits for each unit on its own:
# `systemctl is-active` given several units succeeds as soon as any one is
# active. A unit that is not active in time is named, with its status and the
# tail of its journal.
WAIT_UNITS='wait_units() { end=$((SECONDS+'"$UNIT_TIMEOUT"')); for u in "$@"; do until systemctl is-active -q "$u"; do if [ $SECONDS -ge $end ]; then echo "UNIT""-DOWN $u is $(systemctl is-active "$u") '"$UNIT_TIMEOUT"'s after /healthz answered"; sudo systemctl status --no-pager -l -n 0 "$u" | head -20; sudo journalctl -b -u "$u" --no-pager -o short-monotonic | tail -25; break; fi; sleep 2; done; done; echo wait-""done; }'
CHECKS1="$WAIT_UNITS
wait_units usagemeter-firstboot postgresql nftables ssh rsyslog chrony usagemeter"
CHECKS2="$WAIT_UNITS
wait_units postgresql nftables ssh rsyslog chrony usagemeter"
CHECKS='hostname
systemctl is-active usagemeter usagemeter-firstboot postgresql nftables ssh | tr "\n" " "; echo
systemd-analyze | head -1; systemd-analyze blame --no-pager | head -6
sudo stat -c "%a %U %n" /etc/usagemeter/config.yaml /etc/usagemeter/tls/key.pem /var/lib/usagemeter/.firstboot-done
sudo -u usagemeter psql -XtAc "select '"'"'appliance='"'"' || id::text from appliance" usagemeter
sudo nft list chain inet filter input | grep dport
sudo grep -v -- ----- /etc/usagemeter/tls/cert.pem | tr -d "\n" | sha256sum | sed "s/^/FIRSTBOOT-CERT /"
sudo -u usagemeter psql -XtAc "select '"'"'REGISTRATION '"'"' || coalesce(contract_id, '"'"'none'"'"') || '"'"' '"'"' || coalesce(program, '"'"'none'"'"') from appliance" usagemeter
chronyc -n sources | sed "s/^/CHRONY /"; cat /etc/chrony/sources.d/usagemeter.sources
sudo cat /etc/apt/apt.conf.d/80usagemeter-proxy; sudo grep upload_proxy /etc/usagemeter/config.yaml
sudo journalctl -b --no-pager -o cat | grep -m1 "System Journal" | sed "s/^/JOURNAL /"
sudo -u postgres psql -XtAc "show log_destination" | sed "s/^/PG-LOG-DESTINATION /"; sudo journalctl -b -t postgres --no-pager -o cat | grep -c "ready to accept connections" | sed "s/^/PG-LOG-READY /"
sudo find /var/log/postgresql -type f -size +1M | sed "s/^/BIG-PG-LOG /"
sudo journalctl -b -u usagemeter-firstboot --no-pager -o cat | grep "first boot" | head -20
stty -echo; printf "SEC""RET1? "; read -r S; stty echo; echo; printf "%s\n" "$S" | sudo grep -rlaF -f /dev/stdin /etc /var /home /root /tmp /run 2>/dev/null | sed "s/^/SMTP PASS""WORD IN /"; echo secret-scan-""done
stty -echo; printf "SEC""RET2? "; read -r S; stty echo; echo; printf "%s\n" "$S" | sudo grep -rlaF -f /dev/stdin /etc /var /home /root /tmp /run 2>/dev/null | sed "s/^/ADMIN PASS""WORD IN /"; echo secret-scan-""done
sudo journalctl -b --no-pager | grep -c "usagemeter first boot" || true'

# check_properties n output: the OVF properties of Task B reached the VM,
# and the logs are bounded.
check_properties() {
	grep -qx 'REGISTRATION CTR-TEST-0001 sovereign-cloud' <<<"$2" || die "boot $1: not registered from registration.contract/program: $(grep REGISTRATION <<<"$2")"
	grep -q '^CHRONY .*192\.0\.2\.123' <<<"$2" || die "boot $1: chrony does not use the net.ntp server 192.0.2.123: $(grep '^CHRONY' <<<"$2" | tr '\n' ' ')"
	grep -qx 'server ntp.example.invalid iburst' <<<"$2" || die "boot $1: net.ntp's second server is not in chrony's sources"
	grep -qx 'Acquire::https::Proxy "http://proxy.example.invalid:3128";' <<<"$2" || die "boot $1: apt has no proxy from net.proxy"
	grep -q 'upload_proxy: http://proxy.example.invalid:3128' <<<"$2" || die "boot $1: config.yaml has no report.upload_proxy from net.proxy"
	grep -q '^JOURNAL System Journal .*max 1.0G' <<<"$2" || die "boot $1: the persistent journal is not bounded to 1 GB: $(grep '^JOURNAL' <<<"$2")"
	grep -qx 'PG-LOG-DESTINATION syslog' <<<"$2" || die "boot $1: PostgreSQL does not log to the journal"
	grep -q '^PG-LOG-READY [1-9]' <<<"$2" || die "boot $1: PostgreSQL's log is not in the journal"
	if grep -q '^BIG-PG-LOG' <<<"$2"; then die "boot $1: a PostgreSQL log file over 1 MB: $(grep '^BIG-PG-LOG' <<<"$2")"; fi
	log "boot $1: registered CTR-TEST-0001 sovereign-cloud; chrony uses 192.0.2.123; proxy in apt and config.yaml; journal $(grep -o 'max 1.0G' <<<"$2"), PostgreSQL logs into it"
}

# check_units n output: every unit came up (or the first that did not is
# named, with what the guest printed about it).
check_units() {
	grep -q '^wait-done' <<<"$2" || die "boot $1: the unit wait did not finish"
	if grep -q '^UNIT-DOWN ' <<<"$2"; then
		printf '%s\n' "$2" | sed -n '/^UNIT-DOWN /,/^wait-done/p' | tee -a "$LOG" >&2
		die "boot $1: unit $(grep -m1 '^UNIT-DOWN ' <<<"$2" | cut -d' ' -f2-) (status and journal above; console-boot$1.txt)"
	fi
}

# check_secrets n output: the scan must find the SMTP password in config.yaml
# (so it works) and in no other file, and the admin password in none.
check_secrets() {
	[ "$(grep -c '^secret-scan-done' <<<"$2")" = 2 ] || die "boot $1: the secret scan did not run"
	grep -qx 'SMTP PASSWORD IN /etc/usagemeter/config.yaml' <<<"$2" || die "boot $1: the secret scan did not find the SMTP password in config.yaml"
	if grep 'PASSWORD IN ' <<<"$2" | grep -vqx 'SMTP PASSWORD IN /etc/usagemeter/config.yaml'; then
		die "boot $1: a secret is on disk outside config.yaml: $(grep 'PASSWORD IN ' <<<"$2" | tr '\n' ' ')"
	fi
}

# --- boot 1: first boot --------------------------------------------------
log "boot 1: first boot, EFI, with the OVF environment on a CD"
boot 1 "$WORK/env1.iso" efi
wait_healthz 1
T1=$HEALTHZ_SECS
out1=$(console "$CHECKS1
$CHECKS") || die "boot 1: console session failed: $out1"
printf '%s\n' "$out1" >"$OUT/console-boot1.txt"
check_units 1 "$out1"
grep -qx 'meter-test' <<<"$out1" || die "boot 1: host name not applied"
grep -qx 'active active active active active ' <<<"$out1" || die "boot 1: a service is not active: $(grep -E '(active|failed|inactive) ' <<<"$out1")"
grep -q '^600 usagemeter /etc/usagemeter/config.yaml' <<<"$out1" || die "boot 1: config.yaml is not 0600 usagemeter"
app1=$(grep -m1 -o 'appliance=[0-9a-f]\{8\}-[0-9a-f-]*' <<<"$out1" || true)
[ -n "$app1" ] || die "boot 1: no appliance row in the database"
check_secrets 1 "$out1"
log "boot 1: admin logged in on the console; $app1; config.yaml 0600; no secret outside it"
check_properties 1 "$out1"
# The admin's SSH key from admin.ssh_key logs in (no password: BatchMode).
who=$(ssh -i "$WORK/id_test" -p "$SSH_PORT" -o BatchMode=yes -o PasswordAuthentication=no -o StrictHostKeyChecking=no \
	-o UserKnownHostsFile=/dev/null -o ConnectTimeout=30 -o LogLevel=ERROR admin@127.0.0.1 'id -un; hostname' 2>&1 | tr '\n' ' ') ||
	die "boot 1: the admin.ssh_key key does not log in over SSH: $who"
[ "$who" = "admin meter-test " ] || die "boot 1: SSH with the key gave: $who"
log "boot 1: SSH as admin with the admin.ssh_key key (no password)"
# The console's certificate on 443 is the one first boot made: the SHA-256
# of its base64 body, read in the guest (FIRSTBOOT-CERT, the key dir is not
# the admin's to read without sudo) and from what 443 serves.
served=$(openssl s_client -connect "127.0.0.1:$PORT" </dev/null 2>/dev/null | openssl x509 | grep -v -- ----- | tr -d '\n' | sha256sum | cut -d' ' -f1)
made=$(grep -o 'FIRSTBOOT-CERT [0-9a-f]\{64\}' <<<"$out1" | cut -d' ' -f2 || true)
[ -n "$made" ] || die "boot 1: cannot read first boot's certificate"
[ "$served" = "$made" ] || die "boot 1: 443 serves a certificate (body sha256 $served) that is not first boot's ($made)"
log "boot 1: 443 serves first boot's certificate (body sha256 $served)"
# The journal reaches the log.syslog server: first boot's and PostgreSQL's lines.
for i in $(seq 60); do grep -aEq ' postgres\[[0-9]+\]: ' "$WORK/syslog.txt" && grep -aq 'usagemeter first boot: done' "$WORK/syslog.txt" && break; sleep 2; done
grep -aq 'usagemeter first boot: done' "$WORK/syslog.txt" || die "boot 1: first boot's log did not reach the syslog server ($(wc -l <"$WORK/syslog.txt") lines arrived)"
grep -aEq ' postgres\[[0-9]+\]: ' "$WORK/syslog.txt" || die "boot 1: PostgreSQL's log did not reach the syslog server"
log "boot 1: the journal reached the syslog server on udp://10.0.2.2:$SYSLOG_PORT ($(wc -l <"$WORK/syslog.txt") lines, first boot's and PostgreSQL's among them)"
shutdown_vm 1

# --- boot 2: reboot keeps the data, first boot does not run ----------------
log "boot 2: reboot, BIOS, disk on pvscsi (another OVF environment on the CD, which must be ignored)"
boot 2 "$WORK/env2.iso" bios
wait_healthz 2
T2=$HEALTHZ_SECS
# Before logging in: the console session's own command lines would match.
grep -q 'usagemeter first boot' "$OUT/serial-boot2.log" && die "boot 2: first boot ran again (see serial-boot2.log)"
out2=$(console "$CHECKS2
$CHECKS") || die "boot 2: console session failed"
printf '%s\n' "$out2" >"$OUT/console-boot2.txt"
check_units 2 "$out2"
grep -qx 'meter-test' <<<"$out2" || die "boot 2: host name changed: first boot ran again"
# usagemeter-firstboot is inactive: its condition (no marker yet) kept it from running.
grep -qx 'active inactive active active active ' <<<"$out2" || die "boot 2: services not as expected (want first boot inactive, the rest active): $(grep -E '(active|failed|inactive) ' <<<"$out2")"
app2=$(grep -m1 -o 'appliance=[0-9a-f]\{8\}-[0-9a-f-]*' <<<"$out2" || true)
[ "$app1" = "$app2" ] || die "boot 2: appliance changed ($app1 -> $app2): data not kept"
check_properties 2 "$out2"
check_secrets 2 "$out2"
cp "$WORK/syslog.txt" "$OUT/syslog-received.txt"
for f in "$OUT"/serial-boot*.log "$OUT"/console-boot*.txt "$OUT/syslog-received.txt"; do
	if grep -qF -e "$ADMIN_PW" -e "$SMTP_PW" "$f"; then die "a secret is in $f"; fi
done
shutdown_vm 2

# --- boot 3: a fresh appliance with an invalid IP property -----------------
log "boot 3: fresh appliance, EFI, net.ip=192.0.2.999/24"
boot 3 "$WORK/env3.iso" efi "$WORK/disk3.qcow2"
wait_healthz 3
T3=$HEALTHZ_SECS
bad=$(tr -d '\r' <"$OUT/serial-boot3.log" | grep -a 'PROBLEM net.ip' | head -1 || true)
case $bad in
*'"192.0.2.999/24" is not an address with prefix length'*'falling back to DHCP'*) log "boot 3: console says: ${bad#*firstboot*: }" ;;
*) die "boot 3: no clear error for the invalid address on the console (see serial-boot3.log)" ;;
esac
tr -d '\r' <"$OUT/serial-boot3.log" | grep -aq 'usagemeter first boot: network: DHCP' || die "boot 3: did not fall back to DHCP"
log "boot 3: reachable on DHCP after ${T3}s despite the bad address"
for f in "$OUT"/serial-boot3.log; do
	if grep -qF -e "$ADMIN_PW" -e "$SMTP_PW" "$f"; then die "a secret is in $f"; fi
done
shutdown_vm 3
log "PASS ($ACCEL, -cpu $CPU): first boot to /healthz ${T1}s; reboot to /healthz ${T2}s, same $app1, first boot not rerun; bad address to DHCP and /healthz ${T3}s; serial logs in $OUT/serial-boot{1,2,3}.log"
write_report PASS
