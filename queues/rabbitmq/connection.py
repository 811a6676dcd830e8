"""The RabbitMQ connection of a broker: its URL (never logged with the password), TLS, the robust
connection with its control channel, and plain channels opened on whichever connection is current.

The connection is `aio_pika.connect_robust`: it reconnects by itself and its control channel declares
the topology again. Every other channel is a plain aiormq channel, which its user opens again here
once it has closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

import aio_pika
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection
from aiormq import Channel
from aiormq.exceptions import AMQPError
from yarl import URL

from common.errors import BrokerError
from queues.rabbitmq.channels import CLOSE_TIMEOUT_S
from queues.rabbitmq.errors import BROKER_SETTING, channel_refusal, connect_refusal, masked, tls_context

log = logging.getLogger("roster.queues.rabbitmq")

_RECONNECT_INTERVAL_S: Final = 1
_CHANNEL_OPEN_TIMEOUT_S: Final = 5.0
__all__ = ["BROKER_SETTING", "RabbitConnection"]


class RabbitConnection:
    """One robust connection, opened on first use (or `connect()`), and closed once: after `stop()`
    every use raises `BrokerError("broker closed")`, and `aclose()` releases the connection."""

    def __init__(self, url: str, *, ssl_ca_file: str | None, name: str, reconnect_timeout_s: float) -> None:
        parsed = URL(url)
        self.safe_url = masked(url)
        """The URL with its password masked, for messages and logs."""
        if parsed.scheme not in ("amqp", "amqps"):
            raise ValueError(f"broker URL must be amqp:// or amqps://, got {self.safe_url}")
        if ssl_ca_file is not None and parsed.scheme != "amqps":
            raise ValueError(f"ssl_ca_file needs an amqps:// URL, got {self.safe_url}")
        self.name = name
        self.reconnect_timeout_s = reconnect_timeout_s
        self._url = url
        self._ssl_context = tls_context(ssl_ca_file)
        self._connection: AbstractRobustConnection | None = None
        self._control: AbstractRobustChannel | None = None
        self._connect_lock = asyncio.Lock()
        self._stopped = False
        self._released = False

    def check_open(self) -> None:
        if self._stopped:
            raise BrokerError("broker closed")

    def stop(self) -> bool:
        """Refuse every further use; False if it was refused already."""
        if self._stopped:
            return False
        self._stopped = True
        return True

    async def connect(self) -> None:
        """Open the connection and the control channel; a second call does nothing."""
        self.check_open()
        if self._connection is not None:
            return
        async with self._connect_lock:
            if self._connection is not None:
                return
            try:
                connection = await aio_pika.connect_robust(
                    self._url,
                    ssl_context=self._ssl_context,
                    client_properties={"connection_name": self.name},
                    reconnect_interval=_RECONNECT_INTERVAL_S,
                    timeout=self.reconnect_timeout_s,
                )
            except (TimeoutError, OSError, AMQPError) as exc:
                raise BrokerError(
                    connect_refusal(exc, self._url, timeout_s=self.reconnect_timeout_s)
                ) from None
            try:
                control = connection.channel(publisher_confirms=False)
                await control.initialize()
            except BaseException:
                await connection.close()
                raise
            if self._stopped:  # closed while connecting
                await connection.close()
                self.check_open()
            self._connection, self._control = connection, control
            log.info("event=broker_connected url=%s name=%s", self.safe_url, self.name)

    def refusal(self, exc: BaseException, *, doing: str) -> str:
        """One line for a channel the broker closed while `doing`, with its fix (`errors.py`)."""
        return channel_refusal(exc, self._url, doing=doing)

    async def control_channel(self) -> AbstractRobustChannel:
        """The robust channel that declares the topology (again after a reconnection)."""
        await self.connect()
        assert self._control is not None
        return self._control

    async def open_channel(self, *, publisher_confirms: bool, wait_forever: bool = False) -> Channel:
        """A new channel on the current connection, waiting for the robust connection to come back
        (for `reconnect_timeout_s`, or forever for a consumer). A message it publishes that no queue
        takes is returned, and raises `PublishError`."""
        await self.connect()
        assert self._connection is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.reconnect_timeout_s
        pause, error = 0.05, None
        while True:
            self.check_open()
            transport = self._connection.transport
            if transport is not None and not transport.connection.is_closed:
                try:
                    # Bounded: opening waits for a connection that may be closing meanwhile.
                    channel = await asyncio.wait_for(
                        transport.connection.channel(
                            publisher_confirms=publisher_confirms, on_return_raises=True
                        ),
                        _CHANNEL_OPEN_TIMEOUT_S,
                    )
                except (TimeoutError, AMQPError, ConnectionError, RuntimeError) as exc:
                    error = exc
                else:
                    # aiormq's only kind; its abstract type lacks the `wait` of basic_publish and basic_ack.
                    assert isinstance(channel, Channel)
                    return channel
            if not wait_forever and loop.time() >= deadline:
                raise BrokerError(
                    f"no connection to RabbitMQ at {self.safe_url} for {self.reconnect_timeout_s:g} s"
                    + (f" ({error!r})" if error else "")
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.5)

    async def aclose(self) -> None:
        """Stop, then close the control channel and the connection (channels opened through
        `open_channel` are their users' to close first)."""
        self.stop()
        if self._released:
            return
        self._released = True
        if self._control is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._control.close(), CLOSE_TIMEOUT_S)
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._connection.close(), CLOSE_TIMEOUT_S)
