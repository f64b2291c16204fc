#!/usr/bin/env python3
"""A stand-in for an OpenAI-compatible model server, for the test OpenClaw gateway.

scripts/openclaw starts it inside the gateway's network namespace on 127.0.0.1:18790.
The gateway (provider api "openai-completions") calls POST /v1/chat/completions with
stream: true; the reply quotes the last user message ("You said: <text>") so a test can
tell that its own message went through the gateway and back. Every request is appended
to a JSON-lines log (whole body included: tests may check what the gateway sent, e.g.
the agent's SOUL.md inside the ~33 KB system prompt). Python 3 stdlib only.
"""
import argparse
import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL_ID = "stub-model"
LOG_LOCK = threading.Lock()


def text_of(content):
    """Message content is a string or a list of parts ({type: "text", text})."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "\n".join(parts)
    return ""


# What the gateway wraps around the user's words (seen with openclaw 2026.9.6): it adds a user
# message of its own with internal context after the real one, prefixes the text with a timestamp
# ("[Mon 2026-12-07 04:00 UTC] hello") and appends a "Runtime: agent=... | session=..." line.
INTERNAL_CONTEXT = re.compile(r"<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>.*?<<<END_OPENCLAW_INTERNAL_CONTEXT>>>", re.S)
TIMESTAMP_PREFIX = re.compile(r"^\[[^\]\n]*\d{4}-\d\d-\d\d[^\]\n]*\]\s*")
RUNTIME_SUFFIX = re.compile(r"\n+Runtime: [^\n]*\s*$")


def user_words(text):
    text = INTERNAL_CONTEXT.sub("", text).strip()
    return RUNTIME_SUFFIX.sub("", TIMESTAMP_PREFIX.sub("", text)).strip()


def last_user_text(messages):
    """The text of the last user message that is not the gateway's own internal context."""
    for message in reversed(messages or []):
        if isinstance(message, dict) and message.get("role") == "user":
            words = user_words(text_of(message.get("content")))
            if words:
                return words
    return ""


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 so the gateway's client can keep connections alive; streams use chunked encoding.
    protocol_version = "HTTP/1.1"
    server_version = "openclaw-stub-model/1"

    def log_message(self, fmt, *args):  # the request log below replaces the default stderr lines
        pass

    def record(self, **fields):
        fields = {"ts": time.time(), "method": self.command, "path": self.path, **fields}
        with LOG_LOCK, open(self.server.log_path, "a", encoding="utf-8") as log:
            log.write(json.dumps(fields, ensure_ascii=False) + "\n")

    def send_json(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?", 1)[0].rstrip("/")
        self.record()
        if path in ("/v1/models", "/models"):
            self.send_json(200, {"object": "list", "data": [
                {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "stub"}]})
        elif path in ("", "/health", "/healthz"):
            self.send_json(200, {"ok": True})
        else:
            self.send_json(404, {"error": {"message": f"no route {path}", "type": "not_found"}})

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self.path.split("?", 1)[0].rstrip("/")
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self.record(error="invalid json", raw=raw.decode("utf-8", "replace"))
            self.send_json(400, {"error": {"message": "invalid JSON body", "type": "invalid_request_error"}})
            return
        if not path.endswith("/chat/completions"):
            self.record(body=body)
            self.send_json(404, {"error": {"message": f"no route {path}", "type": "not_found"}})
            return
        user_text = last_user_text(body.get("messages"))
        reply = f"You said: {user_text}"
        self.record(stream=bool(body.get("stream")), model=body.get("model"),
                    messages=len(body.get("messages") or []), tools=len(body.get("tools") or []),
                    user_text=user_text, body=body)
        usage = {"prompt_tokens": max(1, len(raw) // 4), "completion_tokens": max(1, len(reply) // 4)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        meta = {"id": "chatcmpl-" + uuid.uuid4().hex, "created": int(time.time()), "model": body.get("model") or MODEL_ID}
        if body.get("stream"):
            self.stream(meta, reply, usage, bool((body.get("stream_options") or {}).get("include_usage")))
        else:
            self.send_json(200, {**meta, "object": "chat.completion", "usage": usage, "choices": [
                {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}]})

    def stream(self, meta, reply, usage, include_usage):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def event(data):
            payload = ("data: " + (data if isinstance(data, str) else json.dumps(data)) + "\n\n").encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
            self.wfile.flush()

        def chunk(delta, finish=None):
            return {**meta, "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

        event(chunk({"role": "assistant", "content": ""}))
        # A few pieces, so the gateway emits several delta events as with a real model.
        words = reply.split(" ")
        step = max(1, len(words) // 3)
        for i in range(0, len(words), step):
            piece = " ".join(words[i:i + step])
            event(chunk({"content": piece if i == 0 else " " + piece}))
        event(chunk({}, "stop"))
        if include_usage:
            event({**meta, "object": "chat.completion.chunk", "choices": [], "usage": usage})
        event("[DONE]")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18790)
    parser.add_argument("--log", required=True, help="JSON-lines request log")
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    server.log_path = args.log
    server.serve_forever()


if __name__ == "__main__":
    main()
