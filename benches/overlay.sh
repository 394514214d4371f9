#!/usr/bin/env bash
# The overlay workspace's costs, side by side in one hyperfine run:
#   - setup: `cage --workspace overlay -- true` against `--workspace direct`
#     on a 10,000-file and a 100,000-file workspace;
#   - review: `cage diff --stat` of a session that changed 100 files of the
#     100,000-file workspace (only the upper layer is walked);
#   - the plan alone (--dry-run) on the large workspace: the walk for
#     protected paths, which both modes do, is what grows with size.
#
#   benches/overlay.sh [RUNS]        (default 30 runs each)
#
# Runs as an unprivileged user: as root it re-executes itself under
# `cage-test` (created by .ci/setup). Needs hyperfine and git.
set -euo pipefail

runs=${1:-30}
. "$(dirname "$0")/common.sh"
bench_setup overlay.sh "$@"
need hyperfine

base=$(mktemp -d /tmp/cage-bench-overlay.XXXXXX)
trap 'rm -rf "$base"' EXIT
export XDG_STATE_HOME=$base/state

# N files, 100 to a directory, in a git repository.
make_ws() {
    local ws=$1 n=$2
    mkdir -p "$ws"
    (cd "$ws" && git init -q . && seq 0 $((n / 100 - 1)) | while read -r d; do
        mkdir "d$d"
        (cd "d$d" && seq 0 99 | sed 's/^/f/; s/$/.txt/' | xargs -n 500 touch)
        printf 'line %s\n' $(seq 1 20) > "d$d/f0.txt"
    done)
}
make_ws "$base/w10k" 10000
make_ws "$base/w100k" 100000
# Past the listing cache's 2 s racy window (see benches/table.sh).
sleep 3

# One session that changed 100 files of the large workspace.
(cd "$base/w100k" && "$cage" --no-project-policy --workspace overlay -- sh -c \
    'for d in $(seq 0 99); do echo changed >> d$d/f0.txt; done' 2>/dev/null)
session=$(ls "$XDG_STATE_HOME/cage/sessions" | tail -n 1)

run() { # NAME WORKSPACE MODE
    echo "-n '$1' \"cd $2 && $cage --no-project-policy --workspace $3 -- /bin/true\""
}
clear="find $XDG_STATE_HOME/cage/sessions -mindepth 1 -maxdepth 1 ! -name $session -exec chmod -R u+rwx {} + -exec rm -rf {} +"

echo "== overlay workspace, $runs runs each ($(uname -r), $(nproc) cores) =="
eval hyperfine --warmup 3 --runs "$runs" --prepare "'$clear'" \
    --export-markdown "$base/overlay.md" \
    "$(run 'direct, 10k files' "$base/w10k" direct)" \
    "$(run 'overlay, 10k files' "$base/w10k" overlay)" \
    "$(run 'direct, 100k files' "$base/w100k" direct)" \
    "$(run 'overlay, 100k files' "$base/w100k" overlay)" \
    "-n 'plan only (--dry-run), 100k files' \"cd $base/w100k && $cage --no-project-policy --workspace overlay --dry-run -- /bin/true\"" \
    "-n 'diff --stat, 100 of 100k changed' \"cd $base/w100k && $cage diff --stat $session\"" \
    >/dev/null
cat "$base/overlay.md"
