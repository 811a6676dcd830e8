"""Presence messages: what an engine or a worker says of itself on `AGENTS_EXCHANGE`, every few seconds.

An `Announcement` is an orjson object with its own version (`PRESENCE_VERSION`, apart from the
operations' wire version, so presence can change without a rolling upgrade). A body of another version
or shape raises `DecodeError`; a listener logs it and drops it. A `leaving` announcement is the last
one a process sends when it stops cleanly, so it is gone at once rather than after missed heartbeats.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

import orjson

from common.errors import DecodeError

PRESENCE_VERSION: Final = 1

Kind = Literal["engine", "worker"]
State = Literal["running", "draining", "leaving"]
"""`draining`: stopping, finishing what it holds; `leaving`: stopped, this is its last word."""

MAX_ERROR_CHARS: Final = 300
_SECRETS: Final = (
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]*:[^/\s@]*@"), r"\1******@"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 ******"),
    (
        re.compile(
            r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key|client_secret)(\W{1,3})[^\s,;&'\"]+"
        ),
        r"\1\2******",
    ),
)


def redact(text: str) -> str:
    """`text` without what looks like a credential (URL passwords, bearer tokens, `password=...`),
    cut to `MAX_ERROR_CHARS`: a last error travels to every engine and into the API."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetReport:
    """One target a worker serves: its limit, the operations it applies now, and its last error."""

    name: str
    concurrency: int
    in_flight: int = 0
    last_error: str | None = None
    """Redacted (`redact`): the error class and message of the last failed operation."""
    last_error_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Announcement:
    """One heartbeat of one process. `id` is stable for the life of the process, unique across hosts."""

    kind: Kind
    id: str
    host: str
    pid: int
    version: str
    """The Roster release it runs."""
    spoken: tuple[int, ...]
    """The wire versions it decodes (`queues.versions.SPOKEN`)."""
    state: State
    started_at: float
    sent_at: float
    interval_s: float
    """How often it announces itself: a listener counts missed heartbeats by it."""
    targets: tuple[TargetReport, ...] = ()

    @property
    def uptime_s(self) -> float:
        return max(0.0, self.sent_at - self.started_at)


def encode_announcement(announcement: Announcement) -> bytes:
    a = announcement
    return orjson.dumps(
        {
            "v": PRESENCE_VERSION,
            "kind": a.kind,
            "id": a.id,
            "host": a.host,
            "pid": a.pid,
            "version": a.version,
            "spoken": list(a.spoken),
            "state": a.state,
            "started_at": a.started_at,
            "sent_at": a.sent_at,
            "uptime_s": round(a.uptime_s, 3),
            "interval_s": a.interval_s,
            "targets": [
                {
                    "name": t.name,
                    "concurrency": t.concurrency,
                    "in_flight": t.in_flight,
                    "last_error": t.last_error,
                    "last_error_at": t.last_error_at,
                }
                for t in a.targets
            ],
        }
    )


def decode_announcement(body: bytes) -> Announcement:
    """The announcement in `body`; `DecodeError` naming what is wrong for anything else."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"presence message is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise DecodeError(f"presence message is a {type(raw).__name__}, not an object")
    if raw.get("v") != PRESENCE_VERSION:
        found = raw.get("v")
        raise DecodeError(f"presence message of version {found!r}; this build reads {PRESENCE_VERSION}")
    try:
        return Announcement(
            kind=_choice(raw, "kind", get_args(Kind)),
            id=_text(raw, "id"),
            host=_text(raw, "host"),
            pid=_whole(raw, "pid"),
            version=_text(raw, "version"),
            spoken=tuple(_spoken(raw.get("spoken"))),
            state=_choice(raw, "state", get_args(State)),
            started_at=_seconds(raw, "started_at"),
            sent_at=_seconds(raw, "sent_at"),
            interval_s=_positive(raw, "interval_s"),
            targets=tuple(_target(i, t) for i, t in enumerate(_list(raw, "targets"))),
        )
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"presence message: {exc}") from None


def _target(i: int, raw: Any) -> TargetReport:
    if not isinstance(raw, dict):
        raise ValueError(f"targets[{i}] is not an object")
    error = raw.get("last_error")
    at = raw.get("last_error_at")
    return TargetReport(
        name=_text(raw, "name"),
        concurrency=_whole(raw, "concurrency"),
        in_flight=_whole(raw, "in_flight"),
        last_error=redact(error) if isinstance(error, str) else None,
        last_error_at=_seconds(raw, "last_error_at") if at is not None else None,
    )


def _text(raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} must be a non-empty string, got {value!r}")
    return value


def _whole(raw: Mapping[str, Any], key: str) -> int:
    value = raw.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{key} must be a whole number >= 0, got {value!r}")
    return value


def _seconds(raw: Mapping[str, Any], key: str) -> float:
    value = raw.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool) or not value >= 0:
        raise ValueError(f"{key} must be Unix seconds, got {value!r}")
    return float(value)


def _positive(raw: Mapping[str, Any], key: str) -> float:
    value = _seconds(raw, key)
    if not 0 < value < 86_400:
        raise ValueError(f"{key} must be above 0 and below a day, got {value!r}")
    return value


def _choice(raw: Mapping[str, Any], key: str, options: tuple[str, ...]) -> Any:
    value = raw.get(key)
    if value not in options:
        raise ValueError(f"{key} must be one of {', '.join(options)}, got {value!r}")
    return value


def _list(raw: Mapping[str, Any], key: str) -> list[Any]:
    value = raw.get(key, [])
    if not isinstance(value, list):
        raise ValueError(f"{key} must be a list, got {type(value).__name__}")
    return value


def _spoken(raw: Any) -> list[int]:
    if not isinstance(raw, list) or not raw or not all(isinstance(v, int) and v > 0 for v in raw):
        raise ValueError(f"spoken must be a non-empty list of wire versions, got {raw!r}")
    return raw
