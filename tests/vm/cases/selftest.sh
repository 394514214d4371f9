#!/bin/sh
# cage selftest on this guest's kernel, as the tester in a repository: the
# table README quotes per kernel. Where Landlock is complete every attempt
# must be blocked; where it is not, the run with --allow-degraded landlock
# must still block everything but what only Landlock closes.
. /mnt/share/lib.sh
mkdir -p /home/tester/proj/.git && chown -R tester /home/tester/proj
abi=$(probe landlock | cut -d' ' -f2)
if [ "$abi" -ge 6 ]; then
    run_cage selftest
    cat $out
    check "selftest: every attempt blocked (exit 0)" status_is 0
    check "and nothing of it is left in /tmp" sh -c "! ls /tmp | grep -q '^cage-selftest'"
else
    run_cage selftest --allow-degraded landlock
    cat $out
    check "selftest ran (exit 0 or 1, not 125)" sh -c "[ $rc = 0 ] || [ $rc = 1 ]"
    check "the decoy key stays hidden without Landlock" has "blocked  read the decoy key"
    check "the host listener stays unreachable" sh -c "! grep -q '^EXPOSED *connect to host 127' $out"
    check "planting stays refused" sh -c "! grep -q '^EXPOSED *plant' $out"
fi
finish
