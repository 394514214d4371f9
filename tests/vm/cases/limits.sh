#!/bin/sh
# cgroup v2 limits, enforced by cage in the tester's delegated subtree.
. /mnt/share/lib.sh
policy=/home/tester/limits.toml
write_policy() {
    printf '%s\n' "$@" > $policy
    chown tester $policy
}

write_policy '[limits]' 'memory = "64M"'
run_cage -f $policy -- probe mem 256
check "a memory hog is killed at memory.max (exit 137)" status_is 137
check "the user is told the memory limit ended it" has "memory limit ended"
run_cage log
check "the audit log records the limit and the kill" has "memory.max = 67108864; 1 out-of-memory"
check "the guest and cage's supervisor lived on" true

write_policy '[limits]' 'pids = 32'
run_cage -f $policy -- probe fork 100
check "a fork bomb stops at pids.max" sh -c "grep -Eq 'forks ok ([0-9]|[12][0-9]|3[01]) failed' $out"
check "and some forks did run" sh -c "! grep -q 'forks ok 0 ' $out"

write_policy '[limits]' 'cpu = 10'
run_cage -f $policy -- probe burn 3
run_cage log
check "a CPU burner is throttled at cpu.max" sh -c "grep -q 'cpu.max = 10000 100000' $out && ! grep -q 'CPU throttled 0 time' $out"

check "nothing is left in the cgroup tree" no_cage_cgroups

# From a shell with another process in its cgroup: cage asks systemd for a
# scope of its own, and the limit still holds.
write_policy '[limits]' 'memory = "64M"'
as-tester sh -c "sleep 30 & cage -f $policy -- probe mem 256; echo rc=\$?" > $out 2>&1
check "sharing a cgroup, cage moves to a scope of its own and enforces" has "rc=137"

# Killing the supervisor leaves no cgroup behind.
as-tester sh -c "cage -f $policy -- sleep 60 & sleep 8; pkill -KILL -x cage; sleep 3" > $out 2>&1 &
sleep 6
find /sys/fs/cgroup -name cage-agent > $out
check "while it runs, the agent has its cgroup" test -s $out
wait
sleep 2
check "a killed supervisor leaves no cgroup behind" no_cage_cgroups

# Nowhere to put them: said, or refused when required.
AS_TESTER_SCOPE=0 AS_TESTER_BUS=0 run_cage -f $policy -- true
check "without a delegated cgroup the run says the limit is not enforced" has "not enforced: \[limits\] memory"
write_policy '[limits]' 'memory = "64M"' 'required = true'
AS_TESTER_SCOPE=0 AS_TESTER_BUS=0 run_cage -f $policy -- true
check "with required = true it refuses (125)" status_is 125
check "and says why and how to fix it" has "systemd user session"

run_cage doctor
check "doctor says the limits are enforced" has "cgroup v2 limits *enforced"
finish
