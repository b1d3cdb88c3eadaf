"""A TCP forwarder from a socket the host made to an address inside the node's network namespace.

The node's API server listens inside a network namespace the test environment creates, and nothing
routes there from the host (no veth, no host route: the host's interfaces are never touched). The
parent creates a listening socket on the host's loopback and passes its file descriptor to this
process, which runs inside the namespace (``nsenter --net``): a socket keeps the namespace it was made
in, so this process accepts on the host's loopback and connects inside the namespace. kubectl, helm and
the tests on the host use that loopback port; TLS passes through untouched.

    nsenter --target=<holder> --net -- python -m e2e.testenv.forward --fd 3 --to 127.0.0.1:6443
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket

CHUNK = 64 * 1024


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _serve(listener: socket.socket, host: str, port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pump(reader, upstream_writer), _pump(upstream_reader, writer))

    server = await asyncio.start_server(handle, sock=listener)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m e2e.testenv.forward")
    parser.add_argument("--fd", type=int, required=True, help="an inherited listening socket")
    parser.add_argument("--to", required=True, help="host:port inside this process's network namespace")
    args = parser.parse_args()
    host, _, port = args.to.rpartition(":")
    listener = socket.socket(fileno=args.fd)
    asyncio.run(_serve(listener, host, int(port)))


if __name__ == "__main__":
    main()
