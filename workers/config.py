"""The workers' configuration: targets, their connector settings (with credentials), limits and retries.

Each connector validates its own settings; this module knows only the keys every target has and which
connector type builds which connector. The engine never reads this section.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.config.problems import Parts
from common.config.validation import (
    as_list,
    as_mapping,
    check_keys,
    choice,
    integer,
    join,
    number,
    string,
    unique_names,
)
from common.config.yamlfile import load_yaml
from common.errors import ConfigError
from workers.connectors.base import Connector
from workers.connectors.ldap.connector import LdapConnector
from workers.connectors.ldap.settings import parse_ldap_settings
from workers.connectors.null import NullConnector
from workers.connectors.rest.connector import RestConnector
from workers.connectors.rest.settings import parse_rest_settings
from workers.connectors.scim.connector import ScimConnector
from workers.connectors.scim.settings import parse_scim_settings
from workers.connectors.sql.connector import SqlConnector
from workers.connectors.sql.settings import parse_sql_settings
from workers.retry import RetryPolicy
from workers.worker import TargetRuntime

COMMON_KEYS = ("name", "type", "max_inflight", "retry")
RETRY_KEYS = ("tiers", "first_delay_ms", "multiplier", "jitter")
WORKER_SECTIONS = ("targets", "workers", "jobs", "engine", "broker", "inbound")


@dataclass(frozen=True, slots=True)
class ConnectorKind:
    """How one connector type reads its settings and builds a connector from them."""

    parse: Callable[[str, Mapping[str, Any], Path], Any]
    build: Callable[[str, Any], Connector]


def _parse_null(path: str, raw: Mapping[str, Any], base_dir: Path) -> None:
    check_keys(path, raw, ())


CONNECTOR_KINDS: dict[str, ConnectorKind] = {
    "sql": ConnectorKind(
        parse=lambda path, raw, base_dir: parse_sql_settings(path, raw, base_dir=base_dir),
        build=SqlConnector,
    ),
    "scim": ConnectorKind(
        parse=lambda path, raw, base_dir: parse_scim_settings(path, raw, base_dir=base_dir),
        build=ScimConnector,
    ),
    "ldap": ConnectorKind(
        parse=lambda path, raw, base_dir: parse_ldap_settings(path, raw, base_dir=base_dir),
        build=LdapConnector,
    ),
    "rest": ConnectorKind(
        parse=lambda path, raw, base_dir: parse_rest_settings(path, raw, base_dir=base_dir),
        build=RestConnector,
    ),
    "noop": ConnectorKind(parse=_parse_null, build=lambda name, _settings: NullConnector()),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetConfig:
    name: str
    type: str
    settings: Any
    max_inflight: int
    retry: RetryPolicy
    path: str = field(default="", compare=False)
    """Where the target was read from (`targets[0]`), to name it in errors found later."""

    def runtime(self) -> TargetRuntime:
        connector = CONNECTOR_KINDS[self.type].build(self.name, self.settings)
        return TargetRuntime(
            name=self.name, connector=connector, max_inflight=self.max_inflight, retry=self.retry
        )


def load_targets(path: Path, *, environ: Mapping[str, str] | None = None) -> tuple[TargetConfig, ...]:
    return parse_targets(load_yaml(path, environ=environ), base_dir=path.absolute().parent)


def parse_targets(raw: Mapping[str, Any], *, base_dir: Path) -> tuple[TargetConfig, ...]:
    """Every target; when `common.config.problems` collects, each is checked on its own."""
    parts = Parts()
    parts(lambda: check_keys("", raw, WORKER_SECTIONS, required=("targets",)))
    if raw.get("targets") is None:
        parts.done()
    items = as_list("targets", raw["targets"])
    parsed: list[TargetConfig | None] = [None] * len(items)
    for i, target in parts.each(items, lambda i, item: (i, parse_target(join("targets", i), item, base_dir))):
        parsed[i] = target
    parts(lambda: unique_names("targets", [t.name if t else None for t in parsed], "target"))
    # Outside `collecting()` the first error went up already; inside, the targets that could be read.
    return tuple(target for target in parsed if target is not None)


def parse_target(path: str, raw: Any, base_dir: Path) -> TargetConfig:
    raw = as_mapping(path, raw)
    for key in ("name", "type"):
        if raw.get(key) is None:
            raise ConfigError(join(path, key), "is required", f"add `{key}:` to the target")
    kind = choice(join(path, "type"), raw["type"], CONNECTOR_KINDS)
    own = {k: v for k, v in raw.items() if k not in COMMON_KEYS}
    return TargetConfig(
        name=string(join(path, "name"), raw["name"]),
        type=kind,
        settings=CONNECTOR_KINDS[kind].parse(path, own, base_dir),
        max_inflight=integer(join(path, "max_inflight"), raw.get("max_inflight", 4), minimum=1),
        retry=parse_retry(join(path, "retry"), raw.get("retry") or {}),
        path=path,
    )


def parse_retry(path: str, raw: Any) -> RetryPolicy:
    raw = as_mapping(path, raw)
    check_keys(path, raw, RETRY_KEYS)
    defaults = RetryPolicy()
    jitter = number(join(path, "jitter"), raw.get("jitter", defaults.jitter), minimum=0)
    if jitter >= 1:
        raise ConfigError(
            join(path, "jitter"), f"must be below 1, got {jitter}", "0.2 spreads delays by +/-20%"
        )
    return RetryPolicy(
        tiers=integer(join(path, "tiers"), raw.get("tiers", defaults.tiers), minimum=0),
        first_delay_ms=integer(
            join(path, "first_delay_ms"), raw.get("first_delay_ms", defaults.first_delay_ms), minimum=0
        ),
        multiplier=number(join(path, "multiplier"), raw.get("multiplier", defaults.multiplier), minimum=1),
        jitter=jitter,
    )
