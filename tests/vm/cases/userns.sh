#!/bin/sh
# User namespaces refused by the kernel, three ways: doctor must name the
# real cause (found by trying, not only by reading sysctls), and a run must
# fail with the same cause.
. /mnt/share/lib.sh

# The graded mode where the kernel really refuses user namespaces: the
# escape checks of tests/escape/graded.rs, with the tester's real systemd
# user bus as the unix socket to reach.
graded() {
    G="--no-project-policy --allow-degraded namespaces --net none"
    install -d -m 0700 -o tester -g tester /home/tester/.ssh
    echo "GRADED-SECRET-KEY" > /home/tester/.ssh/id_graded
    chown tester:tester /home/tester/.ssh/id_graded
    run_cage $G -- true
    check "graded: runs (0)" status_is 0
    check "graded: says what is not isolated" has "not isolated: host processes are visible"
    run_cage doctor
    check "graded: doctor says the graded mode is available" has "graded mode available"
    run_cage $G -- cat /home/tester/.ssh/id_graded
    check "graded: ~/.ssh is unreadable" sh -c "[ $rc != 0 ] && ! grep -q GRADED-SECRET $out"
    run_cage $G -- sh -c 'touch /home/tester/planted; touch /tmp/planted; echo ok > ws-file'
    check "graded: home and /tmp not writable, the workspace is" \
        sh -c "! [ -e /home/tester/planted ] && ! [ -e /tmp/planted ] && [ -e /home/tester/proj/ws-file ]"
    as-tester mkdir -p .git/hooks
    run_cage $G -- sh -c 'echo x > .git/hooks/pre-commit'
    check "graded: a git hook cannot be planted" sh -c "! [ -e /home/tester/proj/.git/hooks/pre-commit ]"
    as-tester probe unix /run/user/1000/bus > "$out" 2>&1
    check "control: the tester reaches its systemd bus on the host" has "ALLOWED: unix connect"
    run_cage $G -- probe unix /run/user/1000/bus
    check "graded: the systemd user bus is unreachable" has "REFUSED: unix connect"
    as-tester probe listen 47011 20 &
    sleep 1
    as-tester probe tcp 47011 > "$out" 2>&1
    check "control: the tester reaches a loopback TCP port on the host" has "ALLOWED: tcp connect"
    run_cage $G -- probe tcp 47011
    check "graded: a loopback TCP port is unreachable" has "REFUSED: tcp connect"
    run_cage $G -- probe udp 53
    check "graded: UDP is refused" has "REFUSED: udp send"
    as-tester sh -c 'echo $$ > /tmp/victim; exec sleep 300' &
    sleep 1
    victim=$(cat /tmp/victim)
    run_cage $G -- sh -c "kill -TERM $victim && echo ALLOWED || echo REFUSED"
    check "graded: a host process cannot be signalled" sh -c "grep -q REFUSED $out && kill -0 $victim"
    kill "$victim" 2> /dev/null
    graded_selftest "user.max_user_namespaces = 0"
}
run_cage doctor
check "doctor: user namespaces available at first" has "user namespaces *available"

sysctl -q -w user.max_user_namespaces=0
run_cage doctor
check "doctor names user.max_user_namespaces = 0" has "user.max_user_namespaces = 0"
run_cage --no-project-policy -- true
check "a run fails (125) naming the same sysctl" sh -c "[ $rc = 125 ] && grep -q 'user.max_user_namespaces' $out"
check "and naming the graded mode's flag" has "allow-degraded namespaces"
graded
sysctl -q -w user.max_user_namespaces=15000

if [ -f /proc/sys/kernel/unprivileged_userns_clone ]; then
    sysctl -q -w kernel.unprivileged_userns_clone=0
    run_cage doctor
    check "doctor names kernel.unprivileged_userns_clone = 0" has "unprivileged_userns_clone = 0"
    sysctl -q -w kernel.unprivileged_userns_clone=1
fi
finish
