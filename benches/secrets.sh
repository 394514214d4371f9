#!/usr/bin/env bash
# What holding a secret back costs: a connection the proxy terminates (TLS
# to the cage with the session CA, a verified TLS connection upstream, the
# placeholder swapped in) against the same HTTPS server reached through a
# plain CONNECT tunnel (TLS end to end), side by side in one run:
#   - added latency per new TLS connection (sequential connections, one
#     request each, Python client inside the cage);
#   - throughput of a 256 MiB download through each.
#
#   benches/secrets.sh [RUNS] [CONNECTIONS]     (default 3 runs, 300 connections)
#
# Everything stays on 127.0.0.1: a Python HTTPS server on the host's
# loopback with a certificate from a CA made for the run (openssl), named to
# cage by SSL_CERT_FILE. Runs as an unprivileged user: as root it
# re-executes itself under `cage-test`. Needs openssl, curl and python3.
set -euo pipefail

runs=${1:-3}
conns=${2:-300}
. "$(dirname "$0")/common.sh"
bench_setup secrets.sh "$@"
need openssl curl python3

ws=$(mktemp -d /tmp/cage-bench-ws.XXXXXX)
chmod 755 "$ws"
cd "$ws"
server_pid=
cleanup() {
    status=$?
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
    [ "$status" = 0 ] || cat "$ws/cage.log" >&2 2>/dev/null
    rm -rf "$ws"
}
trap cleanup EXIT

# A CA and a leaf for 127.0.0.1, made now.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj /CN=bench-ca -addext basicConstraints=critical,CA:TRUE \
    -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
    -keyout srv.key -out srv.csr 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' > ext
openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
    -extfile ext -out srv.pem 2>/dev/null
chmod 644 ca.pem

# GET /bytes/N answers N bytes, anything else a short body; one request per
# connection.
cat > server.py <<'EOF'
import socket, ssl, threading
chunk = b"\0" * (1 << 20)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain("srv.pem", "srv.key")
def serve(raw):
    try:
        c = ctx.wrap_socket(raw, server_side=True)
        head = b""
        while b"\r\n\r\n" not in head:
            d = c.recv(4096)
            if not d:
                return
            head += d
        path = head.split(b" ")[1].decode()
        if path.startswith("/bytes/"):
            n = int(path[7:])
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % n)
            while n > 0:
                k = min(n, len(chunk))
                c.sendall(chunk[:k])
                n -= k
        else:
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
        c.close()
    except (OSError, ssl.SSLError):
        pass
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(1024)
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
EOF

# CONNECTIONS sequential HTTPS connections through the proxy, one request
# each, trusting what SSL_CERT_FILE names (the bundle, inside).
cat > rate.py <<'EOF'
import os, socket, ssl, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
ctx = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
def once():
    s = socket.create_connection(("127.0.0.1", 3128))
    s.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n" % port)
    got = b""
    while b"\r\n\r\n" not in got:
        got += s.recv(4096)
    t = ctx.wrap_socket(s, server_hostname="127.0.0.1")
    t.sendall(b"GET /small HTTP/1.1\r\nHost: x\r\nx-api-key: " +
              os.environ.get("BENCH_KEY", "none").encode() + b"\r\n\r\n")
    while t.recv(65536):
        pass
    t.close()
for _ in range(20):
    once()
t = time.perf_counter()
for _ in range(n):
    once()
print(time.perf_counter() - t)
EOF
chmod 644 server.py rate.py

python3 server.py > port.txt &
server_pid=$!
for _ in $(seq 50); do [ -s port.txt ] && break; sleep 0.1; done
port=$(cat port.txt)
key=sk-bench-0123456789abcdefghijklmnopqrstuv
# Tunnel: the host allowed, no secret for it; the cage trusts the test CA.
tunnel=(--allow-host "127.0.0.1:$port" --env BENCH_KEY)
# Terminated: a secret for the host; the cage trusts the bundle cage makes.
# (cage passes the CA variables below into a tunnel's cage as they are.)
terminated=(--secret "BENCH_KEY@127.0.0.1:$port")
# cage's own lines (the secrets tally) go to a log, not the tables.
caged() {
    SSL_CERT_FILE="$ws/ca.pem" CURL_CA_BUNDLE="$ws/ca.pem" BENCH_KEY=$key \
        "$cage" --no-project-policy --net proxy "$@" \
        2>>"$ws/cage.log"
}
# `within MODE -- COMMAND...`: a cage for the mode.
within() {
    local mode=$1
    shift 2
    if [ "$mode" = tunnel ]; then caged "${tunnel[@]}" -- "$@"; else caged "${terminated[@]}" -- "$@"; fi
}
best() { sort -n | tail -1; }
mb() { awk '{ printf "%.0f", $1 / 1048576 }'; }

size=$((256 << 20))
url="https://127.0.0.1:$port/bytes/$size"
curl_speed="curl -sS -p -o /dev/null -w '%{speed_download}\n' --noproxy '' -x http://127.0.0.1:3128"

echo "== $(uname -r), $(nproc) cores; $runs runs each, best kept =="
echo
declare -A secs
for mode in tunnel terminated; do
    secs[$mode]=$(for _ in $(seq "$runs"); do
        within "$mode" -- python3 rate.py "$port" "$conns"; done | sort -n | head -1)
done
row() {
    awk -v s="$2" -v d="${secs[tunnel]}" -v n="$conns" -v name="$1" 'BEGIN {
        printf "| %s | %.0f | %.2f | %s |\n", name, n / s, s / n * 1000,
            (name ~ /tunnel/ ? "-" : sprintf("%+.2f ms (%.2fx)", (s - d) / n * 1000, s / d)) }'
}
echo "New TLS connections: $conns sequential, one request each (Python client)"
echo
echo "| path | connections/s | ms per connection | added by termination |"
echo "|---|---:|---:|---:|"
row "CONNECT tunnel (TLS end to end)" "${secs[tunnel]}"
row "terminated, placeholder swapped" "${secs[terminated]}"
echo

declare -A speed
for mode in tunnel terminated; do
    speed[$mode]=$(for _ in $(seq "$runs"); do
        within "$mode" -- sh -c "$curl_speed -H 'x-api-key: \$BENCH_KEY' $url"
    done | best)
done
base=${speed[tunnel]}
pct() { awk -v a="$1" -v b="$base" 'BEGIN { printf "%.0f%%", 100 * a / b }'; }
echo "256 MiB download over HTTPS (curl to /dev/null)"
echo
echo "| path | MiB/s | vs the tunnel |"
echo "|---|---:|---:|"
echo "| CONNECT tunnel (TLS end to end) | $(echo "$base" | mb) | 100% |"
echo "| terminated, placeholder swapped, response scanned | $(echo "${speed[terminated]}" | mb) | $(pct "${speed[terminated]}") |"
