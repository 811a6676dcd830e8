"""Targets that do not answer, for the `error:transient-*` checks: a port where nothing listens
(`refused_port`), a listener that accepts connections and never says a word (`stalled_listener`), and
`point_url_at`, which points a target's YAML at one of them.

Both bind 127.0.0.1 only and are gone when their `async with` ends.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit


@asynccontextmanager
async def refused_port() -> AsyncIterator[int]:
    """A port bound but not listening: a connection to it is refused at once, and no other process can
    take the port meanwhile (a closed port could be reused by anyone)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


@asynccontextmanager
async def stalled_listener() -> AsyncIterator[int]:
    """A port that accepts connections and then neither reads nor answers: a server that hangs. Every
    connection it accepted is closed when the block ends."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        for writer in held:
            writer.close()
        await server.wait_closed()


def point_url_at(target: Mapping[str, Any], host: str, port: int) -> Mapping[str, Any] | None:
    """`target` with its `url:` setting's host and port replaced; None when it has no `url:` naming a
    host (a SQLite file, a connector configured otherwise)."""
    url = target.get("url")
    if not isinstance(url, str):
        return None
    parts = urlsplit(url)
    if not parts.hostname:
        return None
    credentials, _, _ = parts.netloc.rpartition("@")
    netloc = f"{credentials}@{host}:{port}" if credentials else f"{host}:{port}"
    return {**target, "url": urlunsplit(parts._replace(netloc=netloc))}
