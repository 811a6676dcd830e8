"""Every error Roster raises on purpose, in one tree under `RosterError`::

    RosterError
    ├── ConfigError            a file or a flag says something wrong: names the path and the fix
    ├── SourceError            a source cannot be read at all (engine/sources/)
    ├── StateError             the state store is unusable (engine/store/)
    ├── BrokerError            the broker refused or lost a message (queues/)
    │   └── DecodeError        a message body that is not a valid envelope
    ├── AuthError              an OAuth token endpoint refused or was out of reach (common/peers/)
    ├── Unanswered             an HTTP request got no answer: TLS refused, timeout, network
    │                          (common/peers/http_transport.py)
    ├── LinkError              an LDAP connection could not be opened, and at which stage
    │                          (common/peers/ldap_connect.py)
    ├── ScimProblem            a request to the inbound SCIM service that it refuses, with the status
    │                          and scimType it answers (engine/inbound/errors.py)
    └── ConnectorError         a target refused an operation (workers/connectors/)
        ├── TransientError     worth a retry: timeouts, refused connections, 5xx, 429, locks
        └── PermanentError     not worth a retry: schema and constraint violations, 400, 409

`AuthError`, `Unanswered` and `LinkError` come from the clients of peers that sources and connectors
share; each caller words them as its own error (a source's `SourceError` or retry, a connector's
`TransientError` or `PermanentError`), so they never reach the worker's verdict themselves.
`NotBulkable` (common/peers/sql_bulk.py) is outside the tree on purpose: it is not an error but a signal
its one caller catches at once, to write the statement the ordinary way.

The class of a connector error decides the fate of its operation: a `TransientError` goes to the next
retry tier (and to the dead letters after the last one); a `PermanentError` is reported failed at once
with the target's message. Anything else a connector raises is unexpected: the worker logs its
traceback and treats it as transient.
"""

from __future__ import annotations


class RosterError(Exception):
    """Base of every error raised on purpose by Roster."""


class ConfigError(RosterError):
    """A configuration value is wrong; the message names the path, the problem and the fix."""

    def __init__(self, path: str, problem: str, fix: str | None = None) -> None:
        self.path = path
        self.problem = problem
        self.fix = fix
        message = f"{path}: {problem}" if path else problem
        if fix:
            message += f" ({fix})"
        super().__init__(message)


class SourceError(RosterError):
    """A source cannot be read at all (a missing file, a header without the id column)."""


class StateError(RosterError):
    """The state store cannot be opened or written."""


class BrokerError(RosterError):
    """The broker refused, lost or could not route a message."""


class DecodeError(BrokerError):
    """A message body is not a valid envelope of a known version."""


class AuthError(RosterError):
    """No credentials could be had from a token endpoint; the message holds no secret.

    `transient` says whether another try may work (unreachable, 5xx, 429) or not (refused); `code` is the
    endpoint's HTTP status when it answered. Callers turn it into their own error: a connector's
    `TransientError` or `PermanentError`, a source's retry or `SourceError`.
    """

    def __init__(self, message: str, *, transient: bool, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient
        self.code = code


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
