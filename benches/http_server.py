# The host-side HTTP server the proxy benches reach: GET /bytes/N answers
# N bytes, anything else a short body; a connection with no request is
# held open (for the tunnel count). Prints its port, then serves forever.
import socket, threading
chunk = b"\0" * (1 << 20)
def serve(c):
    try:
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
    finally:
        c.close()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(1024)
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
