# Sourced by every case, in the guest, as root: installs cage, makes the
# tester's workspace, and gives `check`, `run_cage` and `finish`.
set -u
install -m 0755 /mnt/share/cage /usr/local/bin/cage
install -m 0755 /mnt/share/probe /usr/local/bin/probe
install -d -o tester -g tester /home/tester/proj
failures=0
out=/tmp/case.out

# check WHAT CONDITION...: one assertion, one line.
check() {
    what=$1
    shift
    if "$@"; then
        echo "ok    $what"
    else
        echo "FAIL  $what"
        echo "      (output was:)"
        sed 's/^/      | /' "$out"
        failures=$((failures + 1))
    fi
}

# run_cage ARGS...: cage as the tester (see as-tester), output in $out,
# status in $rc.
run_cage() {
    as-tester cage "$@" > "$out" 2>&1
    rc=$?
}

has() { grep -q -- "$1" "$out"; }
status_is() { [ "$rc" = "$1" ]; }

# No cgroup of cage's is left anywhere (what is, goes to $out).
no_cage_cgroups() {
    find /sys/fs/cgroup \( -name cage-supervisor -o -name cage-agent -o -name 'cage-*.scope' \) \
        -print > "$out" 2>/dev/null
    ! [ -s "$out" ]
}

finish() {
    echo "kernel $(uname -r): $failures failure(s)"
    [ "$failures" = 0 ]
}

# graded_selftest WHERE [WRAPPER...]: cage selftest in the graded mode,
# --net none and --net proxy, as the tester (WRAPPER: aa-exec and its
# arguments, say; GRADED_FLAGS: more flags), printed for README's table.
# Nothing the selftest expects blocked may get through; what the mode does
# not stop is EXPOSED, with an expected column that says so, and a
# detached process outliving the cage is always among it (no pid
# namespace). With [limits] the session has a cgroup, which takes that
# process along.
graded_selftest() {
    where=$1
    shift
    mkdir -p /home/tester/proj/.git/hooks && chown -R tester /home/tester/proj
    for net in none proxy; do
        as-tester "$@" cage selftest --no-project-policy --allow-degraded namespaces \
            ${GRADED_FLAGS:-} --net $net > $out 2>&1
        rc=$?
        echo "-- cage selftest in the graded mode ($where, --net $net): status $rc"
        grep -v '^cage: warning: graded mode' $out
        check "graded selftest ($where, $net): ran in the graded mode" \
            has "the graded mode: user namespaces are unavailable"
        check "graded selftest ($where, $net): exit 1, the detached process outlived the cage" \
            sh -c "[ $rc = 1 ] && grep -q '^EXPOSED  outlive the cage' $out"
        check "graded selftest ($where, $net): nothing expected blocked got through" \
            sh -c "grep -q '^blocked ' $out && ! grep '^EXPOSED ' $out | grep -v 'not in the graded mode'"
        check "graded selftest ($where, $net): nothing left in /tmp" \
            sh -c "! ls /tmp | grep -q '^cage-selftest'"
    done
    printf '[limits]\npids = 256\n' > /home/tester/graded-limits.toml
    chown tester /home/tester/graded-limits.toml
    as-tester "$@" cage selftest --no-project-policy --allow-degraded namespaces \
        ${GRADED_FLAGS:-} -f /home/tester/graded-limits.toml > $out 2>&1
    rc=$?
    echo "-- with [limits] pids = 256 ($where): status $rc"
    grep -E '^(EXPOSED|blocked)  outlive' $out
    check "graded selftest ($where) with a cgroup: the detached process went with it" \
        has "^blocked  outlive the cage.*cgroup"
    check "graded selftest ($where) with a cgroup: nothing expected blocked got through" \
        sh -c "grep -q '^blocked ' $out && ! grep '^EXPOSED ' $out | grep -v 'not in the graded mode'"
}
