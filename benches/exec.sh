#!/usr/bin/env bash
# The cost of recording every command (issue 15): a shell that starts
# EXECS short programs, side by side in one run. Every exec is one seccomp
# notification the supervisor reads (path, argv, cwd, a pidfd) and lets
# go on, and one exec and one exec_end record.
#
#   benches/exec.sh [RUNS] [EXECS]      (default 10 runs, 1000 execs)
#
# Runs as an unprivileged user: as root it re-executes itself under
# `cage-test` (created by .ci/setup). Needs hyperfine and bubblewrap.
# Compares:
#   bwrap      bwrap with every namespace and a view like cage's base policy
#   cage       cage with every layer on, execs recorded
#   baseline   $CAGE_BASELINE, a cage binary that does not record execs
#              (main before issue 15), if given
set -euo pipefail

runs=${1:-10}
execs=${2:-1000}
. "$(dirname "$0")/common.sh"
bench_setup exec.sh "$@"
need hyperfine bwrap

ws=$(mktemp -d /tmp/cage-bench-ws.XXXXXX)
trap 'rm -rf "$ws"' EXIT
cd "$ws"
git init -q .
work="i=0; while [ \$i -lt $execs ]; do /bin/true; i=\$((i + 1)); done"

bwrap_cmd="bwrap --unshare-all --die-with-parent --new-session \
 --ro-bind /usr /usr --ro-bind /etc /etc \
 --symlink usr/bin /bin --symlink usr/sbin /sbin --symlink usr/lib /lib --symlink usr/lib64 /lib64 \
 --proc /proc --dev /dev --tmpfs /tmp --tmpfs $HOME --bind $ws $ws --chdir $ws /bin/sh -c '$work'"

args=(-n bwrap "$bwrap_cmd" -n cage "$cage --no-project-policy -- /bin/sh -c '$work'")
if [ -n "${CAGE_BASELINE:-}" ]; then
    args+=(-n baseline "$CAGE_BASELINE --no-project-policy -- /bin/sh -c '$work'")
fi
echo "== exec: $execs programs started by a shell; $runs runs each ($(uname -r), $(nproc) cores) =="
hyperfine -N --warmup 2 --runs "$runs" --export-markdown "$ws/exec.md" "${args[@]}" >/dev/null
cat "$ws/exec.md"
