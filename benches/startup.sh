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
here=$(cd "$(dirname "$0")/.." && pwd)

if [ "$(id -u)" = 0 ]; then
    user=cage-test
    id "$user" >/dev/null 2>&1 || { echo "startup.sh: run .ci/setup first (no user $user)" >&2; exit 1; }
    (cd "$here" && cargo build --release --locked -q)
    dir=$(mktemp -d /tmp/cage-bench.XXXXXX)
    cp "$here/target/release/cage" "$here/benches/startup.sh" "$dir/"
    chmod 755 "$dir" "$dir/cage" "$dir/startup.sh"
    chown -R "$user" "$dir"
    trap 'rm -rf "$dir"' EXIT
    su "$user" -s /bin/bash -c "CAGE_BIN=$dir/cage bash $dir/startup.sh $runs"
    exit
fi

cage=${CAGE_BIN:-$here/target/release/cage}
for tool in hyperfine bwrap unshare; do
    command -v "$tool" >/dev/null || { echo "startup.sh: $tool is not installed" >&2; exit 1; }
done

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
