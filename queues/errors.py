"""The root of every error Roster raises, and the errors of the queue layer.

The tree (engine and worker errors live beside their code but hang from this root)::

    RosterError
    ├── ConfigError            engine/config.py, workers/config.py: a file says something wrong
    ├── SourceError            engine/sources/: a source cannot be read at all
    ├── StateError             engine/state.py: the state store is unusable
    ├── BrokerError            queues/: the broker refused or lost a message
    │   └── DecodeError        a message body that is not a valid envelope
    ├── AuthError              queues/http_auth.py: an OAuth token endpoint refused or was out of reach
    └── ConnectorError         workers/errors.py: a target refused an operation
        ├── TransientError     worth a retry: timeouts, refused connections, 5xx, 429, locks
        └── PermanentError     not worth a retry: schema and constraint violations, 400, 409

`queues` sits below both `engine` and `workers`, so the root lives here where both can reach it.
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
