"""The console's templates: Jinja2 with autoescaping on, assets named with their content's hash so a
browser never runs a stale script after an upgrade."""

from __future__ import annotations

import datetime
import hashlib
from functools import cache
from importlib import resources
from typing import Any

import jinja2
from aiohttp import web

STATIC = resources.files(__package__) / "static"


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader(__package__, "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
    env.globals["static"] = static_url
    return env


def page(template: str, status: int = 200, **context: Any) -> web.Response:
    html = environment().get_template(template).render(**context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def message(
    status: int, heading: str, text: str, *, error: bool = True, back: str | None = None, **context: Any
) -> web.Response:
    """A page saying one thing: an outcome, or why a request was refused."""
    context.setdefault("person", None)
    return page("message.html", status=status, heading=heading, text=text, error=error, back=back, **context)


def when(value: float | str | None) -> str:
    """A Unix time or an ISO date-time as the reader's UTC wall clock, to the second."""
    if value is None:
        return "never"
    if isinstance(value, str):
        moment = datetime.datetime.fromisoformat(value)
    else:
        moment = datetime.datetime.fromtimestamp(value, datetime.UTC)
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@cache
def static_url(name: str) -> str:
    digest = hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]
    return f"/ui/static/{name}?v={digest}"


def static_file(name: str) -> bytes | None:
    """An asset's bytes, or None for a name that is not one of ours (no path leaves the folder)."""
    if "/" in name or name.startswith(".") or not (STATIC / name).is_file():
        return None
    return (STATIC / name).read_bytes()
