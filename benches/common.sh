# What every bench script shares; sourced, not run.
#
#   . "$(dirname "$0")/common.sh"
#   bench_setup NAME "$@"       (re-executes as cage-test when run as root)
#   need TOOL...                (exits with a message if one is missing)
#
# Benches run as an unprivileged user: as root, bench_setup builds the
# release binary (unless CAGE_BIN names one), copies it and benches/ to a
# directory that user can read, and runs the same script there as
# `cage-test` (created by .ci/setup) with the same arguments. CAGE_BIN and
# CAGE_BASELINE (another cage binary to compare with, where a bench takes
# one) pass through. Afterwards $cage is the binary to measure and
# $bench_dir the benches/ directory.

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

bench_setup() {
    local name=$1
    shift
    bench_name=$name
    if [ "$(id -u)" = 0 ]; then
        local user=cage-test
        id "$user" >/dev/null 2>&1 || { echo "$name: run .ci/setup first (no user $user)" >&2; exit 1; }
        local bin=${CAGE_BIN:-}
        if [ -z "$bin" ]; then
            (cd "$bench_dir/.." && cargo build --release --locked -q)
            bin=$bench_dir/../target/release/cage
        fi
        local dir
        dir=$(mktemp -d /tmp/cage-bench.XXXXXX)
        mkdir "$dir/benches"
        cp "$bench_dir"/* "$dir/benches/"
        cp "$bin" "$dir/cage"
        local pass="CAGE_BIN=$dir/cage"
        if [ -n "${CAGE_BASELINE:-}" ]; then
            cp "$CAGE_BASELINE" "$dir/baseline"
            pass="$pass CAGE_BASELINE=$dir/baseline"
        fi
        # Settings a bench documents (CAGE_BENCH_*) pass through too.
        local v
        for v in $(compgen -v CAGE_BENCH_); do
            pass="$pass $v=$(printf %q "${!v}")"
        done
        chmod -R a+rX "$dir"
        chown -R "$user" "$dir"
        trap 'rm -rf "$dir"' EXIT
        local args
        args=$(printf ' %q' "$@")
        su "$user" -s /bin/bash -c "$pass bash $dir/benches/$name$args"
        exit
    fi
    cage=${CAGE_BIN:-$bench_dir/../target/release/cage}
    [ -x "$cage" ] || { echo "$name: no cage binary at $cage (build with cargo build --release)" >&2; exit 1; }
}

need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "$bench_name: $tool is not installed" >&2; exit 1; }
    done
}
