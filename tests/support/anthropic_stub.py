#!/usr/bin/env python3
"""A stand-in for the Anthropic Messages API, for cage's tests.

It speaks just enough of POST /v1/messages (JSON and server-sent-event
streaming) for Claude Code to finish a `claude -p` round trip with one tool
call, and nothing else: no real model, no network beyond loopback.

  anthropic_stub.py PORT_FILE LOG_FILE COMMAND

It listens on 127.0.0.1 on a free port and writes the port to PORT_FILE.
The first request that offers the Bash tool gets a tool_use asking Bash to
run COMMAND; a request carrying a tool_result gets a final text answer that
quotes the result; any other request (titles, quota probes) gets "ok".
Every request body is appended to LOG_FILE, one JSON object per line, with
the credential it carried (x-api-key or Authorization).

With STUB_TLS_CERT and STUB_TLS_KEY set (PEM files), it serves HTTPS.
"""

import http.server
import json
import sys
import threading

PORT_FILE, LOG_FILE, COMMAND = sys.argv[1], sys.argv[2], sys.argv[3]
LOCK = threading.Lock()


def tool_results(body):
    """The text of every tool_result block in the conversation."""
    out = []
    for message in body.get("messages", []):
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for block in content:
            if block.get("type") != "tool_result":
                continue
            inner = block.get("content")
            if isinstance(inner, str):
                out.append(inner)
            elif isinstance(inner, list):
                out.extend(b.get("text", "") for b in inner if isinstance(b, dict))
    return out


def reply(body):
    """(content blocks, stop_reason) for one request."""
    results = tool_results(body)
    if results:
        text = "STUB-FINAL tool said: " + " | ".join(results)
        return [{"type": "text", "text": text}], "end_turn"
    if any(t.get("name") == "Bash" for t in body.get("tools", [])):
        tool = {
            "type": "tool_use",
            "id": "toolu_stub_1",
            "name": "Bash",
            "input": {"command": COMMAND, "description": "cage probe"},
        }
        return [tool], "tool_use"
    return [{"type": "text", "text": "ok"}], "end_turn"


def message(body, blocks, stop):
    return {
        "id": "msg_stub",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "stub"),
        "content": blocks,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }


def sse(body, blocks, stop):
    """The same message as a stream of events."""
    start = message(body, [], None)
    yield "message_start", {"type": "message_start", "message": start}
    for i, block in enumerate(blocks):
        if block["type"] == "text":
            yield "content_block_start", {
                "type": "content_block_start",
                "index": i,
                "content_block": {"type": "text", "text": ""},
            }
            delta = {"type": "text_delta", "text": block["text"]}
        else:
            empty = dict(block, input={})
            yield "content_block_start", {
                "type": "content_block_start",
                "index": i,
                "content_block": empty,
            }
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        yield "content_block_delta", {"type": "content_block_delta", "index": i, "delta": delta}
        yield "content_block_stop", {"type": "content_block_stop", "index": i}
    yield "message_delta", {
        "type": "message_delta",
        "delta": {"stop_reason": stop, "stop_sequence": None},
        "usage": {"output_tokens": 1},
    }
    yield "message_stop", {"type": "message_stop"}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, code, ctype, data):
        self.send_response(code)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.send(404, "application/json", b'{"type":"error"}')

    def do_HEAD(self):
        self.send(200, "text/plain", b"")

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        with LOCK, open(LOG_FILE, "a") as log:
            key = self.headers.get("x-api-key") or self.headers.get("authorization")
            log.write(json.dumps({"path": self.path, "body": body, "key": key}) + "\n")
        if not self.path.startswith("/v1/messages") or "count_tokens" in self.path:
            self.send(200, "application/json", b'{"input_tokens": 1}')
            return
        blocks, stop = reply(body)
        if not body.get("stream"):
            data = json.dumps(message(body, blocks, stop)).encode()
            self.send(200, "application/json", data)
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        for event, data in sse(body, blocks, stop):
            self.wfile.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()
        self.close_connection = True


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
import os  # noqa: E402
import ssl  # noqa: E402

if os.environ.get("STUB_TLS_CERT"):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.environ["STUB_TLS_CERT"], os.environ["STUB_TLS_KEY"])
    server.socket = context.wrap_socket(server.socket, server_side=True)
with open(PORT_FILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))

os.rename(PORT_FILE + ".tmp", PORT_FILE)
server.serve_forever()
