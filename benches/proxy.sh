#!/usr/bin/env bash
# The proxy's cost against direct loopback, measured side by side in one
# run: throughput of a 1 GiB transfer, connections per second for short
# requests, and the supervisor's memory with 200 open tunnels.
#
#   benches/proxy.sh [RUNS] [CONNECTIONS]     (default 3 runs, 2000 connections)
#
# CAGE_BASELINE=/path/to/other/cage adds its CONNECT rows (before/after).
#
# Everything stays on 127.0.0.1: a Python server on the host's loopback,
# clients (curl, Python) inside a cage. "direct" clients run in a cage with
# --net host, so the only difference from the proxied runs is the proxy.
# Runs as an unprivileged user: as root it re-executes itself under
# `cage-test`. Needs curl and python3.
set -euo pipefail

runs=${1:-3}
conns=${2:-2000}
. "$(dirname "$0")/common.sh"
bench_setup proxy.sh "$@"
need curl python3

ws=$(mktemp -d /tmp/cage-bench-ws.XXXXXX)
cd "$ws"
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
    rm -rf "$ws"
}
trap cleanup EXIT

# The host-side server is benches/http_server.py.

# Short requests: CONNECTIONS sequential connections, one request each.
cat > rate.py <<'EOF'
import socket, sys, time
mode, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def once():
    if mode == "direct":
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
    elif mode == "http":
        s = socket.create_connection(("127.0.0.1", 3128))
        s.sendall(b"GET http://127.0.0.1:%d/small HTTP/1.1\r\nHost: x\r\n\r\n" % port)
    else:
        s = socket.create_connection(("127.0.0.1", 3128))
        s.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n" % port)
        got = b""
        while b"\r\n\r\n" not in got:
            got += s.recv(4096)
        s.sendall(b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
    while s.recv(65536):
        pass
    s.close()
for _ in range(50):
    once()
t = time.perf_counter()
for _ in range(n):
    once()
print(time.perf_counter() - t)
EOF

# 200 tunnels held open while the supervisor's memory is read.
cat > tunnels.py <<'EOF'
import os, socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
held = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", 3128))
    s.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n" % port)
    got = b""
    while b"\r\n\r\n" not in got:
        got += s.recv(4096)
    held.append(s)
open("tunnels-open", "w").close()
while not os.path.exists("tunnels-done"):
    time.sleep(0.05)
EOF
chmod 644 rate.py tunnels.py

python3 "$bench_dir/http_server.py" > port.txt &
server_pid=$!
for _ in $(seq 50); do [ -s port.txt ] && break; sleep 0.1; done
port=$(cat port.txt)
allow=(--allow-host "127.0.0.1:$port")
caged() { "$cage" --no-project-policy "$@"; }
mb() { awk '{ printf "%.0f", $1 / 1048576 }'; }

gib=$((1 << 30))
url="http://127.0.0.1:$port/bytes/$gib"
curl_speed="curl -s --noproxy '' -o /dev/null -w '%{speed_download}\n'"
best() { sort -n | tail -1; }

echo "== $(uname -r), $(nproc) cores; $runs runs each, best kept =="
echo
declare -A speed
speed[host]=$(for _ in $(seq "$runs"); do eval "$curl_speed $url"; done | best)
speed[cage_host]=$(for _ in $(seq "$runs"); do
    caged --net host -- sh -c "$curl_speed $url"; done | best)
speed[http]=$(for _ in $(seq "$runs"); do
    caged --net proxy "${allow[@]}" -- sh -c "$curl_speed $url"; done | best)
speed[connect]=$(for _ in $(seq "$runs"); do
    caged --net proxy "${allow[@]}" -- sh -c "$curl_speed -p $url"; done | best)
speed[socks5]=$(for _ in $(seq "$runs"); do
    caged --net proxy "${allow[@]}" -- sh -c "$curl_speed --proxy socks5://127.0.0.1:3128 $url"
done | best)

base=${speed[cage_host]}
pct() { awk -v a="$1" -v b="$base" 'BEGIN { printf "%.0f%%", 100 * a / b }'; }
echo "1 GiB transfer (curl to /dev/null)"
echo
echo "| path | MiB/s | vs direct in a cage |"
echo "|---|---:|---:|"
echo "| direct, host curl | $(echo "${speed[host]}" | mb) | $(pct "${speed[host]}") |"
echo "| direct, cage --net host | $(echo "$base" | mb) | 100% |"
echo "| proxy, HTTP forward | $(echo "${speed[http]}" | mb) | $(pct "${speed[http]}") |"
echo "| proxy, CONNECT | $(echo "${speed[connect]}" | mb) | $(pct "${speed[connect]}") |"
echo "| proxy, SOCKS5 | $(echo "${speed[socks5]}" | mb) | $(pct "${speed[socks5]}") |"
echo

declare -A secs
secs[direct]=$(for _ in $(seq "$runs"); do
    caged --net host -- python3 rate.py direct "$port" "$conns"; done | sort -n | head -1)
for mode in http connect; do
    secs[$mode]=$(for _ in $(seq "$runs"); do
        caged --net proxy "${allow[@]}" -- python3 rate.py "$mode" "$port" "$conns"
    done | sort -n | head -1)
done
if [ -n "${CAGE_BASELINE:-}" ]; then
    secs[baseline]=$(for _ in $(seq "$runs"); do
        "$CAGE_BASELINE" --no-project-policy --net proxy "${allow[@]}" -- \
            python3 rate.py connect "$port" "$conns"
    done | sort -n | head -1)
fi

# The supervisor's CPU time per CONNECT connection (user + system, all its
# threads), read just before the agent exits: less noisy than wall time
# on a loaded machine.
cpu_per_conn() { # BINARY
    rm -f rate-done
    "$1" --no-project-policy --net proxy "${allow[@]}" -- \
        sh -c "python3 rate.py connect $port $conns >/dev/null; touch rate-done; sleep 0.3" &
    local sup=$!
    while [ ! -e rate-done ]; do sleep 0.05; done
    local ticks
    ticks=$(awk '{ print $14 + $15 }' "/proc/$sup/stat")
    wait "$sup"
    awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" -v n=$((conns + 50)) \
        'BEGIN { printf "%.3f", t / hz * 1000 / n }'
}
row() {
    awk -v s="$2" -v d="${secs[direct]}" -v n="$conns" -v name="$1" 'BEGIN {
        added = (s - d) / n * 1000
        printf "| %s | %.0f | %.3f | %s |\n", name, n / s, s / n * 1000,
            (name ~ /direct/ ? "-" : sprintf("%+.3f ms", added)) }'
}
echo "Short requests: $conns sequential connections, one request each (Python client)"
echo
echo "| path | connections/s | ms per connection | added by the proxy |"
echo "|---|---:|---:|---:|"
row "direct, cage --net host" "${secs[direct]}"
row "proxy, HTTP forward" "${secs[http]}"
row "proxy, CONNECT" "${secs[connect]}"
[ -n "${CAGE_BASELINE:-}" ] && row "proxy, CONNECT, baseline binary" "${secs[baseline]}"
echo
echo "| supervisor CPU per CONNECT connection | ms |"
echo "|---|---:|"
echo "| cage | $(cpu_per_conn "$cage") |"
[ -n "${CAGE_BASELINE:-}" ] && echo "| baseline binary | $(cpu_per_conn "$CAGE_BASELINE") |"
echo

# Supervisor memory: idle, then with 200 tunnels open.
# Started directly (not through the caged function), so $! is cage itself.
"$cage" --no-project-policy --net proxy "${allow[@]}" -- sleep 1 &
sup=$!
sleep 0.5
idle=$(awk '/^VmRSS/ { print $2 }' "/proc/$sup/status")
wait "$sup"
rm -f tunnels-open tunnels-done
"$cage" --no-project-policy --net proxy "${allow[@]}" -- python3 tunnels.py "$port" 200 &
sup=$!
for _ in $(seq 300); do [ -e tunnels-open ] && break; sleep 0.05; done
[ -e tunnels-open ] || { echo "proxy.sh: tunnels did not open" >&2; exit 1; }
open=$(awk '/^VmRSS/ { print $2 }' "/proc/$sup/status")
threads=$(awk '/^Threads/ { print $2 }' "/proc/$sup/status")
fds=$(ls "/proc/$sup/fd" | wc -l)
touch tunnels-done
wait "$sup"
echo "Supervisor memory"
echo
echo "| state | VmRSS | threads | descriptors |"
echo "|---|---:|---:|---:|"
echo "| proxy idle | $((idle / 1024)).$(( (idle % 1024) * 10 / 1024 )) MiB | | |"
echo "| 200 open tunnels | $((open / 1024)).$(( (open % 1024) * 10 / 1024 )) MiB | $threads | $fds |"
