"""A SCIM target checked against its service without writing: `roster validate --connect`.

The service must list the endpoint of each object type the jobs send (`GET /Users?count=1`) with the
credentials given. Each attribute the jobs send must read as a SCIM path (`scim_path_problems`, with no
connection), and when the service serves `/Schemas` (RFC 7644 §4), name an attribute (and
sub-attribute) of the resource's schema or of the extension it names. A service without `/Schemas` is
checked no further.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, Final

from common.errors import AuthError, ConfigError
from common.peers.http_settings import HttpSettings
from common.peers.scim_probe import check_scim
from common.peers.scim_schemas import ENDPOINTS, GROUP_SCHEMA, USER_SCHEMA
from common.peers.scim_transport import ScimTransport, Unanswered
from workers.connectors.scim.paths import AttrPath, parse_path
from workers.connectors.scim.settings import ScimSettings

COMMON: Final = frozenset({"id", "externalid", "meta", "schemas"})
"""Attributes of every resource that no schema lists (RFC 7643 §3.1)."""

Schemas = dict[str, list[Mapping[str, Any]]]
"""Schema URN (lower case) -> its attribute definitions."""


async def check_scim_target(
    path: str, settings: ScimSettings, sent: Mapping[str, Mapping[str, str]]
) -> list[ConfigError]:
    """The problems of the service; `sent` maps each object type to the attributes sent (attribute ->
    the path of the mapping that sends it)."""
    endpoints = sorted({ENDPOINTS["group" if kind == "group" else "user"] for kind in sent})
    problems = await check_scim(path, settings.http, endpoints)
    if problems:
        return problems
    schemas = await _schemas(settings.http)
    if schemas is None:
        return []
    for kind, attributes in sorted(sent.items()):
        core = GROUP_SCHEMA if kind == "group" else USER_SCHEMA
        for attribute, where in attributes.items():
            try:
                parsed = parse_path(attribute)
            except ValueError:
                continue  # said by `scim_path_problems`
            problems += _unknown(where, parsed, core, schemas)
    return problems


def scim_path_problems(sent: Mapping[str, Mapping[str, str]]) -> list[ConfigError]:
    """The attributes sent that do not read as SCIM paths (every operation would fail on them); needs
    no connection."""
    problems = []
    for attributes in sent.values():
        for attribute, where in attributes.items():
            try:
                parse_path(attribute)
            except ValueError as exc:
                problems.append(ConfigError(where, str(exc)))
    return problems


async def _schemas(http: HttpSettings) -> Schemas | None:
    """The service's schemas by URN, or None when it serves none that can be read."""
    async with ScimTransport(http, max_connections=1) as transport:
        try:
            answer = await transport.send("GET", "/Schemas")
        except (Unanswered, AuthError):
            return None
    body = answer.body
    resources = body.get("Resources") if isinstance(body, dict) else body
    if answer.status != 200 or not isinstance(resources, list):
        return None
    return {
        str(schema["id"]).lower(): [a for a in schema.get("attributes") or [] if isinstance(a, Mapping)]
        for schema in resources
        if isinstance(schema, Mapping) and schema.get("id")
    } or None


def _unknown(where: str, path: AttrPath, core: str, schemas: Schemas) -> list[ConfigError]:
    urn = path.schema or core
    if path.schema is None and path.name.lower() in COMMON:
        return []
    attributes = schemas.get(urn.lower())
    if attributes is None:
        fix = f"its schemas: {', '.join(sorted(schemas))}"
        return [ConfigError(where, f"the service has no schema {urn} (GET /Schemas)", fix)]
    found = _named(attributes, path.name)
    if found is None:
        names = [str(a.get("name")) for a in attributes]
        return [_missing(where, f"{urn} has no attribute {path.name!r} (GET /Schemas)", path.name, names)]
    subs = [a for a in found.get("subAttributes") or [] if isinstance(a, Mapping)]
    if path.sub is not None and subs and _named(subs, path.sub) is None:
        names = [str(a.get("name")) for a in subs]
        problem = f"{urn}: {path.name} has no sub-attribute {path.sub!r} (GET /Schemas)"
        return [_missing(where, problem, path.sub, names)]
    return []


def _named(attributes: list[Mapping[str, Any]], name: str) -> Mapping[str, Any] | None:
    """The definition of `name`; SCIM names are case-insensitive (RFC 7643 §2.1)."""
    return next((a for a in attributes if str(a.get("name", "")).lower() == name.lower()), None)


def _missing(where: str, problem: str, name: str, names: list[str]) -> ConfigError:
    close = difflib.get_close_matches(name, names, n=1)
    fix = f"did you mean {close[0]!r}?" if close else f"it has: {', '.join(names)}"
    return ConfigError(where, problem, fix)
