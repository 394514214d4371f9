#!/usr/bin/env bash
# run.sh CAGE: the VM tier. Builds the guests (cached), then boots each
# kernel cage claims to handle and runs its cases in it, as the unprivileged
# `tester`, one guest at a time. Exits non-zero when any assertion failed
# or a guest did not finish. About 10 minutes on 2 cores under TCG.
#
#   bookworm 6.12   limits, userns, apparmor   cgroup v2 limits; userns refused by
#                                              sysctl, and the graded mode there;
#                                              AppArmor 3.0 and the profile
#   bookworm 6.1    landlock                   Landlock ABI 2
#   bookworm 6.12   landlock                   booted without Landlock
#   trixie 6.12     apparmor, limits           AppArmor 4: userns denied, shipped profile
#   every guest     selftest                   cage selftest's table on that kernel
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cage=$(realpath "${1:?usage: run.sh CAGE_BINARY}")
runs=${CAGE_VM_RUNS:-/tmp/cage-vm}
rm -rf "$runs"
mkdir -p "$runs"
for tool in qemu-system-x86_64 mmdebstrap gcc; do
    command -v $tool > /dev/null || { echo "vm: $tool is missing (.ci/setup installs it)" >&2; exit 1; }
done
gcc -O2 -static -o "$runs/probe" "$here/probe.c" || exit 1
cp "$repo/contrib/apparmor/cage" "$runs/apparmor-cage"
for suite in bookworm trixie; do
    # Only the trixie guest boots trixie.
    [ -n "${CAGE_VM_ONLY:-}" ] && [ $suite = trixie ] && [ "$CAGE_VM_ONLY" != trixie ] && continue
    "$here/image.sh" $suite || { echo "vm: building the $suite guest failed" >&2; exit 1; }
done
nolandlock="lsm=lockdown,capability,yama,apparmor,bpf"
failed=0
guest() { # NAME SUITE KERNEL APPEND CASES...
    # CAGE_VM_ONLY=NAME: boot that guest only (while working on its cases).
    [ -n "${CAGE_VM_ONLY:-}" ] && [ "$CAGE_VM_ONLY" != "$1" ] && return 0
    local name=$1 suite=$2 kernel=$3 append=$4
    shift 4
    local script="$runs/$name.sh"
    {
        echo '#!/bin/sh'
        echo 'rc=0'
        for c in "$@"; do echo "echo '== $c'; sh /mnt/share/$c || rc=1"; done
        echo 'exit $rc'
    } > "$script"
    local start=$SECONDS
    CAGE_VM_RUN="$runs/$name" "$here/boot.sh" "$suite" "$kernel" "$append" "$script" \
        "$cage" "$runs/probe" "$here/cases/"*.sh "$runs/apparmor-cage" 2> "$runs/$name.boot.log"
    local rc=$?
    sed 's/^/  /' "$runs/$name/share/out/run.log" 2> /dev/null
    if [ $rc = 0 ]; then
        echo "vm: $name: passed ($((SECONDS - start)) s)"
    else
        echo "vm: $name: FAILED (status $rc, $((SECONDS - start)) s; console: $runs/$name/serial.log)"
        failed=1
    fi
}
guest bookworm-6.12 bookworm newest "" limits.sh userns.sh apparmor.sh selftest.sh
guest bookworm-6.1 bookworm oldest "" landlock.sh selftest.sh
guest no-landlock bookworm newest "$nolandlock" landlock.sh selftest.sh
guest trixie trixie newest "" apparmor.sh limits.sh selftest.sh
exit $failed
