"""How the queues of `queues/topology.py` look on RabbitMQ: exchanges, routes, retry tiers, arguments.

* `roster.ops` (direct exchange) routes to the quorum queue `roster.ops.<target>` by the target name;
  `roster.results` (direct exchange) routes to the quorum queue `roster.results` by that same name;
  every other queue (dead letters, retry tiers, the tests' `roster.test.<id>`) is reached through the
  default exchange by its own name.
* A work queue has a max length with overflow `reject-publish` (a full queue nacks, and the publisher
  retries: backpressure, not loss), a delivery limit (a message that crashes every consumer), and an
  at-least-once dead-letter route to its quorum dead-letter queue, which has no limits: a dead letter
  is never refused. A quorum queue takes the publish that crosses its `x-max-length` and nacks the
  ones after it, so `x-max-length` is `max_length - 1` for the queue to hold `max_length`, as the
  in-memory broker does.
* A delivery's headers are the published ones: RabbitMQ's additions are removed (`own_headers`), and
  the reason the server dead-lettered a message becomes `REASON_HEADER`, as `Delivery.dead_letter` sets.
* A retry tier is a quorum queue `roster.retry.<queue without "roster.">.<N>ms` (for example
  `roster.retry.ops.okta.1101ms`) holding messages for N ms (`x-message-ttl`), then dead-lettering them
  at least once back to the queue through the default exchange, headers kept. A retry that comes due
  while its work queue is full waits in the tier for RabbitMQ's dead-letter worker to try again (about
  3 minutes on 3.10): late, never lost. Callers jitter their delays, so a delay is rounded *up* to
  one of 24 log-spaced buckets a decade (at most 10 % later, never earlier): the default retry policy
  (5 tiers, +/-20 % jitter) then uses about 25 retry queues per target, not one per distinct delay,
  and `x-expires` deletes a tier once unused for twice its delay plus 2 minutes.
"""

from __future__ import annotations

import math
from typing import Any, Final

from aio_pika import ExchangeType
from aio_pika.abc import AbstractRobustChannel

from queues.broker import REASON_HEADER
from queues.topology import RESULTS_QUEUE, dead_letter_queue, ops_queue

OPS_EXCHANGE: Final = "roster.ops"
RESULTS_EXCHANGE: Final = "roster.results"
RETRY_PREFIX: Final = "roster.retry."
_OPS_PREFIX: Final = ops_queue("")
_BUCKETS_PER_DECADE: Final = 24
_RETRY_EXPIRES_FLOOR_MS: Final = 120_000
_DEATH_HEADERS: Final = (
    "x-death",
    "x-first-death-reason",
    "x-first-death-queue",
    "x-first-death-exchange",
    "x-last-death-reason",
    "x-last-death-queue",
    "x-last-death-exchange",
)


def route(queue: str) -> tuple[str, str]:
    """The exchange and routing key that deliver a message to `queue`."""
    if queue.startswith(_OPS_PREFIX):
        return OPS_EXCHANGE, queue[len(_OPS_PREFIX) :]
    if queue == RESULTS_QUEUE:
        return RESULTS_EXCHANGE, RESULTS_QUEUE
    return "", queue


def delay_bucket_ms(delay_ms: int) -> int:
    """The smallest bucket >= `delay_ms`; buckets are 24 a decade, about 10 % apart."""
    if delay_ms < 1:
        raise ValueError(f"delay_ms must be >= 1, got {delay_ms}")
    step = math.ceil(math.log10(delay_ms) * _BUCKETS_PER_DECADE - 1e-9)
    bucket = math.ceil(10 ** (step / _BUCKETS_PER_DECADE) - 1e-9)
    return bucket if bucket >= delay_ms else math.ceil(10 ** ((step + 1) / _BUCKETS_PER_DECADE))


def retry_queue(queue: str, bucket_ms: int) -> str:
    """The retry tier that holds messages for `queue` during `bucket_ms`."""
    return f"{RETRY_PREFIX}{queue.removeprefix('roster.')}.{bucket_ms}ms"


def retry_expires_ms(bucket_ms: int) -> int:
    """How long an unused retry tier lives. A publisher re-declares a tier it keeps using every
    quarter of this, so a tier never expires with a message still inside."""
    return 2 * bucket_ms + _RETRY_EXPIRES_FLOOR_MS


def work_arguments(queue: str, *, max_length: int, delivery_limit: int | None) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "x-queue-type": "quorum",
        "x-max-length": max_length - 1,  # see the module docstring
        "x-overflow": "reject-publish",
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": dead_letter_queue(queue),
        "x-dead-letter-strategy": "at-least-once",
    }
    if delivery_limit is not None:
        arguments["x-delivery-limit"] = delivery_limit
    return arguments


def dead_letter_arguments() -> dict[str, Any]:
    return {"x-queue-type": "quorum"}


def retry_arguments(queue: str, bucket_ms: int) -> dict[str, Any]:
    return {
        "x-queue-type": "quorum",
        "x-message-ttl": bucket_ms,
        "x-expires": retry_expires_ms(bucket_ms),
        # At least once: a retry never vanishes because its work queue was full when it came due.
        "x-overflow": "reject-publish",
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": queue,
        "x-dead-letter-strategy": "at-least-once",
    }


def own_headers(headers: dict[str, Any], queue: str) -> dict[str, Any]:
    """The headers as published, from those of a delivery from `queue`: without what RabbitMQ adds
    (`x-delivery-count`, `x-death`, `x-first-death-*`), and with the server's reason in
    `REASON_HEADER` when the server dead-lettered the message into `queue` (`delivery_limit`)."""
    headers.pop("x-delivery-count", None)
    if "x-death" not in headers and "x-first-death-reason" not in headers:
        return headers
    deaths = headers.get("x-death")
    if deaths:  # the most recent death first; x-first-death-* may be a retry tier's expiry
        source, reason = deaths[0].get("queue"), deaths[0].get("reason")
    else:
        source, reason = headers.get("x-first-death-queue"), headers.get("x-first-death-reason")
    for key in _DEATH_HEADERS:
        headers.pop(key, None)
    if isinstance(source, str) and dead_letter_queue(source) == queue and REASON_HEADER not in headers:
        headers[REASON_HEADER] = str(reason)
    return headers


async def declare_work_queue(
    channel: AbstractRobustChannel,
    queue: str,
    *,
    max_length: int,
    delivery_limit: int | None,
    robust: bool,
) -> tuple[list[str], list[str]]:
    """Declare `queue`, its dead-letter queue, and its exchange and binding if it has one.

    With `robust`, the channel re-declares them all after a reconnection. Returns the names of the
    queues and exchanges declared.
    """
    dead = dead_letter_queue(queue)
    await channel.declare_queue(dead, durable=True, arguments=dead_letter_arguments(), robust=robust)
    declared = await channel.declare_queue(
        queue,
        durable=True,
        arguments=work_arguments(queue, max_length=max_length, delivery_limit=delivery_limit),
        robust=robust,
    )
    exchange_name, key = route(queue)
    if not exchange_name:
        return [dead, queue], []
    exchange = await channel.declare_exchange(exchange_name, ExchangeType.DIRECT, durable=True, robust=True)
    await declared.bind(exchange, key, robust=robust)
    return [dead, queue], [exchange_name]


async def declare_retry_queue(channel: AbstractRobustChannel, queue: str, bucket_ms: int) -> str:
    """Declare the retry tier of `queue` for `bucket_ms` (not re-declared on reconnection: it
    expires by itself, and the publisher declares it again when it next uses it)."""
    name = retry_queue(queue, bucket_ms)
    await channel.declare_queue(name, durable=True, arguments=retry_arguments(queue, bucket_ms), robust=False)
    return name
