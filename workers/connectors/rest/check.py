"""What `roster validate` finds wrong in a REST target without a connection: a template placeholder
that names an attribute no job sends (a URL that could never be filled, a body leaf never sent: most
often a typo), or an object type the jobs send that the target does not describe. With one
(`roster validate --connect`, `roster worker --check`): a read of each object type, writing nothing."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Final
from urllib.parse import quote

from common.config.validation import join
from common.errors import AuthError, ConfigError
from common.peers.http_transport import HttpTransport, Unanswered
from workers.connectors.rest.settings import SECTIONS, Call, ObjectSettings, RestSettings
from workers.connectors.rest.templates import SPECIAL, Unfilled


def rest_template_problems(
    path: str, settings: RestSettings, sent: Mapping[str, Mapping[str, str]]
) -> list[ConfigError]:
    """Each placeholder, per object type the jobs send, that names an attribute none of them sends."""
    problems = []
    for kind, section in SECTIONS.items():
        attributes = sent.get(kind)
        spec = settings.of(kind)
        if attributes is None:
            continue
        if spec is None:
            problems.append(ConfigError(join(path, section), f"is missing: jobs send {kind}s to this target"))
            continue
        for name, call in spec.calls().items():
            for placeholder in call.names:
                if placeholder in SPECIAL or placeholder in attributes:
                    continue
                close = difflib.get_close_matches(placeholder, list(attributes), n=1)
                fix = f"did you mean {{{close[0]}}}?" if close else "map that attribute, or take it out"
                where = join(join(path, section), name)
                problems.append(ConfigError(where, f"{{{placeholder}}} names an attribute no job sends", fix))
    return problems


async def check_rest_target(
    path: str, settings: RestSettings, sent: Mapping[str, Mapping[str, str]]
) -> list[ConfigError]:
    """One GET per object type described (those the jobs send, when they are known): its `list` URL
    (asking for one object where the paging says how), else its first `match` search, else its `read`
    of an id that exists nowhere. Any answer but a refusal of the credentials or an error says the
    service is reached and reads; 404 counts for a search or a read. Writes nothing."""
    problems: list[ConfigError] = []
    async with HttpTransport(settings.http, max_connections=1) as transport:
        for kind, section in SECTIONS.items():
            spec = settings.of(kind)
            if spec is None or (sent and kind not in sent):
                continue
            probe = _probe_call(spec)
            if probe is None:
                continue
            name, call, query = probe
            problem = await _get(transport, call, query, found_or_missing=name != "list")
            if problem is not None:
                url = settings.http.url
                what, fix = problem
                where = join(join(path, section), name)
                shown = call.url.render(_filled(call))[0]
                problems.append(ConfigError(where, f"GET {shown} on {url} {what}", fix))
    return problems


_NOWHERE: Final = "roster-check-0"
"""The value a search or a read is made with: an object that exists nowhere."""


def _filled(call: Call) -> dict[str, str]:
    return dict.fromkeys(call.url.names, _NOWHERE)


def _probe_call(spec: ObjectSettings) -> tuple[str, Call, str] | None:
    """The read-only call to probe with: its setting's name, the call, and extra query."""
    if spec.listing is not None and not spec.listing.url.names:
        paging = spec.paging
        query = "" if paging.style in ("none", "link") else f"{quote(paging.size_param)}=1"
        return "list", spec.listing, query
    if spec.match:
        return "match[0]", spec.match[0], ""
    if spec.read is not None:
        return "read", spec.read, ""
    return None


async def _get(
    transport: HttpTransport, call: Call, extra: str, *, found_or_missing: bool
) -> tuple[str, str] | None:
    """None when the GET is answered as a readable service answers; else what is wrong, and the fix."""
    try:
        path, query = call.url.render(_filled(call))
    except Unfilled:
        return None
    query = "&".join(part for part in (query, extra) if part)
    try:
        answer = await transport.send("GET", path, query=query)
    except Unanswered as exc:
        fix = "check the URL, the network, TLS and the proxy"
        return f"cannot be reached: {transport.redact(exc.detail)}", fix
    except AuthError as exc:
        return f"got no token: {transport.redact(exc.message)}", "check `auth:`"
    if answer.status in (401, 403):
        return f"refused the credentials (HTTP {answer.status})", "check `auth:`"
    if answer.status == 404 and found_or_missing:
        return None
    if answer.status >= 400:
        return f"answered HTTP {answer.status}", "check the URL and the call's url"
    if answer.malformed:
        return "answered no JSON", "check the URL: it is the service's API base"
    return None
