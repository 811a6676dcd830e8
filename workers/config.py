"""The workers' configuration: targets, their connector settings (with credentials), limits and retries.

Each connector validates its own settings; this module knows only the keys every target has, and finds
each target's connector type among those installed (`workers.connectors.plugin`). The engine never
reads this section.

A top-level `proxy:` is the worker's outbound HTTP proxy: every target of a type that reaches its
peer over HTTP (`ConnectorPlugin.takes_proxy`: scim, rest) uses it unless the target sets its own
`proxy:`, or its URL's host is one that `NO_PROXY` lists. Without either, such a target follows
`HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` from the environment (unless `trust_env: false`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.request import proxy_bypass

from yarl import URL

from common.config.problems import Parts
from common.config.validation import (
    as_list,
    as_mapping,
    check_keys,
    integer,
    join,
    number,
    string,
    unique_names,
)
from common.config.yamlfile import load_yaml
from common.errors import ConfigError
from workers.connectors.plugin import ConnectorPlugin, connector_types
from workers.retry import RetryPolicy
from workers.worker import TargetRuntime

COMMON_KEYS = ("name", "type", "max_inflight", "retry")
RETRY_KEYS = ("tiers", "first_delay_ms", "multiplier", "jitter")
WORKER_SECTIONS = ("targets", "workers", "jobs", "engine", "broker", "inbound", "proxy", "notifications")


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetConfig:
    name: str
    type: str
    settings: Any
    max_inflight: int
    retry: RetryPolicy
    path: str = field(default="", compare=False)
    """Where the target was read from (`targets[0]`), to name it in errors found later."""

    @property
    def plugin(self) -> ConnectorPlugin:
        """The connector type's plugin (see `workers.connectors.plugin`)."""
        return connector_types().loaded[self.type].plugin

    def runtime(self) -> TargetRuntime:
        connector = self.plugin.build(self.name, self.settings)
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
    read = parts(lambda: parse_proxy(raw.get("proxy")))
    proxy = read if isinstance(read, str) else None  # when collecting, a wrong one is recorded already
    items = as_list("targets", raw["targets"])
    parsed: list[TargetConfig | None] = [None] * len(items)
    for i, target in parts.each(
        items, lambda i, item: (i, parse_target(join("targets", i), item, base_dir, proxy=proxy))
    ):
        parsed[i] = target
    parts(lambda: unique_names("targets", [t.name if t else None for t in parsed], "target"))
    # Outside `collecting()` the first error went up already; inside, the targets that could be read.
    return tuple(target for target in parsed if target is not None)


def parse_proxy(raw: Any) -> str | None:
    """The top-level `proxy:`: an http(s):// URL, or None."""
    if raw is None:
        return None
    proxy = string("proxy", raw)
    if URL(proxy).scheme not in ("http", "https") or not URL(proxy).host:
        raise ConfigError("proxy", "must be an http(s) URL", "e.g. http://proxy.example.org:3128")
    return proxy


def parse_target(path: str, raw: Any, base_dir: Path, *, proxy: str | None = None) -> TargetConfig:
    """One target; `proxy` is the worker's default proxy, given to a type that takes one when the
    target sets none (see the module docstring)."""
    raw = as_mapping(path, raw)
    for key in ("name", "type"):
        if raw.get(key) is None:
            raise ConfigError(join(path, key), "is required", f"add `{key}:` to the target")
    kind = raw["type"]
    plugin = connector_types().get(join(path, "type"), kind)
    own = {k: v for k, v in raw.items() if k not in COMMON_KEYS}
    if proxy is not None and plugin.takes_proxy and own.get("proxy") is None and _proxied(own.get("url")):
        own["proxy"] = proxy
    return TargetConfig(
        name=string(join(path, "name"), raw["name"]),
        type=kind,
        settings=plugin.parse(path, own, base_dir),
        max_inflight=integer(join(path, "max_inflight"), raw.get("max_inflight", 4), minimum=1),
        retry=parse_retry(join(path, "retry"), raw.get("retry") or {}),
        path=path,
    )


def _proxied(url: Any) -> bool:
    """Whether a request to `url` goes through a proxy: not when `NO_PROXY` lists its host."""
    host = URL(url).host if isinstance(url, str) else None
    return host is None or not proxy_bypass(host)


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
