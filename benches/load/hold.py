#!/usr/bin/env python3
"""Opens N kept-alive HTTP/1.1 connections to a proxy and holds them open.

Usage: hold.py PORT N PATH [HEADER ...]

Each connection sends one request (PATH, with the given `Name: value` headers),
reads the whole answer, and stays open without sending more. Once every
connection has its answer, prints `held N` on stdout and waits until stdin
closes; then closes them all. A connection that fails is an error (exit 1):
the figure taken meanwhile would not be for N connections.
"""
import asyncio
import sys

OPEN_AT_ONCE = 200


async def one(port, request, held):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = head.split(b" ", 2)[1]
    if status != b"200":
        raise RuntimeError(f"answered {status.decode()}: {head[:200]!r}")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    held.append(writer)


async def main():
    port, n, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    headers = "".join(f"{h}\r\n" for h in sys.argv[4:])
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode()
    held = []
    gate = asyncio.Semaphore(OPEN_AT_ONCE)

    async def gated():
        async with gate:
            await one(port, request, held)

    await asyncio.gather(*(gated() for _ in range(n)))
    print(f"held {len(held)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for w in held:
        w.close()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as e:  # noqa: BLE001 - reported, then a failing exit status
        print(f"hold.py: {e}", file=sys.stderr)
        sys.exit(1)
