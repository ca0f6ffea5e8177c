#!/bin/bash
# Builds the usagemeter appliance OVA: a Debian 12 (bookworm) root filesystem
# made with debootstrap from the machine's configured Debian mirror, the
# usagemeter and first-boot binaries, systemd units, a firewall, and GRUB for
# EFI and BIOS; the raw disk is converted to a streamOptimized VMDK and packed
# with the OVF descriptor (deploy/ova, package ova) into out/usagemeter.ova.
#
# Needs root, debootstrap, qemu-utils, grub-efi-amd64-bin, grub-pc-bin, mtools,
# dosfstools, e2fsprogs and fdisk (the script installs what is missing with
# apt-get). Takes minutes; runs niced. Outputs go to deploy/ova/out/.
#
#   deploy/ova/build.sh            # build (reuses out/base if present)
#   REBUILD_BASE=1 deploy/ova/build.sh
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT=${OUT:-$HERE/out}                   # the OVA, descriptor, VMDK, logs
WORK=${WORK:-/var/tmp/usagemeter-ova}   # root filesystems and raw disk: outside the Go tree
BASE=$WORK/base         # debootstrap + packages, cached between builds
ROOT=$WORK/rootfs       # BASE + usagemeter, rebuilt every time
NAME=usagemeter
VERSION=${VERSION:-$(cd "$REPO" && git describe --tags --always --dirty 2>/dev/null || echo dev)}
DISK_GB=${DISK_GB:-20}  # virtual size; the VMDK only holds what is written
ESP_MB=64
SUITE=bookworm
HTTP_PORT=443

log() { printf '%s build.sh: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
mkdir -p "$OUT"
exec > >(tee "$OUT/build.log") 2>&1
[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, loop-free disk assembly)"

start=$(date +%s)
need=()
for t in debootstrap:debootstrap qemu-img:qemu-utils mkfs.vfat:dosfstools mcopy:mtools sfdisk:fdisk mkfs.ext4:e2fsprogs; do
	command -v "${t%%:*}" >/dev/null || need+=("${t##*:}")
done
[ -d /usr/lib/grub/x86_64-efi ] || need+=(grub-efi-amd64-bin)
[ -d /usr/lib/grub/i386-pc ] || need+=(grub-pc-bin)
if [ ${#need[@]} -gt 0 ]; then
	log "installing ${need[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >&2
fi

# The mirror this machine already uses (no downloaded images, no other sources).
MIRROR=${MIRROR:-$(grep -hoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null | grep -oE "https?://[^ ]+" | head -1 || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY=${SECURITY:-$(grep -hoE '^(URIs:|deb) +https?://[^ ]+/debian-security/?' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null | grep -oE 'https?://[^ ]+' | head -1 || true)}
log "mirror $MIRROR${SECURITY:+, security $SECURITY}; version $VERSION"

PACKAGES=(
	linux-image-amd64 initramfs-tools
	systemd systemd-sysv systemd-resolved systemd-timesyncd- udev dbus kmod
	postgresql-15 open-vm-tools chrony nftables openssh-server sudo rsyslog
	ca-certificates tzdata iproute2 iputils-ping procps less vim-tiny curl
)

chroot_mounts() {
	mount -t proc proc "$1/proc"
	mount -t sysfs sys "$1/sys"
	mount --bind /dev "$1/dev"
	mount --bind /dev/pts "$1/dev/pts"
}
chroot_umounts() {
	for m in dev/pts dev sys proc; do umount -l "$1/$m" 2>/dev/null || true; done
}

build_base() {
	local b=$WORK/base.tmp
	chroot_umounts "$b"
	rm -rf "$b"
	mkdir -p "$b"
	log "debootstrap $SUITE (minbase)"
	nice -n 19 debootstrap --variant=minbase --include=apt-utils,gnupg "$SUITE" "$b" "$MIRROR" >&2
	{
		echo "deb $MIRROR $SUITE main"
		echo "deb $MIRROR $SUITE-updates main"
		[ -n "$SECURITY" ] && echo "deb $SECURITY $SUITE-security main"
	} >"$b/etc/apt/sources.list"
	# No service starts inside the chroot.
	printf '#!/bin/sh\nexit 101\n' >"$b/usr/sbin/policy-rc.d"
	chmod 755 "$b/usr/sbin/policy-rc.d"
	chroot_mounts "$b"
	trap 'chroot_umounts "$WORK/base.tmp"' EXIT
	log "installing ${#PACKAGES[@]} packages"
	nice -n 19 chroot "$b" /bin/sh -ec "
		export DEBIAN_FRONTEND=noninteractive
		apt-get update
		apt-get -y upgrade
		apt-get install -y --no-install-recommends ${PACKAGES[*]}
		apt-get clean
	" >&2
	chroot_umounts "$b"
	trap - EXIT
	rm -f "$b/usr/sbin/policy-rc.d"
	touch "$b/.base-done"
	mv "$b" "$BASE"
}

mkdir -p "$OUT" "$WORK"
# A go.mod keeps out/ out of the repository's ./... patterns.
printf 'module ignored.invalid/ova-build-output\n' >"$OUT/go.mod"
if [ -n "${REBUILD_BASE:-}" ] || [ ! -e "$BASE/.base-done" ]; then
	rm -rf "$BASE"
	build_base
	log "base ready after $(($(date +%s) - start))s"
else
	log "reusing $BASE (REBUILD_BASE=1 to rebuild)"
fi
[ -n "${BASE_ONLY:-}" ] && exit 0

# --- the binaries ---------------------------------------------------------
log "go build"
mkdir -p "$OUT/bin"
(
	cd "$REPO"
	export CGO_ENABLED=0 GOOS=linux GOARCH=amd64
	nice -n 19 go build -trimpath -ldflags "-s -w" -o "$OUT/bin/usagemeter" ./cmd/usagemeter
	nice -n 19 go build -trimpath -ldflags "-s -w" -o "$OUT/bin/usagemeter-firstboot" ./deploy/ova/cmd/usagemeter-firstboot
	nice -n 19 go build -trimpath -o "$OUT/bin/usagemeter-ova" ./deploy/ova/cmd/usagemeter-ova
)

# --- the appliance root filesystem -----------------------------------------
log "assembling root filesystem"
rm -rf "$ROOT"
cp -a "$BASE" "$ROOT"
rm -f "$ROOT/.base-done"
cp -a "$HERE/rootfs/." "$ROOT/"
install -m 0755 "$OUT/bin/usagemeter" "$ROOT/usr/bin/usagemeter"
install -m 0755 -D "$OUT/bin/usagemeter-firstboot" "$ROOT/usr/lib/usagemeter/firstboot"
echo "$VERSION" >"$ROOT/usr/lib/usagemeter/version"

chroot_mounts "$ROOT"
trap 'chroot_umounts "$ROOT"' EXIT
chroot "$ROOT" /bin/sh -ec "
	adduser --system --group --home /var/lib/usagemeter --no-create-home --shell /usr/sbin/nologin usagemeter
	install -d -o usagemeter -g usagemeter -m 0750 /var/lib/usagemeter
	install -d -o root -g usagemeter -m 0750 /etc/usagemeter
	useradd --create-home --shell /bin/bash --groups sudo admin
	passwd --lock admin
	passwd --lock root
	systemctl enable systemd-networkd systemd-resolved nftables chrony ssh postgresql open-vm-tools \
		usagemeter-firstboot.service usagemeter.service serial-getty@ttyS0.service
	systemctl disable e2scrub_reap.service 2>/dev/null || true
	# rsyslog only forwards the journal, and only when first boot is given log.syslog.
	systemctl disable rsyslog.service
	# cp -a of rootfs/ made the PostgreSQL config directories root's: give them back.
	chown -R postgres:postgres /etc/postgresql
	systemctl mask apt-daily.timer apt-daily-upgrade.timer
" >&2
chroot_umounts "$ROOT"
trap - EXIT

# Per-VM identity is made at first boot, never shipped in the image.
rm -f "$ROOT"/etc/ssh/ssh_host_*
: >"$ROOT/etc/machine-id"
rm -f "$ROOT/var/lib/dbus/machine-id"
ln -sf /etc/machine-id "$ROOT/var/lib/dbus/machine-id"
echo "$NAME" >"$ROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' "$NAME" >"$ROOT/etc/hosts"
ln -sf /run/systemd/resolve/stub-resolv.conf "$ROOT/etc/resolv.conf"
ln -sf /usr/share/zoneinfo/Etc/UTC "$ROOT/etc/localtime"
echo Etc/UTC >"$ROOT/etc/timezone"
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/log/*.log "$ROOT"/tmp/* 2>/dev/null || true
rm -rf "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/locale/[a-df-z]* 2>/dev/null || true

KVER=$(basename "$(ls -d "$ROOT"/lib/modules/* | sort -V | tail -1)")
[ -e "$ROOT/boot/vmlinuz-$KVER" ] || die "no kernel in the root filesystem"
[ -e "$ROOT/boot/initrd.img-$KVER" ] || die "no initrd for $KVER"

# --- the disk: MBR, ESP (FAT) + root (ext4), no loop devices needed -----------
ROOT_UUID=$(cat /proc/sys/kernel/random/uuid)
ESP_START=2048
ESP_SECTORS=$((ESP_MB * 2048))
ROOT_START=$((ESP_START + ESP_SECTORS))
DISK_SECTORS=$((DISK_GB * 1024 * 1024 * 2))
ROOT_SECTORS=$((DISK_SECTORS - ROOT_START))

CMDLINE="root=UUID=$ROOT_UUID ro console=tty0 console=ttyS0,115200n8 systemd.show_status=1"
mkdir -p "$ROOT/boot/grub"
cat >"$ROOT/boot/grub/grub.cfg" <<CFG
set timeout=1
set default=0
serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
menuentry 'usagemeter appliance' {
	search --no-floppy --fs-uuid --set=root $ROOT_UUID
	linux /boot/vmlinuz-$KVER $CMDLINE
	initrd /boot/initrd.img-$KVER
}
CFG
printf 'UUID=%s / ext4 errors=remount-ro 0 1\n' "$ROOT_UUID" >"$ROOT/etc/fstab"
echo "GRUB root UUID $ROOT_UUID" >"$OUT/build-info.txt"

log "ext4 root filesystem ($((ROOT_SECTORS / 2048)) MiB)"
RAW=$WORK/$NAME.raw
rm -f "$RAW" "$WORK/root.ext4" "$WORK/esp.fat"
truncate -s $((ROOT_SECTORS * 512)) "$WORK/root.ext4"
nice -n 19 mkfs.ext4 -q -F -O ^metadata_csum_seed,^orphan_file -L usagemeter-root -U "$ROOT_UUID" -E root_owner=0:0 -d "$ROOT" "$WORK/root.ext4"

# GRUB images: one embedded config finds the root by UUID and reads its grub.cfg.
cat >"$WORK/grub-early.cfg" <<CFG
search --no-floppy --fs-uuid --set=root $ROOT_UUID
set prefix=(\$root)/boot/grub
configfile (\$root)/boot/grub/grub.cfg
CFG
MODS="part_msdos ext2 search search_fs_uuid configfile normal linux echo test serial terminal all_video gzio"
grub-mkimage -O x86_64-efi -o "$WORK/BOOTX64.EFI" -c "$WORK/grub-early.cfg" -p /boot/grub $MODS efi_gop efi_uga
grub-mkimage -O i386-pc -o "$WORK/core.img" -c "$WORK/grub-early.cfg" -p /boot/grub $MODS biosdisk
[ "$(stat -c %s "$WORK/core.img")" -lt $(((ESP_START - 1) * 512)) ] || die "core.img does not fit before the first partition"

log "EFI system partition"
truncate -s $((ESP_SECTORS * 512)) "$WORK/esp.fat"
mkfs.vfat -F 32 -n EFI "$WORK/esp.fat" >/dev/null
mmd -i "$WORK/esp.fat" ::/EFI ::/EFI/BOOT
mcopy -i "$WORK/esp.fat" "$WORK/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI

log "raw disk ($DISK_GB GiB, sparse)"
truncate -s $((DISK_SECTORS * 512)) "$RAW"
sfdisk -q "$RAW" <<PT
label: dos
start=$ESP_START, size=$ESP_SECTORS, type=ef, bootable
start=$ROOT_START, size=$ROOT_SECTORS, type=83
PT
dd if="$WORK/esp.fat" of="$RAW" bs=512 seek=$ESP_START conv=notrunc,sparse status=none
dd if="$WORK/root.ext4" of="$RAW" bs=1M seek=$((ROOT_START / 2048)) conv=notrunc,sparse status=none
# BIOS: boot.img's first 440 bytes in the MBR (the partition table stays),
# core.img right after it in the MBR gap, where boot.img looks by default.
dd if=/usr/lib/grub/i386-pc/boot.img of="$RAW" bs=440 count=1 conv=notrunc status=none
dd if="$WORK/core.img" of="$RAW" bs=512 seek=1 conv=notrunc status=none
rm -f "$WORK/root.ext4" "$WORK/esp.fat"

log "streamOptimized VMDK"
VMDK=$OUT/$NAME-disk1.vmdk
rm -f "$VMDK"
nice -n 19 qemu-img convert -f raw -O vmdk -o subformat=streamOptimized,adapter_type=lsilogic,hwversion=6 "$RAW" "$VMDK"
log "OVA"
"$OUT/bin/usagemeter-ova" -vmdk "$VMDK" -out "$OUT/$NAME.ova" -name "$NAME" -version "$VERSION" -ovf "$OUT/$NAME.ovf"
size=$(stat -c %s "$OUT/$NAME.ova")
log "done in $(($(date +%s) - start))s: $OUT/$NAME.ova ($((size / 1024 / 1024)) MiB)"
[ "$size" -lt $((400 * 1024 * 1024)) ] || die "OVA is over 400 MB"
