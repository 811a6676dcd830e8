"""What RabbitMQ's refusals mean to the person who runs Roster: each failure of a connect, a declare,
a publish or a consume as one line saying what was refused, where (`host:port`, vhost, user; never the
password), the setting it came from, and the fix.

`connect_refusal` reads a failed connect (wrong password, unknown vhost, TLS mismatch, refused port,
unknown host, timeout); `channel_refusal` a channel closed by the server (permission refused, a queue
declared with other arguments, a missing exchange); `tls_context` reads a CA file before any
connection, so that an unreadable or non-PEM file is named as such.
"""

from __future__ import annotations

import ssl
from typing import Final

from aiormq.exceptions import (
    AMQPError,
    AuthenticationError,
    ChannelAccessRefused,
    ChannelNotFoundEntity,
    ChannelPreconditionFailed,
    InvalidFrameError,
    ProbableAuthenticationError,
)
from yarl import URL

from common.errors import ConfigError

BROKER_SETTING: Final = "--broker / ROSTER_BROKER"
"""Where a process's broker URL comes from, named in the errors of a failed connect."""
CA_SETTING: Final = "--broker-ca-file"
_CA_FIX: Final = f"give the broker's CA with {CA_SETTING} (env ROSTER_BROKER_CA_FILE)"


def masked(url: str) -> str:
    """`url` with its password replaced by `******`."""
    parsed = URL(url)
    return str(parsed.with_password("******") if parsed.password else parsed)


def tls_context(ca_file: str | None) -> ssl.SSLContext | None:
    """A verifying TLS context trusting `ca_file`, or None without one; a `ConfigError` naming
    `--broker-ca-file` when the file is missing, unreadable or holds no PEM certificate."""
    if ca_file is None:
        return None
    try:
        return ssl.create_default_context(cafile=ca_file)
    except FileNotFoundError:
        problem = f"no file at {ca_file}"
    except PermissionError:
        problem = f"{ca_file} cannot be read by this user"
    except (ssl.SSLError, OSError, ValueError) as exc:
        problem = f"{ca_file} holds no PEM certificate ({exc.__class__.__name__})"
    fix = "name a PEM file with the CA certificate(s) that signed the broker's"
    raise ConfigError(CA_SETTING, problem, fix)


def connect_refusal(exc: BaseException, url: str, *, timeout_s: float) -> str:
    """One line for a failed connect to `url`: what the broker (or the network) said, the setting it
    came from, and the fix; never the password."""
    parsed = URL(url)
    user, vhost = parsed.user or "guest", parsed.path[1:] or "/"
    where = f"{parsed.host}:{parsed.port} ({BROKER_SETTING})"
    text = str(exc)
    if isinstance(exc, AuthenticationError | ProbableAuthenticationError):
        return (
            f"broker at {where} refused the login for user {user!r} on vhost {vhost!r} (ACCESS_REFUSED): "
            "check the user, password and vhost in the URL (rabbitmqctl authenticate_user USER PASSWORD "
            "tells whether the first two match)"
        )
    if isinstance(exc, InvalidFrameError) and "Connection.OpenOk" in text:
        return (
            f"broker at {where} refused vhost {vhost!r} to user {user!r}: create the vhost "
            f"(rabbitmqctl add_vhost {vhost}) and grant the user access (rabbitmqctl set_permissions "
            f"-p {vhost} {user} '.*' '.*' '.*'), or fix the URL's path"
        )
    if isinstance(exc, TimeoutError):
        return (
            f"no answer from the broker at {where} within {timeout_s:g} s: is the host reachable, and "
            "does no firewall drop the port?"
        )
    if "CERTIFICATE_VERIFY_FAILED" in text or isinstance(exc, ssl.SSLCertVerificationError):
        reason = text.split("certificate verify failed:", 1)[-1].split("(_ssl", 1)[0].strip(" )'\"")
        return f"TLS with the broker at {where} failed: its certificate is not trusted ({reason}): {_CA_FIX}"
    if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text:
        return (
            f"TLS with the broker at {where} failed: the port does not speak TLS: use amqp:// for a plain "
            "port, or the broker's TLS port (5671) with amqps://"
        )
    if isinstance(exc, ssl.SSLError) or "[SSL" in text:
        return f"TLS with the broker at {where} failed ({_quiet(text, parsed)}): {_CA_FIX}"
    errno = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    if errno == 111 or isinstance(exc, ConnectionRefusedError):
        return (
            f"cannot reach the broker at {where}: connection refused: is RabbitMQ running there and "
            "listening on that port, and does no firewall reject it?"
        )
    if errno in (-2, -3, -5):  # EAI_NONAME, EAI_AGAIN, EAI_NODATA
        unknown = f"the host name {parsed.host!r} is unknown"
        return f"cannot reach the broker at {where}: {unknown}: fix the URL's host"
    if errno is not None and len(exc.args) == 2:
        return f"cannot reach the broker at {where}: {exc.args[1]}; is RabbitMQ running there?"
    if "unexpectedly closed" in text:
        return (
            f"the broker at {where} closed the connection at once: is that port RabbitMQ's AMQP port "
            "(5672, or 5671 for amqps://)?"
        )
    return f"cannot connect to the broker at {where}: {_quiet(repr(exc), parsed)}"


def channel_refusal(exc: BaseException, url: str, *, doing: str) -> str:
    """One line for a channel the broker closed while `doing` (`declare queue 'roster.ops.x'`); the
    fix for each refusal the person can act on."""
    parsed = URL(url)
    user, vhost = parsed.user or "guest", parsed.path[1:] or "/"
    if isinstance(exc, ChannelAccessRefused):
        kind = (
            "configure" if doing.startswith("declare") else "write" if doing.startswith("publish") else "read"
        )
        return (
            f"broker refused to {doing} for user {user!r} on vhost {vhost!r} (ACCESS_REFUSED: no "
            f"{kind} permission): grant it, e.g. rabbitmqctl set_permissions -p {vhost} {user} "
            "'.*' '.*' '.*' on a vhost of Roster's own"
        )
    if isinstance(exc, ChannelNotFoundEntity):
        return f"broker could not {doing} on vhost {vhost!r}: it does not exist there (NOT_FOUND)"
    if isinstance(exc, ChannelPreconditionFailed):
        return (
            f"broker refused to {doing} on vhost {vhost!r}: it exists with other arguments "
            f"({_quiet(str(exc), parsed)}); use the same settings everywhere"
        )
    if isinstance(exc, TimeoutError):
        return f"could not {doing}: no answer from the broker at {masked(url)}"
    if isinstance(exc, AMQPError):
        return f"could not {doing} on {masked(url)}: {_quiet(repr(exc), parsed)}"
    return f"could not {doing} on {masked(url)}: {exc!r}"


def refused_by_server(channel: object) -> AMQPError | None:
    """The refusal the server closed `channel` with (access refused, not found), if it did: a write
    on it then fails again on every new channel, so it is reported, not retried."""
    # aiormq keeps the Channel.Close reason only here; the write itself fails with a cancel.
    cause = getattr(channel, "_close_exception", None)
    return cause if isinstance(cause, ChannelAccessRefused | ChannelNotFoundEntity) else None


def _quiet(text: str, url: URL) -> str:
    """`text` without the URL's password."""
    return text.replace(url.password, "******") if url.password else text
