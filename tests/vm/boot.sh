#!/usr/bin/env bash
# boot.sh SUITE KERNEL APPEND SCRIPT FILE...: boots the SUITE guest with
# KERNEL (a version in the cache, or "newest"/"oldest") and extra kernel
# command line APPEND, runs SCRIPT in it as root with FILE... beside it in
# /mnt/share, and exits with SCRIPT's status (124: it never finished).
# The guest's output is in $CAGE_VM_RUN/out/run.log, the console in
# $CAGE_VM_RUN/serial.log. The disk is a throwaway snapshot; the guest has
# no network device.
set -euo pipefail
suite=$1 kernel=$2 append=$3 script=$4
shift 4
cache=${CAGE_VM_CACHE:-/var/cache/cage-vm}/$suite
versions=$(ls "$cache" | sed -n 's/^vmlinuz-//p' | sort -V)
case $kernel in
    newest) kernel=$(echo "$versions" | tail -1) ;;
    oldest) kernel=$(echo "$versions" | head -1) ;;
esac
run=${CAGE_VM_RUN:?CAGE_VM_RUN: the run directory}
rm -rf "$run/share"
mkdir -p "$run/share/out"
install -m 0755 "$script" "$run/share/run.sh"
[ $# -eq 0 ] || cp -a "$@" "$run/share/"
accel=(-accel tcg -cpu max)
[ "${CAGE_VM_KVM:-0}" = 1 ] && accel=(-enable-kvm -cpu host)
set +e
timeout --kill-after=10 "${CAGE_VM_TIMEOUT:-420}" qemu-system-x86_64 \
    -nodefaults -no-user-config "${accel[@]}" -machine q35 -m 1536 -smp 1 \
    -display none -monitor none -no-reboot \
    -chardev file,id=console,path="$run/serial.log" -serial chardev:console \
    -kernel "$cache/vmlinuz-$kernel" -initrd "$cache/initrd.img-$kernel" \
    -append "console=ttyS0 root=/dev/vda rw apparmor=1 security=apparmor panic=-1 loglevel=4 cage.vmrun=1 $append" \
    -drive file="$cache/rootfs.img",format=raw,if=virtio,snapshot=on,cache=unsafe \
    -virtfs local,path="$run/share",mount_tag=share,security_model=none,id=share \
    -device virtio-rng-pci -nic none
set -e
if [ -f "$run/share/out/rc" ]; then exit "$(cat "$run/share/out/rc")"; fi
exit 124
