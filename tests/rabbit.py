"""The local RabbitMQ as the tests use it: `rabbitmqctl`, and virtual hosts of their own.

No test declares anything in the default vhost `/`: a test that needs a server-wide name to itself
(`roster.results`, a connection to close) takes `vhost()`, and the others share the test run's vhost
(the `rabbitmq_url` fixture). Each is deleted with everything in it when its user is done.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from tests import needs


def rabbitmqctl(*args: str) -> str:
    """Run rabbitmqctl (skipping the test when it is missing or may not manage the broker)."""
    path = needs.rabbitmq()
    result = subprocess.run([path, *args], capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {result.stderr or result.stdout}")
    return result.stdout


def vhost_of(url: str) -> str:
    """The vhost of an amqp:// URL made by `vhost()`."""
    return url.rsplit("/", 1)[1]


def vhosts() -> set[str]:
    return set(rabbitmqctl("-q", "list_vhosts").split())


@contextmanager
def vhost(prefix: str = "roster-test") -> Iterator[str]:
    """A fresh RabbitMQ virtual host; yields its amqp:// URL and deletes it (and all in it) after."""
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@127.0.0.1:5672/{name}"
    finally:
        rabbitmqctl("delete_vhost", name)
