#!/usr/bin/env python3
"""A plain byte forwarder between TCP and Unix sockets (Python 3 stdlib only).

scripts/openclaw uses two of them to make the test gateway, which lives in its own network
namespace, reachable from the host's loopback while the gateway still sees the connection
coming from ITS loopback (so our server's device is approved silently, as on a real gateway
host). Unix sockets are not network-namespaced, so the hop between the two is a socket file:

  host:      --listen tcp:127.0.0.1:0       --connect unix:<scratch>/gateway.sock
  namespace: --listen unix:<scratch>/gateway.sock --connect tcp:127.0.0.1:18789

Bytes are piped both ways unchanged (HTTP and WebSocket upgrades just pass through), a
half-close is passed on, and each connection is independent.
"""
import argparse
import asyncio
import os


def parse(addr):
    kind, _, rest = addr.partition(":")
    if kind == "unix":
        return ("unix", rest)
    if kind == "tcp":
        host, _, port = rest.rpartition(":")
        return ("tcp", (host, int(port)))
    raise SystemExit(f"bad address {addr!r}: use tcp:HOST:PORT or unix:PATH")


async def pipe(reader, writer, peer_writer):
    """Copies until EOF, then half-closes; on an error aborts both sides so the other pipe ends too."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError, RuntimeError):  # reset, or the peer transport already closed
        for w in (writer, peer_writer):
            w.transport.abort()


async def main():
    parser = argparse.ArgumentParser(description="byte forwarder: TCP/Unix to TCP/Unix")
    parser.add_argument("--listen", required=True)
    parser.add_argument("--connect", required=True)
    parser.add_argument("--port-file", help="write the bound TCP port here (for tcp:HOST:0)")
    args = parser.parse_args()
    listen, target = parse(args.listen), parse(args.connect)

    async def handle(client_r, client_w):
        try:
            if target[0] == "unix":
                up_r, up_w = await asyncio.open_unix_connection(target[1])
            else:
                up_r, up_w = await asyncio.open_connection(*target[1])
        except OSError:
            client_w.transport.abort()  # the client sees a reset, as if nothing listened
            return
        await asyncio.gather(pipe(client_r, up_w, client_w), pipe(up_r, client_w, up_w))
        for w in (client_w, up_w):
            w.close()

    if listen[0] == "unix":
        if os.path.exists(listen[1]):
            os.unlink(listen[1])
        server = await asyncio.start_unix_server(handle, listen[1], backlog=1024)
    else:
        server = await asyncio.start_server(handle, *listen[1], backlog=1024)
    if args.port_file:
        port = server.sockets[0].getsockname()[1]
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)  # readers never see a half-written file
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
