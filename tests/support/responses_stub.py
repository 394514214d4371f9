#!/usr/bin/env python3
"""A stand-in for OpenAI's Responses API, for cage's tests.

It speaks just enough of POST /v1/responses (server-sent-event streaming,
as Codex asks for it) for `codex exec` to finish a turn with one shell tool
call, and nothing else: no real model, no network beyond loopback.

  responses_stub.py PORT_FILE LOG_FILE COMMAND

It listens on 127.0.0.1 on a free port and writes the port to PORT_FILE.
A request whose input carries a function_call_output gets a final message
that quotes the output; the first request that offers a shell tool
(exec_command, shell_command or shell) gets a function_call asking it to run
COMMAND; any other request gets "ok". Every request is appended to
LOG_FILE, one JSON object per line. GET (Codex's model list, its websocket
upgrade) gets 404, so Codex falls back to plain HTTPS streaming.
"""

import http.server
import json
import os
import sys
import threading

PORT_FILE, LOG_FILE, COMMAND = sys.argv[1], sys.argv[2], sys.argv[3]
LOCK = threading.Lock()

# The shell tools Codex offers, by release, and how each names its command.
SHELL_TOOLS = {
    "exec_command": lambda c: {"cmd": c},
    "shell_command": lambda c: {"command": c},
    "shell": lambda c: {"command": ["bash", "-lc", c]},
}


def outputs(body):
    """The text of every function_call_output in the conversation."""
    out = []
    for item in body.get("input", []):
        if isinstance(item, dict) and item.get("type") == "function_call_output":
            value = item.get("output")
            if isinstance(value, str):
                out.append(value)
            elif isinstance(value, list):
                out.extend(v.get("text", "") for v in value if isinstance(v, dict))
            else:
                out.append(json.dumps(value))
    return out


def offered_shell(body):
    for tool in body.get("tools", []):
        if tool.get("type") == "function" and tool.get("name") in SHELL_TOOLS:
            return tool["name"]
    return None


def reply(body):
    """The output item for one request."""
    results = outputs(body)
    if results:
        text = "STUB-FINAL tool said: " + " | ".join(results)
    else:
        shell = offered_shell(body)
        if shell:
            return {
                "type": "function_call",
                "id": "fc_stub_1",
                "call_id": "call_stub_1",
                "name": shell,
                "arguments": json.dumps(SHELL_TOOLS[shell](COMMAND)),
                "status": "completed",
            }
        text = "ok"
    return {
        "type": "message",
        "id": "msg_stub",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def events(item):
    response = {"id": "resp_stub", "object": "response", "status": "in_progress", "output": []}
    yield {"type": "response.created", "response": response}
    yield {"type": "response.output_item.added", "output_index": 0, "item": item}
    yield {"type": "response.output_item.done", "output_index": 0, "item": item}
    done = dict(response, status="completed", output=[item])
    done["usage"] = {
        "input_tokens": 1,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 1,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 2,
    }
    yield {"type": "response.completed", "response": done}


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
        self.send(404, "application/json", b'{"error":"not here"}')

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        with LOCK, open(LOG_FILE, "a") as log:
            log.write(json.dumps({"path": self.path, "body": body}) + "\n")
        if not self.path.endswith("/responses"):
            self.send(404, "application/json", b'{"error":"not here"}')
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        for event in events(reply(body)):
            self.wfile.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
            self.wfile.flush()
        self.close_connection = True


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(PORT_FILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(PORT_FILE + ".tmp", PORT_FILE)
server.serve_forever()
