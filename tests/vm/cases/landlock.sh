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
finish
