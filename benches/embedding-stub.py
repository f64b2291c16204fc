#!/usr/bin/env python3
"""A loopback stand-in for an OpenAI-compatible embedding API (benchmarks only): answers
POST /v1/embeddings {model, input: [texts]} with deterministic DIMS-dimension vectors (the
text's words hashed into dimensions, normalized). Standard library only.
    benches/embedding-stub.py PORT [DIMS]"""
import hashlib
import json
import math
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DIMS = int(sys.argv[2]) if len(sys.argv) > 2 else 384


def vector(text):
    v = [0.0] * DIMS
    for word in text.lower().split():
        h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
        v[h % DIMS] += 1.0 if (h >> 32) & 1 else -1.0
    norm = math.sqrt(sum(x * x for x in v)) or 1.0
    return [x / norm for x in v]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        texts = body.get("input") or []
        if isinstance(texts, str):
            texts = [texts]
        data = [{"object": "embedding", "index": i, "embedding": vector(t)} for i, t in enumerate(texts)]
        answer = json.dumps({"object": "list", "data": data, "model": body.get("model")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
