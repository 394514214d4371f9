#!/usr/bin/env bash
# The guard's cost on a build-heavy workload, side by side in one run:
# unpack a tree of many small files, write build outputs over it, and
# commit it with git. Every file and directory created is one seccomp
# notification the supervisor answers.
#
#   benches/guard.sh [RUNS] [FILES]     (default 10 runs, 4000 files)
#
# Runs as an unprivileged user: as root it re-executes itself under
# `cage-test` (created by .ci/setup). Needs hyperfine and bubblewrap.
# Compares:
#   bwrap      bwrap with every namespace and a view like cage's base policy
#   cage       cage with every layer on, the guard included
#   baseline   $CAGE_BASELINE, a cage binary without the guard, if given
set -euo pipefail

runs=${1:-10}
files=${2:-4000}
. "$(dirname "$0")/common.sh"
bench_setup guard.sh "$@"
need hyperfine bwrap git tar

ws=$(mktemp -d /tmp/cage-bench-ws.XXXXXX)
src=$(mktemp -d /tmp/cage-bench-src.XXXXXX)
trap 'rm -rf "$ws" "$src"' EXIT
# The tree: FILES small files in directories of 40.
for ((i = 0; i < files; i++)); do
    d="$src/tree/d$((i / 40))"
    [ -d "$d" ] || mkdir -p "$d"
    printf 'file %d\n' "$i" > "$d/f$i.c"
done
tar -C "$src" -cf "$src/tree.tar" tree
cp "$src/tree.tar" "$ws/tree.tar"
cd "$ws"
git init -q .

# One build: unpack, write an object next to every source (a compiler's
# pattern: create, write, rename into place), commit, clean up.
work='rm -rf tree && tar xf tree.tar && \
 for f in tree/*/*.c; do echo o > "$f.o.tmp" && mv "$f.o.tmp" "${f%.c}.o"; done && \
 git add -A && git -c user.name=b -c user.email=b@b commit -q --allow-empty -m build'

bwrap_cmd="bwrap --unshare-all --die-with-parent --new-session \
 --ro-bind /usr /usr --ro-bind /etc /etc \
 --symlink usr/bin /bin --symlink usr/sbin /sbin --symlink usr/lib /lib --symlink usr/lib64 /lib64 \
 --proc /proc --dev /dev --tmpfs /tmp --tmpfs $HOME --bind $ws $ws --chdir $ws /bin/sh -c '$work'"

args=(-n bwrap "$bwrap_cmd" -n cage "$cage --no-project-policy -- /bin/sh -c '$work'")
if [ -n "${CAGE_BASELINE:-}" ]; then
    args+=(-n baseline "$CAGE_BASELINE --no-project-policy -- /bin/sh -c '$work'")
fi
echo "== guard: $files files unpacked, built and committed; $runs runs each ($(uname -r), $(nproc) cores) =="
hyperfine -N --warmup 2 --runs "$runs" --export-markdown "$ws/guard.md" "${args[@]}" >/dev/null
cat "$ws/guard.md"
