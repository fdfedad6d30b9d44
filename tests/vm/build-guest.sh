#!/usr/bin/env bash
# Builds (and caches) a tiny Linux guest that runs the real qemu-ga on virtio-serial.
#
# Output directory: ${NOVA_GUEST_VM_DIR:-<repo>/target/vm-guest}, holding
#   vmlinux (or vmlinuz)   the Debian kernel, as an uncompressed ELF when it can be extracted
#   initramfs.cpio.gz      busybox + qemu-ga + virtio/ext4 modules + /init (reproducible)
#   disk.img               pristine 16 MiB ext4 template (copy it before use)
#   manifest.txt           cache key, package versions, sha256 of the artefacts
# The output directory is printed as the LAST line of stdout; progress goes to stderr.
#
# Runs as root on Debian 12 (bookworm). Missing packages are installed with apt-get. The cache
# key is: kernel package + version, qemu-guest-agent version, busybox-static version and the
# sha256 of this script. A matching manifest makes the script exit at once.
set -euo pipefail
umask 022
export LC_ALL=C

SCRIPT_PATH=$(readlink -f "${BASH_SOURCE[0]}")
REPO_ROOT=$(cd "$(dirname "$SCRIPT_PATH")/../.." && pwd)
OUT=${NOVA_GUEST_VM_DIR:-$REPO_ROOT/target/vm-guest}

log() { printf 'build-guest: %s\n' "$*" >&2; }
die() { printf 'build-guest: error: %s\n' "$*" >&2; exit 1; }

HOSTNAME_GUEST=nova-test-vm
DISK_UUID=6e6f7661-6775-6573-742d-646174610001
DISK_HASH_SEED=6e6f7661-6775-6573-742d-686173680001
DISK_SIZE=16M
# Modules whose dependency closure goes into the initramfs, in load order.
TOP_MODULES="virtio_pci virtio_console virtio_net virtio_blk ext4"

pkg_version() { dpkg-query -W -f='${db:Status-Abbrev} ${Version}\n' "$1" 2>/dev/null | awk '$1 == "ii" { print $2 }'; }

# Fingerprint of the apt package lists: while it is unchanged the candidate kernel cannot have
# changed, so the cached kernel version can be trusted without a (slow) apt-cache call.
apt_lists_fingerprint() {
    # shellcheck disable=SC2012
    { ls -l --time-style=+%s /var/lib/apt/lists/*Packages* /var/lib/apt/lists/*Release 2>/dev/null || true; cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null || true; } \
        | sha256sum | cut -d' ' -f1
}

# Prints "<package> <version>" of the kernel image package linux-image-amd64 depends on.
resolve_kernel_pkg() {
    apt-cache show --no-all-versions linux-image-amd64 2>/dev/null \
        | awk -F': ' '$1 == "Depends" { n = split($2, d, ", "); for (i = 1; i <= n; i++) if (d[i] ~ /^linux-image-[0-9]/) { split(d[i], w, " "); v = w[3]; sub(/\)$/, "", v); print w[1], v; exit } }'
}

manifest_field() { [ -f "$OUT/manifest.txt" ] && awk -v k="$1" '$1 == k":" { print $2; exit }' "$OUT/manifest.txt"; }

SCRIPT_SHA=$(sha256sum "$SCRIPT_PATH" | cut -d' ' -f1)

# cache_key KERNEL_PKG KERNEL_VERSION QGA_VERSION BUSYBOX_VERSION
cache_key() { printf '%s\n' "$@" "$SCRIPT_SHA" | sha256sum | cut -d' ' -f1; }

artefacts_present() {
    [ -f "$OUT/manifest.txt" ] && [ -s "$OUT/initramfs.cpio.gz" ] && [ -s "$OUT/disk.img" ] \
        && { [ -s "$OUT/vmlinux" ] || [ -s "$OUT/vmlinuz" ]; }
}

# Fast path, no lock, no apt: the manifest matches what is installed and what apt saw last time.
try_cache_fast() {
    artefacts_present || return 1
    local kpkg kver qga bb
    [ "$(manifest_field apt-lists)" = "$(apt_lists_fingerprint)" ] || return 1
    kpkg=$(manifest_field kernel-package) kver=$(manifest_field kernel-version)
    qga=$(pkg_version qemu-guest-agent) bb=$(pkg_version busybox-static)
    [ -n "$kpkg" ] && [ -n "$qga" ] && [ -n "$bb" ] || return 1
    [ "$(manifest_field key)" = "$(cache_key "$kpkg" "$kver" "$qga" "$bb")" ]
}

if try_cache_fast; then
    log "cache hit: $OUT"
    echo "$OUT"
    exit 0
fi

[ "$(id -u)" = 0 ] || die "the guest image in $OUT is missing or stale and building it needs root (apt-get, mknod): run 'sudo $SCRIPT_PATH' once"

mkdir -p "$OUT"
exec 9>"$OUT/.lock"
flock 9

# ---------------------------------------------------------------------------------------------
# Packages.
NEEDED_PKGS="qemu-system-x86 qemu-guest-agent busybox-static cpio kmod e2fsprogs xz-utils gzip util-linux"
missing=""
for p in $NEEDED_PKGS; do
    [ -n "$(pkg_version "$p")" ] || missing="$missing $p"
done
command -v python3 >/dev/null || missing="$missing python3"
apt_updated=0
if [ -n "$missing" ]; then
    log "installing:$missing"
    apt-get update >&2 || die "apt-get update failed"
    apt_updated=1
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing >&2 \
        || die "apt-get install$missing failed"
fi

read -r KPKG KPKG_VERSION < <(resolve_kernel_pkg || true) || true
if [ -z "${KPKG:-}" ] && [ "$apt_updated" = 0 ]; then
    log "linux-image-amd64 unknown to apt: running apt-get update"
    apt-get update >&2 || die "apt-get update failed"
    read -r KPKG KPKG_VERSION < <(resolve_kernel_pkg || true) || true
fi
[ -n "${KPKG:-}" ] && [ -n "${KPKG_VERSION:-}" ] || die "cannot resolve the kernel package that linux-image-amd64 depends on (is a Debian bookworm apt source configured?)"
KVER=${KPKG#linux-image-}
QGA_VERSION=$(pkg_version qemu-guest-agent)
BB_VERSION=$(pkg_version busybox-static)
QEMU_VERSION=$(pkg_version qemu-system-x86)
KEY=$(cache_key "$KPKG" "$KPKG_VERSION" "$QGA_VERSION" "$BB_VERSION")
FPR=$(apt_lists_fingerprint)

# Slow path hit: only the apt lists changed (e.g. apt-get update), the kernel did not.
if artefacts_present && [ "$(manifest_field key)" = "$KEY" ]; then
    sed -i "s/^apt-lists: .*/apt-lists: $FPR/" "$OUT/manifest.txt"
    log "cache hit (apt lists changed, kernel did not): $OUT"
    echo "$OUT"
    exit 0
fi

log "building: kernel $KPKG $KPKG_VERSION, qemu-guest-agent $QGA_VERSION, busybox-static $BB_VERSION"
START=$(date +%s.%N)

WORK="$OUT/work"
rm -rf "$WORK"
mkdir -p "$WORK" "$OUT/downloads"
trap 'rm -rf "$WORK"' EXIT

# ---------------------------------------------------------------------------------------------
# Kernel: download (not install) the image package and unpack it.
DEB="$OUT/downloads/${KPKG}_${KPKG_VERSION//:/%3a}_amd64.deb"
if [ ! -s "$DEB" ]; then
    find "$OUT/downloads" -name "${KPKG}_*.deb" -delete
    log "downloading $KPKG=$KPKG_VERSION"
    (cd "$OUT/downloads" && apt-get download "$KPKG=$KPKG_VERSION" >&2) || die "apt-get download $KPKG=$KPKG_VERSION failed"
    [ -s "$DEB" ] || DEB=$(find "$OUT/downloads" -name "${KPKG}_*.deb" | head -n1)
    [ -s "$DEB" ] || die "apt-get download did not produce a .deb for $KPKG"
fi
KROOT="$WORK/kernel"
mkdir -p "$KROOT"
dpkg-deb -x "$DEB" "$KROOT"
VMLINUZ="$KROOT/boot/vmlinuz-$KVER"
[ -f "$VMLINUZ" ] || die "$DEB has no boot/vmlinuz-$KVER"
depmod -b "$KROOT" "$KVER"

# Uncompressed ELF vmlinux: QEMU boots it through the PVH entry point, skipping the BIOS and
# in-guest decompression (about half the boot CPU under TCG).
if python3 - "$VMLINUZ" "$WORK/vmlinux" <<'PY' >&2; then
import lzma, sys
src, dst = sys.argv[1], sys.argv[2]
data = open(src, "rb").read()
magic = b"\xfd7zXZ\x00"
pos = data.find(magic)
while pos >= 0:
    try:
        dec = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        out = dec.decompress(data[pos:])
        if dec.eof and out[:4] == b"\x7fELF":
            open(dst, "wb").write(out)
            print("vmlinux: %d bytes from the XZ stream at offset %d" % (len(out), pos))
            sys.exit(0)
    except lzma.LZMAError:
        pass
    pos = data.find(magic, pos + 1)
print("no XZ-compressed ELF found in %s" % src)
sys.exit(1)
PY
    KERNEL_FILE=vmlinux
else
    log "vmlinux extraction failed, falling back to vmlinuz (slower boot)"
    rm -f "$WORK/vmlinux"
    KERNEL_FILE=vmlinuz
    cp "$VMLINUZ" "$WORK/vmlinuz"
fi

# ---------------------------------------------------------------------------------------------
# initramfs staging tree.
S="$WORK/root"
mkdir -p "$S"
for d in bin sbin usr/bin usr/sbin lib lib64 etc dev proc sys run tmp root home/tester mnt/data var/log var/tmp; do
    mkdir -p "$S/$d"
done
chmod 1777 "$S/tmp" "$S/var/tmp"
chmod 700 "$S/root"
ln -s ../run "$S/var/run"
mknod -m 600 "$S/dev/console" c 5 1

# busybox and one symlink per applet.
BUSYBOX=$(dpkg -L busybox-static | grep -m1 -E '/bin/busybox$')
cp -L "$BUSYBOX" "$S/bin/busybox"
chmod 755 "$S/bin/busybox"
"$S/bin/busybox" --list-full | while read -r applet; do
    [ -e "$S/$applet" ] || [ -L "$S/$applet" ] || ln -s /bin/busybox "$S/$applet"
done

# qemu-ga and the libraries it links, at the paths ldd prints.
cp -L /usr/sbin/qemu-ga "$S/usr/sbin/qemu-ga"
chmod 755 "$S/usr/sbin/qemu-ga"
ldd /usr/sbin/qemu-ga | grep -oE '/[^ ]+' | sort -u | while read -r lib; do
    mkdir -p "$S/$(dirname "$lib")"
    cp -L "$lib" "$S/$lib"
    chmod 755 "$S/$lib"
done
[ -f "$S/lib64/ld-linux-x86-64.so.2" ] || die "ldd did not list the dynamic loader for qemu-ga"

# Kernel modules (uncompressed), in insmod order without duplicates.
: >"$WORK/modules.order"
for m in $TOP_MODULES; do
    modprobe -d "$KROOT" -S "$KVER" -D "$m" >"$WORK/modprobe.out" 2>"$WORK/modprobe.err" \
        || die "modprobe -D $m failed: $(cat "$WORK/modprobe.err")"
    awk '$1 == "insmod" { print $2 }' "$WORK/modprobe.out" | while read -r path; do
        rel=${path#"$KROOT"/}
        grep -qxF "$rel" "$WORK/modules.order" || echo "$rel" >>"$WORK/modules.order"
    done
done
while read -r rel; do
    dst="$S/${rel%.xz}"
    dst="${dst%.zst}"
    mkdir -p "$(dirname "$dst")"
    case "$rel" in
        *.ko.xz) xz -dc "$KROOT/$rel" >"$dst" ;;
        *.ko.zst) zstd -dqc "$KROOT/$rel" >"$dst" ;;
        *) cp "$KROOT/$rel" "$dst" ;;
    esac
    chmod 644 "$dst"
    echo "/${rel%.xz}" | sed 's/\.zst$//' >>"$S/etc/modules.load"
done <"$WORK/modules.order"
log "modules: $(sed 's|.*/||' "$S/etc/modules.load" | tr '\n' ' ')"

# /etc.
cat >"$S/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
tester:x:1000:1000:Nova Tester:/home/tester:/bin/sh
EOF
cat >"$S/etc/group" <<'EOF'
root:x:0:
tester:x:1000:
EOF
cat >"$S/etc/shadow" <<'EOF'
root:!:19700:0:99999:7:::
tester:*:19700:0:99999:7:::
EOF
chmod 600 "$S/etc/shadow"
cat >"$S/etc/nsswitch.conf" <<'EOF'
passwd: files
group: files
shadow: files
hosts: files
networks: files
protocols: files
services: files
EOF
cat >"$S/etc/os-release" <<'EOF'
NAME="Nova Guest Test Linux"
ID=novaguest-test
ID_LIKE=debian
PRETTY_NAME="Nova Guest Test Linux 1.0 (qemu-ga fixture)"
VERSION="1.0 (fixture)"
VERSION_ID=1.0
VARIANT="QGA test fixture"
VARIANT_ID=qga-fixture
HOME_URL="https://example.invalid/nova-guest"
EOF
echo "$HOSTNAME_GUEST" >"$S/etc/hostname"
cat >"$S/etc/hosts" <<EOF
127.0.0.1 localhost
127.0.1.1 $HOSTNAME_GUEST
EOF
ln -s /proc/self/mounts "$S/etc/mtab"
echo "$KVER" >"$S/etc/nova-kernel-release"

# chpasswd stand-in (busybox-static has none). qemu-ga runs "chpasswd [-e]" from PATH and
# writes "user:password\n" to its stdin.
cat >"$S/usr/sbin/chpasswd" <<'EOF'
#!/bin/sh
# Minimal chpasswd for the nova-guest test VM: edits /etc/shadow only.
crypted=0
for arg in "$@"; do
    case "$arg" in
        -e|--encrypted) crypted=1 ;;
        *) echo "chpasswd: unsupported option: $arg" >&2; exit 1 ;;
    esac
done
status=0
while IFS= read -r line || [ -n "$line" ]; do
    [ -n "$line" ] || continue
    case "$line" in
        *:*) ;;
        *) echo "chpasswd: line without ':'" >&2; status=1; continue ;;
    esac
    user=${line%%:*}
    pass=${line#*:}
    if ! U="$user" awk -F: '$1 == ENVIRON["U"] { found = 1 } END { exit !found }' /etc/shadow; then
        echo "chpasswd: user '$user' does not exist in /etc/shadow" >&2
        status=1
        continue
    fi
    if [ "$crypted" = 1 ]; then
        hash=$pass
    else
        hash=$(printf '%s\n' "$pass" | mkpasswd -m sha512 -P 0) || { echo "chpasswd: mkpasswd failed" >&2; status=1; continue; }
    fi
    case "$hash" in
        *:*|'') echo "chpasswd: invalid password hash" >&2; status=1; continue ;;
    esac
    tmp=/etc/shadow.chpasswd.$$
    if (umask 077 && U="$user" H="$hash" awk 'BEGIN { FS = OFS = ":" } $1 == ENVIRON["U"] { $2 = ENVIRON["H"] } { print }' /etc/shadow >"$tmp") \
        && chmod 600 "$tmp" && mv -f "$tmp" /etc/shadow; then
        :
    else
        rm -f "$tmp"
        echo "chpasswd: cannot update /etc/shadow" >&2
        status=1
    fi
done
exit $status
EOF
chmod 755 "$S/usr/sbin/chpasswd"

# shutdown stand-in: qemu-ga execs /sbin/shutdown -h -P|-H|-r +0 "hypervisor initiated shutdown".
# Like the real one it only schedules the action and exits 0 at once.
cat >"$S/sbin/shutdown" <<'EOF'
#!/bin/sh
# Minimal shutdown for the nova-guest test VM.
action=poweroff
for arg in "$@"; do
    case "$arg" in
        -P|--poweroff) action=poweroff ;;
        -H|--halt) action=halt ;;
        -r|--reboot) action=reboot ;;
        -h) ;;
        -*) echo "shutdown: unsupported option: $arg" >&2; exit 1 ;;
        *) ;;
    esac
done
echo "shutdown: $action in 1 s" >/dev/console 2>/dev/null
( sleep 1; sync; "$action" -f ) </dev/null >/dev/console 2>&1 &
exit 0
EOF
chmod 755 "$S/sbin/shutdown"

# /init: PID 1, never exits.
cat >"$S/init" <<'EOF'
#!/bin/sh
# PID 1 of the nova-guest test VM. Must never exit.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
umask 022

mount -t devtmpfs -o mode=755 devtmpfs /dev
exec 0</dev/console 1>/dev/console 2>&1
log() { echo "nova-init: $*"; }
mount -t proc -o nosuid,nodev,noexec proc /proc
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /dev/shm
mount -t tmpfs -o nosuid,nodev,mode=755 tmpfs /run
mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /tmp
hostname "$(cat /etc/hostname)"

# Knobs from the kernel command line:
#   qga.verbose=1      run qemu-ga with -v
#   qga.respawn=0      do not restart qemu-ga when it exits
#   qga.args=A,B,...   extra qemu-ga arguments (commas become spaces)
#   qga.disk=0         do not mount /dev/vda
qga_extra=""
respawn=1
mount_disk=1
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        qga.verbose=1) qga_extra="$qga_extra -v" ;;
        qga.respawn=0) respawn=0 ;;
        qga.args=*) qga_extra="$qga_extra $(echo "${arg#qga.args=}" | tr ',' ' ')" ;;
        qga.disk=0) mount_disk=0 ;;
    esac
done

# wait_for SECONDS TEST...: polls every 50 ms.
wait_for() {
    n=$(( $1 * 20 )); shift
    while ! "$@"; do
        n=$((n - 1))
        [ "$n" -gt 0 ] || return 1
        usleep 50000
    done
}

while read -r mod; do
    insmod "$mod" 2>/dev/null || log "insmod ${mod##*/} failed (ignored)"
done </etc/modules.load

ip link set lo up
if wait_for 10 test -e /sys/class/net/eth0; then
    ip link set eth0 up
    ip addr add 10.0.2.15/24 dev eth0
    ip route add default via 10.0.2.2 dev eth0
else
    log "no eth0"
fi

have_agent_port() {
    for p in /sys/class/virtio-ports/*; do
        [ -e "$p/name" ] && [ "$(cat "$p/name")" = org.qemu.guest_agent.0 ] && return 0
    done
    return 1
}
wait_for 10 have_agent_port || log "no virtio port org.qemu.guest_agent.0"
mkdir -p /dev/virtio-ports
for p in /sys/class/virtio-ports/*; do
    [ -e "$p/name" ] || continue
    name=$(cat "$p/name")
    [ -n "$name" ] && ln -sf "../${p##*/}" "/dev/virtio-ports/$name"
done

# A virtio block device (virtio device id 2) gets mounted, so that fsfreeze has work to do.
has_virtio_blk() {
    for d in /sys/bus/virtio/devices/*; do
        [ "$(cat "$d/device" 2>/dev/null)" = 0x0002 ] && return 0
    done
    return 1
}
if [ "$mount_disk" = 1 ] && has_virtio_blk; then
    if wait_for 5 test -b /dev/vda && mount -t ext4 /dev/vda /mnt/data; then
        log "mounted /dev/vda on /mnt/data"
    else
        log "cannot mount /dev/vda"
    fi
fi

mkdir -p /run/qga-state
log "up after $(cut -d' ' -f1 /proc/uptime) s"
while :; do
    log "starting qemu-ga$qga_extra"
    # shellcheck disable=SC2086
    qemu-ga -m virtio-serial -p /dev/virtio-ports/org.qemu.guest_agent.0 -t /run/qga-state $qga_extra
    log "qemu-ga exited with status $?"
    if [ "$respawn" != 1 ]; then
        log "qga.respawn=0: not restarting qemu-ga"
        while :; do sleep 3600; done
    fi
    sleep 1
done
EOF
chmod 755 "$S/init"

# Reproducible newc archive: mtimes 0, sorted names, owner 0:0, renumbered inodes.
find "$S" -exec touch -h -d @0 {} +
(cd "$S" && find . -mindepth 1 -print0 | sort -z \
    | cpio -o -0 -H newc -R 0:0 --reproducible --quiet) | gzip -9 -n >"$WORK/initramfs.cpio.gz"

# ---------------------------------------------------------------------------------------------
# ext4 disk template (reproducible: fixed UUID, hash seed and time).
rm -f "$WORK/disk.img"
truncate -s "$DISK_SIZE" "$WORK/disk.img"
E2FSPROGS_FAKE_TIME=1 mkfs.ext4 -q -F -L novadata -U "$DISK_UUID" \
    -E "root_owner=0:0,hash_seed=$DISK_HASH_SEED,lazy_itable_init=0,lazy_journal_init=0,nodiscard" \
    "$WORK/disk.img" >&2

# ---------------------------------------------------------------------------------------------
# Publish: artefacts first, manifest last.
rm -f "$OUT/manifest.txt"
rm -f "$OUT/vmlinux" "$OUT/vmlinuz"
for f in "$KERNEL_FILE" initramfs.cpio.gz disk.img; do
    mv -f "$WORK/$f" "$OUT/$f"
done
{
    echo "key: $KEY"
    echo "apt-lists: $FPR"
    echo "script-sha256: $SCRIPT_SHA"
    echo "kernel-package: $KPKG"
    echo "kernel-version: $KPKG_VERSION"
    echo "kernel-release: $KVER"
    echo "qemu-guest-agent: $QGA_VERSION"
    echo "busybox-static: $BB_VERSION"
    echo "qemu-system-x86: $QEMU_VERSION"
    echo "kernel-file: $KERNEL_FILE"
    echo "modules: $(sed 's|.*/||; s|\.ko$||' "$S/etc/modules.load" | tr '\n' ' ' | sed 's/ $//')"
    for f in "$KERNEL_FILE" initramfs.cpio.gz disk.img; do
        echo "sha256: $(cd "$OUT" && sha256sum "$f" | cut -d' ' -f1) $f $(stat -c %s "$OUT/$f")"
    done
} >"$OUT/manifest.txt.new"
mv -f "$OUT/manifest.txt.new" "$OUT/manifest.txt"
rm -rf "$WORK"
trap - EXIT

log "built in $(awk -v s="$START" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }') s: $OUT"
echo "$OUT"
