#!/usr/bin/env bash
# Every row of issue 16's table, side by side in one run, as ratios with
# their targets: cage against bwrap, unshare and srt (Anthropic's
# sandbox-runtime) where installed.
#
#   benches/table.sh [RUNS]          (default 100 start runs each)
#
# Prints the table as markdown; `benches/readme.sh` puts it into README's
# Performance section:  benches/table.sh | benches/readme.sh README.md
#
# srt: used if `srt` is on PATH or CAGE_BENCH_SRT names it; otherwise
# installed with npm (@anthropic-ai/sandbox-runtime) into
# ~/.cache/cage-bench when npm can reach its registry; its column says
# "absent" if neither works (it also needs socat and ripgrep).
# Runs as an unprivileged user: as root it re-executes itself under
# `cage-test` (created by .ci/setup). Needs hyperfine, bubblewrap, unshare,
# python3, curl and a C compiler (for the getppid loop).
set -euo pipefail

runs=${1:-100}
. "$(dirname "$0")/common.sh"
bench_setup table.sh "$@"
need hyperfine bwrap unshare python3 curl cc

ws=$(mktemp -d /tmp/cage-bench-table.XXXXXX)
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
    chmod -R u+rwx "$ws" 2>/dev/null
    rm -rf "$ws"
}
trap cleanup EXIT
export XDG_STATE_HOME=$ws/state
stats="python3 $bench_dir/table_stats.py"

# srt, if it can be had.
srt=${CAGE_BENCH_SRT:-$(command -v srt || true)}
if [ -z "$srt" ] && command -v npm >/dev/null; then
    prefix=$HOME/.cache/cage-bench/srt
    mkdir -p "$prefix"
    if npm install --silent --no-audit --no-fund --prefix "$prefix" \
        @anthropic-ai/sandbox-runtime >/dev/null 2>&1; then
        srt=$prefix/node_modules/.bin/srt
    fi
fi
srt_why=""
if [ -z "$srt" ]; then
    srt_why="not installed (npm could not fetch @anthropic-ai/sandbox-runtime)"
elif ! command -v socat >/dev/null || ! command -v rg >/dev/null; then
    srt_why="installed, but it needs socat and ripgrep"
    srt=""
fi
cat > "$ws/srt.json" <<EOF
{"network": {"allowedDomains": ["127.0.0.1"], "deniedDomains": []},
 "filesystem": {"denyRead": [], "allowWrite": ["$ws"], "denyWrite": []}}
EOF

# The same view as cage's base policy (as in startup.sh).
main=$ws/main
mkdir -p "$main"
(cd "$main" && git init -q .)
bwrap_view="bwrap --unshare-all --die-with-parent --new-session \
 --ro-bind /usr /usr --ro-bind /etc /etc \
 --symlink usr/bin /bin --symlink usr/sbin /sbin --symlink usr/lib /lib --symlink usr/lib64 /lib64 \
 --proc /proc --dev /dev --tmpfs /tmp --tmpfs $HOME"
bwrap_cmd() { echo "$bwrap_view --bind $1 $1 --chdir $1"; }
caged="$cage --no-project-policy"
# Sessions pile up in the state directory; each start begins without them.
clear="find $XDG_STATE_HOME/cage/sessions -mindepth 1 -maxdepth 1 -exec chmod -R u+rwx {} + -exec rm -rf {} + 2>/dev/null || true"

# --- 1, 2: start, side by side -------------------------------------------
names=(bwrap unshare cage cage-proxy)
cmds=("$(bwrap_cmd "$main") /bin/true" "unshare -Urmpn --fork /bin/true"
    "$caged -- /bin/true" "$caged -p claude -- /bin/true")
if [ -n "$srt" ]; then
    names+=(srt)
    cmds+=("$srt -s $ws/srt.json /bin/true")
fi
args=()
for i in "${!names[@]}"; do args+=(-n "${names[$i]}" "${cmds[$i]}"); done
(cd "$main" && hyperfine -N --warmup 10 --runs "$runs" --prepare "sh -c '$clear'" \
    --export-json "$ws/start.json" "${args[@]}" >/dev/null)

# --- 3, 4: a 300k-file workspace against a 1k-file one --------------------
make_ws() { # DIR FILES: FILES files, 100 to a directory, in a git repository
    python3 - "$1" "$2" <<'EOF'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for d in range(n // 100):
    os.makedirs(f"{root}/d{d}")
    for f in range(100):
        open(f"{root}/d{d}/f{f}.txt", "w").close()
EOF
    (cd "$1" && git init -q .)
}
make_ws "$ws/w1k" 1000
make_ws "$ws/w300k" 300000
# Measured as a user has a workspace, not in the seconds after it was
# made: the listing cache never stores a directory whose change time is
# within 2 s of the walk (plan::listing's RACY, git's racy-index rule),
# so runs that close to the creation read every directory.
sleep 3
wsruns=$(( runs / 5 > 10 ? runs / 5 : 10 ))
args=()
for mode in direct overlay; do
    for size in 1k 300k; do
        args+=(-n "$mode-$size" "sh -c 'cd $ws/w$size && exec $caged --workspace $mode -- /bin/true'")
    done
done
hyperfine -N --warmup 3 --runs "$wsruns" --prepare "sh -c '$clear'" \
    --export-json "$ws/workspace.json" "${args[@]}" >/dev/null

# --- 5: getppid in the cage against bare ----------------------------------
cat > "$main/getppid.c" <<'EOF'
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
int main(void) {
    struct timespec a, b;
    const long n = 2000000;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) syscall(SYS_getppid);
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%.2f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n);
    return 0;
}
EOF
cc -O2 -o "$main/getppid" "$main/getppid.c"
: > "$ws/getppid.txt"
for _ in $(seq 9); do # alternating, so load hits both alike
    echo "bare $("$main/getppid")" >> "$ws/getppid.txt"
    echo "cage $(cd "$main" && $caged -- ./getppid)" >> "$ws/getppid.txt"
    echo "bwrap $(cd "$main" && $(bwrap_cmd "$main") ./getppid)" >> "$ws/getppid.txt"
done

# --- 6: the process tree's memory while the agent sleeps -------------------
tree_rss() { # PID: VmRSS of PID and its descendants, KiB
    ps -e -o pid=,ppid=,rss= | awk -v root="$1" '
        { parent[$1] = $2; rss[$1] = $3 }
        END { for (p in parent) { q = p
                  while (q != "" && q != root && q != 1 && q != 0) q = parent[q]
                  if (q == root) total += rss[p] }
              print total }'
}
: > "$ws/rss.txt"
for _ in 1 2 3; do
    for who in cage bwrap; do
        if [ "$who" = cage ]; then
            (cd "$main" && exec $caged -- /bin/sleep 2) &
        else
            (cd "$main" && exec $(bwrap_cmd "$main") /bin/sleep 2) &
        fi
        pid=$!
        sleep 1
        echo "$who $(tree_rss "$pid")" >> "$ws/rss.txt"
        wait "$pid"
    done
done

# --- 7, 8: the proxy -------------------------------------------------------
# N sequential connections, one short request each, direct or through the
# proxy named by http_proxy (CONNECT, with its credentials if it has any).
cat > "$main/rate.py" <<'EOF'
import base64, os, socket, sys, time, urllib.parse
mode, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
proxy = urllib.parse.urlsplit(os.environ.get("http_proxy") or os.environ.get("HTTP_PROXY") or "")
auth = b""
if proxy.username:
    cred = f"{urllib.parse.unquote(proxy.username)}:{urllib.parse.unquote(proxy.password or '')}"
    auth = b"Proxy-Authorization: Basic " + base64.b64encode(cred.encode()) + b"\r\n"
def once():
    if mode == "direct":
        s = socket.create_connection(("127.0.0.1", port))
    else:
        s = socket.create_connection((proxy.hostname, proxy.port))
        s.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s\r\n" % (port, port, auth))
        got = b""
        while b"\r\n\r\n" not in got:
            d = s.recv(4096)
            if not d:
                sys.exit("rate.py: the proxy closed the connection")
            got += d
        if b" 200 " not in got.split(b"\r\n")[0]:
            sys.exit("rate.py: the proxy answered " + got.split(b"\r\n")[0].decode(errors="replace"))
    s.sendall(b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
    body = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        body += d
    s.close()
    if not body.endswith(b"\r\n\r\nok\n"):
        sys.exit("rate.py: no answer from the server")
for _ in range(50):
    once()
t = time.perf_counter()
for _ in range(n):
    once()
print((time.perf_counter() - t) / n * 1000)
EOF
chmod -R a+rX "$ws"
python3 "$bench_dir/http_server.py" > "$ws/port.txt" &
server_pid=$!
for _ in $(seq 50); do [ -s "$ws/port.txt" ] && break; sleep 0.1; done
port=$(cat "$ws/port.txt")
allow="--net proxy --allow-host 127.0.0.1:$port"
conns=${CAGE_BENCH_CONNECTIONS:-1000}
: > "$ws/latency.txt"
cd "$main"
for _ in 1 2 3 4 5; do # alternating, minimum kept
    echo "direct $($caged --net host -- python3 rate.py direct "$port" "$conns")" >> "$ws/latency.txt"
    echo "cage $($caged $allow -- python3 rate.py connect "$port" "$conns")" >> "$ws/latency.txt"
    if [ -n "$srt" ]; then
        echo "srt $("$srt" -s "$ws/srt.json" python3 rate.py connect "$port" "$conns")" >> "$ws/latency.txt"
    fi
done
size=$(( ${CAGE_BENCH_MIB:-1024} << 20 ))
url="http://127.0.0.1:$port/bytes/$size"
speed="curl -sf --noproxy '' -o /dev/null -w '%{speed_download}\n'"
: > "$ws/bulk.txt"
for _ in 1 2 3; do # alternating, best kept
    echo "direct $($caged --net host -- sh -c "$speed $url")" >> "$ws/bulk.txt"
    echo "http $($caged $allow -- sh -c "$speed $url")" >> "$ws/bulk.txt"
    echo "connect $($caged $allow -- sh -c "$speed -p $url")" >> "$ws/bulk.txt"
    if [ -n "$srt" ]; then
        echo "srt $("$srt" -s "$ws/srt.json" -c "$speed -p $url")" >> "$ws/bulk.txt"
    fi
done

$stats "$ws" "$runs" "$wsruns" "$conns" "$size" "${srt_why:-present}" "$(uname -r), $(nproc) cores"
