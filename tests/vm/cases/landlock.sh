#!/bin/sh
# A kernel whose Landlock lacks rights cage needs (6.1: ABI 2), or has no
# Landlock at all (booted without it in lsm=): cage refuses, says why and
# the fix; --allow-degraded landlock runs and says so.
. /mnt/share/lib.sh
echo "$(probe landlock); lsm: $(cat /sys/kernel/security/lsm)"
run_cage --no-project-policy -- true
check "cage -- true is refused (125)" status_is 125
check "the refusal names Landlock" has "Landlock"
check "and the way to accept less" has "allow-degraded landlock"
run_cage --no-project-policy --allow-degraded landlock -- true
check "--allow-degraded landlock runs" status_is 0
check "and says Landlock is not fully enforced" has "andlock"
run_cage doctor
check "doctor names Landlock's state" sh -c "grep -Eq '^Landlock +(missing|ABI [0-5]) ' $out"
# The graded mode needs Landlock: on ABI 2 it runs (with what it loses
# said, and the selftest's table), without Landlock it is refused.
abi=$(probe landlock | cut -d' ' -f2)
sysctl -q -w user.max_user_namespaces=0
if [ "$abi" -ge 1 ]; then
    GRADED_FLAGS="--allow-degraded landlock" graded_selftest "Landlock ABI $abi"
else
    run_cage --no-project-policy --allow-degraded namespaces --allow-degraded landlock -- true
    check "without Landlock the graded mode is refused (125)" status_is 125
    check "and the refusal names Landlock" has "Landlock"
fi
sysctl -q -w user.max_user_namespaces=15000
finish
