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
