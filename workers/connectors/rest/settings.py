"""A REST target's settings: `RestSettings` and `parse_rest_settings`, which validates them.

Settings (beside `name`, `type: rest`, `max_inflight`, `retry`; url, auth, timeouts, TLS and proxy are
read by `common/peers/http_settings.py`, as for a SCIM target)::

    url: https://people.example.org/api/v2       # required; templates are below it
    auth: {type: api_key, header: X-Api-Key, key: ${KEY}}   # or bearer, basic, oauth2
    error_path: error.message                    # the service's words in an error answer
    max_concurrency: 8
    rate_per_s: 20
    users:                                       # and/or groups:, the same keys
      id_path: id                                # an object's id, within the object
      attributes: {email: contact.email}         # where an attribute is read in an object; else its name
      read: {url: "/users/{target_id}", path: data}
      match: [{url: "/users?login={login}", path: items}]
      create: {method: POST, url: /users, body: {login: "{login}"}, path: data}
      update: {method: PATCH, url: "/users/{target_id}"}
      disable: {method: POST, url: "/users/{target_id}/disable"}
      delete: {url: "/users/{target_id}"}
      list: {url: /users, path: items, paging: {style: cursor, cursor_path: next_cursor}}
      members:                                   # groups only
        add: {method: PUT, url: "/groups/{target_id}/members/{member_id}"}
        remove: {method: DELETE, url: "/groups/{target_id}/members/{member_id}"}

A call is `method`, `url` (see `templates.py`), `body` (writes only) and `path`: where its answer holds
the object (read, create), or the list of objects (match, list), as a `jsonpath.py` path; the whole
answer when absent. A type that can be created must have `match` (so a retried create finds what the
first one made) unless its create is a PUT to the object's own URL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from common.config.validation import (
    as_list,
    as_mapping,
    check_keys,
    choice,
    integer,
    join,
    positive,
    string,
)
from common.errors import ConfigError
from common.peers.http_settings import HTTP_KEYS, HttpSettings, parse_http_settings
from workers.connectors.rest.jsonpath import JsonPath, parse_json_path
from workers.connectors.rest.templates import (
    BodyTemplate,
    UrlTemplate,
    parse_body_template,
    parse_url_template,
)

ObjectType = Literal["user", "group"]
SECTIONS: Final[dict[ObjectType, str]] = {"user": "users", "group": "groups"}
METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE")
PAGING_STYLES: Final = ("none", "offset", "page", "cursor", "link")
_KEYS: Final = (*HTTP_KEYS, "error_path", "max_concurrency", "rate_per_s", "users", "groups")
_OBJECT_KEYS: Final = (
    "id_path",
    "attributes",
    "read",
    "match",
    "create",
    "update",
    "disable",
    "delete",
    "list",
    "members",
)
_PAGING_KEYS: Final = (
    "style",
    "size",
    "size_param",
    "offset_param",
    "page_param",
    "first_page",
    "cursor_param",
    "cursor_path",
)
_METHOD: Final = {"read": "GET", "match": "GET", "list": "GET", "create": "POST", "update": "PATCH"}
_WITH_BODY: Final = ("create", "update", "disable", "add", "remove")


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    """One request: its method, URL, body (None: the attributes as they are, or nothing for a GET or a
    DELETE) and where its answer holds what it is asked for."""

    method: str
    url: UrlTemplate
    body: BodyTemplate | None = None
    path: JsonPath = field(default_factory=lambda: parse_json_path(""))

    @property
    def names(self) -> tuple[str, ...]:
        """Every placeholder of the URL and the body."""
        return tuple(dict.fromkeys((*self.url.names, *(self.body.names if self.body else ()))))


@dataclass(frozen=True, slots=True, kw_only=True)
class Paging:
    """How a listing asks for its pages; see `listing.py` for each style."""

    style: Literal["none", "offset", "page", "cursor", "link"] = "none"
    size: int = 100
    size_param: str = "limit"
    offset_param: str = "offset"
    page_param: str = "page"
    first_page: int = 1
    cursor_param: str = "cursor"
    cursor_path: JsonPath = field(default_factory=lambda: parse_json_path("next_cursor"))


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectSettings:
    """How one object type (user or group) is read and written."""

    id_path: JsonPath = field(default_factory=lambda: parse_json_path("id"))
    attributes: Mapping[str, JsonPath] = field(default_factory=dict)
    read: Call | None = None
    match: tuple[Call, ...] = ()
    create: Call | None = None
    update: Call | None = None
    disable: Call | None = None
    delete: Call | None = None
    listing: Call | None = None
    paging: Paging = field(default_factory=Paging)
    members_add: Call | None = None
    members_remove: Call | None = None

    def attribute_path(self, name: str) -> JsonPath:
        """Where attribute `name` is read in an object: as configured, else a top-level key of its name."""
        return self.attributes.get(name) or parse_json_path(name)

    def calls(self) -> dict[str, Call]:
        """Every call configured, by its setting's name (`match[1]`, `members.add`)."""
        found = {name: getattr(self, name) for name in ("read", "create", "update", "disable", "delete")}
        found["list"] = self.listing
        found |= {f"match[{i}]": call for i, call in enumerate(self.match)}
        found |= {"members.add": self.members_add, "members.remove": self.members_remove}
        return {name: call for name, call in found.items() if call is not None}


@dataclass(frozen=True, slots=True, kw_only=True)
class RestSettings:
    """A validated REST target (see the module docstring for each key); its repr hides the secrets."""

    http: HttpSettings
    users: ObjectSettings | None = None
    groups: ObjectSettings | None = None
    error_path: JsonPath | None = None
    max_concurrency: int = 8
    rate_per_s: float | None = None
    path: str = field(default="", compare=False)

    @property
    def url(self) -> str:
        return self.http.url

    def of(self, kind: str) -> ObjectSettings | None:
        return self.users if kind == "user" else self.groups if kind == "group" else None


def parse_rest_settings(path: str, raw: Mapping[str, Any], *, base_dir: Path | None = None) -> RestSettings:
    """Validate a REST target's own settings (found at `path`), or raise `ConfigError` naming the key."""
    raw = as_mapping(path, raw)
    check_keys(path, raw, _KEYS, required=("url",))
    http = parse_http_settings(path, raw, base_dir=base_dir)

    def at(key: str) -> str:
        return join(path, key)

    if raw.get("users") is None and raw.get("groups") is None:
        raise ConfigError(path, "describes neither users nor groups", "add `users:` or `groups:`")
    rate = raw.get("rate_per_s")
    error_path = raw.get("error_path")
    return RestSettings(
        http=http,
        users=_object(at("users"), raw["users"], "user") if raw.get("users") is not None else None,
        groups=_object(at("groups"), raw["groups"], "group") if raw.get("groups") is not None else None,
        error_path=None if error_path is None else _json_path(at("error_path"), error_path),
        max_concurrency=integer(at("max_concurrency"), raw.get("max_concurrency", 8), minimum=1),
        rate_per_s=None if rate is None else positive(at("rate_per_s"), rate),
        path=path,
    )


def _object(path: str, raw: Any, kind: ObjectType) -> ObjectSettings:
    raw = as_mapping(path, raw)
    check_keys(path, raw, _OBJECT_KEYS if kind == "group" else _OBJECT_KEYS[:-1])

    def at(key: str) -> str:
        return join(path, key)

    def call(key: str, raw_call: Any, where: str | None = None) -> Call:
        return _call(where or at(key), raw_call, key)

    attributes = as_mapping(at("attributes"), raw.get("attributes") or {})
    matches = as_list(at("match"), raw.get("match") or [])
    listing = as_mapping(at("list"), raw["list"]) if raw.get("list") is not None else None
    members = as_mapping(at("members"), raw.get("members") or {})
    if members:
        check_keys(at("members"), members, ("add", "remove"))
    settings = ObjectSettings(
        id_path=_json_path(at("id_path"), raw.get("id_path", "id")),
        attributes={
            string(at("attributes"), name): _json_path(join(at("attributes"), name), where)
            for name, where in attributes.items()
        },
        match=tuple(call("match", m, join(at("match"), i)) for i, m in enumerate(matches)),
        paging=_paging(join(at("list"), "paging"), (listing or {}).get("paging")),
        members_add=call("add", members["add"], join(at("members"), "add")) if members.get("add") else None,
        members_remove=(
            call("remove", members["remove"], join(at("members"), "remove"))
            if members.get("remove")
            else None
        ),
        listing=call("list", listing) if listing is not None else None,
        **{
            key: call(key, raw[key])
            for key in ("read", "create", "update", "disable", "delete")
            if raw.get(key) is not None
        },
    )
    if settings.create is not None and not settings.match and settings.create.method != "PUT":
        raise ConfigError(
            at("match"),
            "is required when objects are created with a POST",
            "give a search that finds an object by a unique attribute, so that a retried create "
            'finds what the first one made, e.g. [{url: "/users?login={login}", path: items}]',
        )
    for name, spec in settings.calls().items():
        if "member_id" in spec.names and not name.startswith("members."):
            raise ConfigError(at(name), "{member_id} stands only in members.add and members.remove")
    return settings


def _call(path: str, raw: Any, kind: str) -> Call:
    if isinstance(raw, str):
        raw = {"url": raw}
    raw = as_mapping(path, raw)
    with_body = kind in _WITH_BODY
    keys = (
        "method",
        "url",
        *(("body",) if with_body else ()),
        "path",
        *(("paging",) if kind == "list" else ()),
    )
    check_keys(path, raw, keys, required=("url",))
    method = _METHOD.get(kind, "DELETE" if kind in ("delete", "remove") else "POST")
    method = choice(join(path, "method"), str(raw.get("method", method)).upper(), METHODS)
    if kind in ("read", "match", "list") and method != "GET":
        raise ConfigError(join(path, "method"), f"{kind} must be a GET, not {method}", "remove `method:`")
    try:
        url = parse_url_template(string(join(path, "url"), raw["url"]))
    except ValueError as exc:
        raise ConfigError(join(path, "url"), str(exc)) from None
    body = None
    if raw.get("body") is not None:
        try:
            body = parse_body_template(raw["body"])
        except ValueError as exc:
            raise ConfigError(join(path, "body"), str(exc)) from None
    return Call(method=method, url=url, body=body, path=_json_path(join(path, "path"), raw.get("path", "")))


def _paging(path: str, raw: Any) -> Paging:
    if raw is None:
        return Paging()
    raw = as_mapping(path, raw)
    check_keys(path, raw, _PAGING_KEYS, required=("style",))
    defaults = Paging()

    def name(key: str) -> str:
        return string(join(path, key), raw.get(key, getattr(defaults, key)))

    return Paging(
        style=choice(join(path, "style"), raw["style"], PAGING_STYLES),  # type: ignore[arg-type]
        size=integer(join(path, "size"), raw.get("size", defaults.size), minimum=1),
        size_param=name("size_param"),
        offset_param=name("offset_param"),
        page_param=name("page_param"),
        first_page=integer(join(path, "first_page"), raw.get("first_page", defaults.first_page), minimum=0),
        cursor_param=name("cursor_param"),
        cursor_path=_json_path(join(path, "cursor_path"), raw.get("cursor_path", "next_cursor")),
    )


def _json_path(path: str, raw: Any) -> JsonPath:
    if not isinstance(raw, str):
        raise ConfigError(path, f"expected a JSON path such as data.id, got {type(raw).__name__}")
    try:
        return parse_json_path(raw)
    except ValueError as exc:
        raise ConfigError(path, str(exc)) from None
