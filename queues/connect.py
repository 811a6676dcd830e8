"""Builds the broker a process was told to use on its command line (`--broker URL`)."""

from __future__ import annotations

from common.errors import ConfigError
from queues.broker import Broker


def broker_from_url(url: str, *, ca_file: str | None = None) -> Broker:
    """`amqp://` or `amqps://` for RabbitMQ. The in-memory broker only joins an engine and workers
    inside one process (`roster run`), so it is not a choice here."""
    if url.startswith(("amqp://", "amqps://")):
        from queues.rabbitmq import RabbitBroker

        return RabbitBroker(url, ssl_ca_file=ca_file)
    scheme = url.split("://", 1)[0] if "://" in url else url
    raise ConfigError(
        "--broker",
        f"unsupported broker scheme {scheme!r}",
        "use amqp://user:password@host:5672/ or amqps://... (with --broker-ca-file for a private CA)",
    )
