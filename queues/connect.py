"""Builds the broker a process was told to use on its command line (`--broker URL`), and checks it
(`--check`)."""

from __future__ import annotations

from collections.abc import Sequence

from common.errors import ConfigError
from queues.broker import Broker

Finding = tuple[str, str | None]
"""What a broker check looked at, and what is wrong with it (with the fix), or None when it is fine."""


def broker_from_url(url: str, *, ca_file: str | None = None) -> Broker:
    """`amqp://` or `amqps://` for RabbitMQ. The in-memory broker only joins an engine and workers
    inside one process (`roster run`), so it is not a choice here."""
    if url.startswith(("amqp://", "amqps://")):
        from queues.rabbitmq import RabbitBroker

        if ca_file is not None and url.startswith("amqp://"):
            raise ConfigError(
                "--broker-ca-file",
                "is given for a plain amqp:// broker URL",
                "use amqps:// (TLS, usually port 5671), or leave the CA file out",
            )

        return RabbitBroker(url, ssl_ca_file=ca_file)
    scheme = url.split("://", 1)[0] if "://" in url else url
    raise ConfigError(
        "--broker",
        f"unsupported broker scheme {scheme!r}",
        "use amqp://user:password@host:5672/ or amqps://... (with --broker-ca-file for a private CA)",
    )


async def check_broker(
    url: str, *, ca_file: str | None, publishes_to: Sequence[str], consumes: Sequence[str]
) -> list[Finding]:
    """Whether a process that publishes to the queues `publishes_to` and consumes `consumes` could
    work with the broker at `url`: reach, TLS, login, vhost and permissions, found without changing
    anything that lasts; one finding per step (see `queues/rabbitmq/check.py`)."""
    try:
        broker_from_url(url, ca_file=ca_file)  # the same refusals of a URL or a CA file as a start
    except ConfigError as exc:
        return [("broker", str(exc))]
    from queues.rabbitmq.check import check_rabbitmq

    return await check_rabbitmq(url, ca_file=ca_file, publishes_to=publishes_to, consumes=consumes)
