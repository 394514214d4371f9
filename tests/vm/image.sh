#!/usr/bin/env bash
# image.sh SUITE: builds (once) the Debian guest the VM tier boots.
#
#   SUITE   bookworm (Debian 12: kernels 6.1 and, from backports, 6.12)
#           or trixie (Debian 13: 6.12, AppArmor 4)
#
# Output, in $CAGE_VM_CACHE/SUITE (default /var/cache/cage-vm/SUITE):
# rootfs.img (ext4, sparse; never written by a boot) and the kernels'
# vmlinuz-*/initrd.img-*. The image is rebuilt when this script or the
# guest/ files change (their hash is kept in .built).
#
# The guest: Debian minbase with systemd, logind and the D-Bus user bus,
# AppArmor, util-linux; a user `tester` (uid 1000) who lingers, so the
# user manager, and its delegated cgroup v2 subtree, run from boot; the
# host's share mounted over 9p at /mnt/share; and cage-vm-run.service,
# which runs /mnt/share/run.sh as root when the kernel command line says
# cage.vmrun=1, then powers the guest off.
#
# Packages come through the host's own apt sources (the suite name
# swapped), so a machine that can apt-get can build it. Needs root.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
suite=${1:?usage: image.sh bookworm|trixie}
case $suite in bookworm | trixie) ;; *) echo "image.sh: unknown suite $suite" >&2; exit 2 ;; esac
out=${CAGE_VM_CACHE:-/var/cache/cage-vm}/$suite
stamp=$(cat "$0" "$here"/guest/* | sha256sum | cut -c1-16)
if [ "$(cat "$out/.built" 2>/dev/null)" = "$stamp" ] && [ -s "$out/rootfs.img" ]; then
    exit 0
fi
[ "$(id -u)" = 0 ] || { echo "image.sh: needs root (mmdebstrap, mkfs.ext4 -d)" >&2; exit 1; }
mkdir -p "$out"
work=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT

sources=/etc/apt/sources.list.d/debian.sources
uri=$(awk '/^URIs:/ { print $2; exit }' "$sources" 2>/dev/null || true)
uri=${uri:-http://deb.debian.org/debian}
lists=("$work/main.sources")
cat > "$work/main.sources" <<SRC
Types: deb
URIs: $uri
Suites: $suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
extra=(--customize-hook=true)
if [ "$suite" = bookworm ]; then
    sed "s/^Suites: .*/Suites: bookworm-backports/" "$work/main.sources" > "$work/bpo.sources"
    lists+=("$work/bpo.sources")
    extra=(--customize-hook='chroot "$1" apt-get install -y -q -t bookworm-backports linux-image-amd64')
fi

pkgs=systemd,systemd-sysv,udev,dbus,dbus-user-session,libpam-systemd,kmod,apparmor
pkgs=$pkgs,initramfs-tools,zstd,linux-image-amd64,procps,util-linux

mmdebstrap --mode=root --variant=minbase --include="$pkgs" \
    --aptopt='Acquire::Languages "none"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --essential-hook='set -e
        # A small initrd: TCG unpacks it slowly. Only what a virtio disk and 9p need.
        mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/usr/share/initramfs-tools/modules.d"
        printf "MODULES=list\nCOMPRESS=zstd\n" > "$1/etc/initramfs-tools/conf.d/cage-vm"
        printf "%s\n" virtio_pci virtio_blk ext4 crc32c_generic 9pnet_virtio 9p \
            > "$1/usr/share/initramfs-tools/modules.d/cage-vm"' \
    "${extra[@]}" \
    --customize-hook="copy-in $here/guest/cage-vm-run $here/guest/as-tester /usr/local/sbin" \
    --customize-hook="copy-in $here/guest/cage-vm-run.service /etc/systemd/system" \
    --customize-hook='set -e
        echo cage-vm > "$1/etc/hostname"
        printf "/dev/vda / ext4 rw 0 1\nshare /mnt/share 9p trans=virtio,version=9p2000.L,msize=262144,nofail 0 0\n" \
            > "$1/etc/fstab"
        mkdir -p "$1/mnt/share"
        chroot "$1" passwd -d root
        chroot "$1" useradd -m -u 1000 -s /bin/sh tester
        mkdir -p "$1/var/lib/systemd/linger" && touch "$1/var/lib/systemd/linger/tester"
        chroot "$1" systemctl enable cage-vm-run.service
        # AppArmor compiles every profile at boot, seconds each under TCG;
        # the suite ships none the tests need (they load their own).
        for f in "$1"/etc/apparmor.d/*; do
            [ -f "$f" ] && ln -sf "/etc/apparmor.d/${f##*/}" "$1/etc/apparmor.d/disable/"
        done
        chroot "$1" systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
            fstrim.timer systemd-timesyncd.service systemd-networkd-wait-online.service 2>/dev/null || true' \
    "$suite" "$work/root" "${lists[@]}"

for k in "$work"/root/boot/vmlinuz-*; do
    v=${k##*/vmlinuz-}
    cp "$work/root/boot/vmlinuz-$v" "$work/root/boot/initrd.img-$v" "$out/"
done
rm -f "$out/rootfs.img"
mkfs.ext4 -q -L cage-vm -d "$work/root" "$out/rootfs.img" 3G
echo "$stamp" > "$out/.built"
echo "image.sh: $suite ready in $out" >&2
