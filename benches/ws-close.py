#!/usr/bin/env python3
"""Benchmark (not a test): how long a server takes to answer a client's WebSocket close.

Opens N sockets on PATH one after another (plain TCP, no library), sends a close frame on
each and measures until the server's close frame and until the server closes the TCP
connection. Prints "<p50 ms> <max ms>" of the latter (what a client waits for), and with
--verbose every socket's figures. Used by benches/compare.sh.
    benches/ws-close.py PORT PATH [N] [--verbose]
"""
import base64
import os
import socket
import statistics
import struct
import sys
import time


def one(port, path):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(10)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        f"GET {path} HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    head, data = buf.split(b"\r\n\r\n", 1)
    if b" 101 " not in head.split(b"\r\n")[0]:
        raise SystemExit(f"{path}: not upgraded: {head[:80]!r}")
    mask = os.urandom(4)
    payload = struct.pack("!H", 1000)
    frame = bytes([0x88, 0x80 | len(payload)]) + mask
    frame += bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    start = time.perf_counter()
    s.sendall(frame)
    close_frame = None
    while True:
        while len(data) >= 2 and len(data) >= 2 + (data[1] & 0x7F):
            if data[0] & 0x0F == 8 and close_frame is None:
                close_frame = time.perf_counter() - start
            data = data[2 + (data[1] & 0x7F):]
        chunk = s.recv(4096)
        if not chunk:
            closed = time.perf_counter() - start
            s.close()
            return close_frame, closed
        data += chunk


def main():
    args = [a for a in sys.argv[1:] if a != "--verbose"]
    port, path = int(args[0]), args[1]
    n = int(args[2]) if len(args) > 2 else 20
    runs = [one(port, path) for _ in range(n)]
    if "--verbose" in sys.argv:
        for frame, closed in runs:
            print(f"close frame after {frame * 1000:.2f} ms, connection closed after {closed * 1000:.2f} ms")
    closed = sorted(c * 1000 for _, c in runs)
    print(f"{statistics.median(closed):.2f} {closed[-1]:.2f}")


if __name__ == "__main__":
    main()
