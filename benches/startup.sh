#!/usr/bin/env bash
# Startup cost of cage against its anchors, measured side by side in one
# run with hyperfine, plus the supervisor's resident memory.
#
#   benches/startup.sh [RUNS]        (default 200 runs each)
#
# Runs as an unprivileged user: as root it re-executes itself under
# `cage-test` (created by .ci/setup). Needs hyperfine and bubblewrap.
# Compares:
#   true      the bare command, for the floor
#   unshare   unshare -Urmpn --fork /bin/true (namespaces only)
#   bwrap     bwrap with every namespace and a view like cage's base policy
#   cage      cage -- /bin/true with the base policy and every layer on
set -euo pipefail

runs=${1:-200}
. "$(dirname "$0")/common.sh"
bench_setup startup.sh "$@"
need hyperfine bwrap unshare

ws=$(mktemp -d /tmp/cage-bench-ws.XXXXXX)
trap 'rm -rf "$ws"' EXIT
cd "$ws"
git init -q .

# The same view as cage's base policy: system directories read-only, the
# merged-/usr links, fresh /proc /dev /tmp, an empty home, the workspace.
bwrap_cmd="bwrap --unshare-all --die-with-parent --new-session \
 --ro-bind /usr /usr --ro-bind /etc /etc \
 --symlink usr/bin /bin --symlink usr/sbin /sbin --symlink usr/lib /lib --symlink usr/lib64 /lib64 \
 --proc /proc --dev /dev --tmpfs /tmp --tmpfs $HOME --bind $ws $ws --chdir $ws /bin/true"

echo "== startup, $runs runs each ($(uname -r), $(nproc) cores) =="
hyperfine -N --warmup 20 --runs "$runs" --export-markdown "$ws/startup.md" \
    -n true /bin/true \
    -n unshare 'unshare -Urmpn --fork /bin/true' \
    -n bwrap "$bwrap_cmd" \
    -n cage "$cage --no-project-policy -- /bin/true" >/dev/null
cat "$ws/startup.md"

# Resident memory of the supervisor while the agent runs (VmHWM: peak).
"$cage" --no-project-policy -- /bin/sleep 1 &
pid=$!
sleep 0.5
echo
echo "== supervisor memory =="
grep -E '^(VmRSS|VmHWM)' "/proc/$pid/status"
wait "$pid"
