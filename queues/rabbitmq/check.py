"""`roster engine --check` and `roster worker --check` on RabbitMQ: whether a process could work with
its broker, found without changing anything that lasts.

In order, each step only if the one before worked: the connect (host and port reachable, TLS and its
CA, the login, the vhost); a declare of a temporary queue `roster.check.<random>`, exclusive to this
connection, so it is gone when the check ends (the configure permission on `roster.*`); a consume from
it, cancelled at once (read); a publish with confirm to each exchange the process publishes to, with a
routing key no queue is bound by, so the broker drops it (write); and a passive declare of each queue
the process uses, which says whether it exists and how many messages it holds.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection
from aiormq.exceptions import AMQPError, ChannelNotFoundEntity
from yarl import URL

from queues.rabbitmq.errors import channel_refusal, connect_refusal, masked, tls_context
from queues.rabbitmq.topology import route

Finding = tuple[str, str | None]
"""What was checked, and what is wrong with it (with its fix), or None when it is fine."""

_CHECK_PREFIX: Final = "roster.check."


async def check_rabbitmq(
    url: str,
    *,
    ca_file: str | None,
    publishes_to: Sequence[str],
    consumes: Sequence[str],
    timeout_s: float = 10.0,
) -> list[Finding]:
    """The findings for the broker at `url` of a process that publishes to the queues `publishes_to`
    and consumes `consumes` (see the module docstring); no text holds the password."""
    exchanges = sorted({route(queue)[0] for queue in publishes_to} - {""})
    queues = sorted({*publishes_to, *consumes})
    parsed = URL(url)
    shown = masked(url)
    user, vhost = parsed.user or "guest", parsed.path[1:] or "/"
    tls = tls_context(ca_file)
    try:
        connection = await aio_pika.connect(
            url,
            ssl_context=tls,
            timeout=timeout_s,
            client_properties={"connection_name": "roster --check"},
        )
    except (TimeoutError, OSError, AMQPError) as exc:
        return [(f"broker {shown}", connect_refusal(exc, url, timeout_s=timeout_s))]
    secured = ", TLS verified" if parsed.scheme == "amqps" else ""
    found: list[Finding] = [(f"broker {shown}: connected as {user!r} to vhost {vhost!r}{secured}", None)]
    probe = f"{_CHECK_PREFIX}{uuid.uuid4().hex[:12]}"
    try:
        step = _Steps(connection, url, timeout_s)
        made = await step.run(
            f"declare queue {probe!r}",
            f"may declare queues (a temporary {probe})",
            lambda channel: channel.declare_queue(probe, exclusive=True, auto_delete=True),
        )
        found.append(made)
        if made[1] is None:
            found.append(
                await step.run(
                    f"consume from queue {probe!r}", "may consume from queues", lambda ch: _consume(ch, probe)
                )
            )
        for exchange in exchanges:
            found.append(await step.publish(exchange, probe))
        for queue in queues:
            found.append(await step.queue(queue))
    finally:
        await connection.close()
    return found


class _Steps:
    """Each step on a channel of its own: a refusal closes the channel it came on."""

    def __init__(self, connection: AbstractConnection, url: str, timeout_s: float) -> None:
        self._connection = connection
        self._url = url
        self._timeout_s = timeout_s

    async def run(
        self,
        doing: str,
        ok: str,
        step: Callable[[AbstractChannel], Awaitable[object]],
        *,
        confirms: bool = False,
    ) -> Finding:
        try:
            async with asyncio.timeout(self._timeout_s):
                channel = await self._connection.channel(publisher_confirms=confirms)
                try:
                    await step(channel)
                finally:
                    if not channel.is_closed:
                        await channel.close()
        except (TimeoutError, AMQPError) as exc:
            return ok, channel_refusal(exc, self._url, doing=doing)
        return ok, None

    async def publish(self, exchange: str, routing_key: str) -> Finding:
        """A confirmed publish that no queue takes, where the exchange exists."""
        exists = await self._exists(lambda channel: channel.declare_exchange(exchange, passive=True))
        if not exists:
            return f"exchange {exchange!r} not declared yet: the first process to start declares it", None

        async def publish(channel: AbstractChannel) -> None:
            target = await channel.get_exchange(exchange, ensure=False)
            await target.publish(aio_pika.Message(b""), routing_key=routing_key, mandatory=False)

        doing = f"publish to exchange {exchange!r}"
        return await self.run(doing, f"may publish to exchange {exchange!r}", publish, confirms=True)

    async def queue(self, queue: str) -> Finding:
        """Whether `queue` exists, and what it holds."""
        held: list[str] = []

        async def read(channel: AbstractChannel) -> None:
            declared = await channel.declare_queue(queue, passive=True)
            result = declared.declaration_result
            held.append(f"{result.message_count} ready, {result.consumer_count} consumer(s)")

        try:
            async with asyncio.timeout(self._timeout_s):
                channel = await self._connection.channel()
                try:
                    await read(channel)
                finally:
                    if not channel.is_closed:
                        await channel.close()
        except ChannelNotFoundEntity:
            return f"queue {queue!r} not declared yet: declared when a process using it starts", None
        except (TimeoutError, AMQPError) as exc:
            return f"queue {queue!r}", channel_refusal(exc, self._url, doing=f"read queue {queue!r}")
        return f"queue {queue!r}: {held[0]}", None

    async def _exists(self, declare: Callable[[AbstractChannel], Awaitable[object]]) -> bool:
        try:
            channel = await self._connection.channel()
            try:
                await declare(channel)
            finally:
                if not channel.is_closed:
                    await channel.close()
        except ChannelNotFoundEntity:
            return False
        return True


async def _consume(channel: AbstractChannel, queue: str) -> None:
    declared = await channel.get_queue(queue, ensure=False)
    tag = await declared.consume(_ignore, no_ack=False)
    await declared.cancel(tag)


async def _ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
    await message.nack(requeue=True)  # the queue is this check's own and stays empty
