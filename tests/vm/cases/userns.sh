#!/bin/sh
# User namespaces refused by the kernel, three ways: doctor must name the
# real cause (found by trying, not only by reading sysctls), and a run must
# fail with the same cause.
. /mnt/share/lib.sh
run_cage doctor
check "doctor: user namespaces available at first" has "user namespaces *available"

sysctl -q -w user.max_user_namespaces=0
run_cage doctor
check "doctor names user.max_user_namespaces = 0" has "user.max_user_namespaces = 0"
run_cage --no-project-policy -- true
check "a run fails (125) naming the same sysctl" sh -c "[ $rc = 125 ] && grep -q 'user.max_user_namespaces' $out"
sysctl -q -w user.max_user_namespaces=15000

if [ -f /proc/sys/kernel/unprivileged_userns_clone ]; then
    sysctl -q -w kernel.unprivileged_userns_clone=0
    run_cage doctor
    check "doctor names kernel.unprivileged_userns_clone = 0" has "unprivileged_userns_clone = 0"
    sysctl -q -w kernel.unprivileged_userns_clone=1
fi
finish
