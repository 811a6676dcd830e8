"""Connector errors: the class of an exception decides the fate of an operation.

A `TransientError` sends the operation to the next retry tier (and to the dead letters after the
last one); a `PermanentError` reports it failed at once with the target's message. Anything else a
connector raises is unexpected: the worker logs its traceback and treats it as transient.
"""

from __future__ import annotations

from queues.errors import RosterError


class ConnectorError(RosterError):
    """A target refused an operation. `code` is the target's own code (HTTP status, SQLSTATE...)."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class TransientError(ConnectorError):
    """Worth a retry: timeouts, refused connections, 5xx, 429, lock timeouts."""


class PermanentError(ConnectorError):
    """Not worth a retry: schema and constraint violations, 400, unresolvable 409."""
