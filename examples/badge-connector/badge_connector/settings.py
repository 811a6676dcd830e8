"""The badge target's settings, checked with Roster's validation helpers so that errors name the key."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from roster.connector import ConfigError, check_keys, join, positive, string

KEYS = ("url", "token_env", "timeout_s")


@dataclass(frozen=True, slots=True)
class BadgeSettings:
    url: str
    """The service's base URL, e.g. `https://badges.example.com/api`."""
    token: str = field(repr=False)
    """The bearer token, read from the environment variable `token_env` names (never from the file)."""
    timeout_s: float = 10.0


def parse_settings(path: str, raw: Mapping[str, Any], base_dir: Path) -> BadgeSettings:
    check_keys(path, raw, KEYS, required=("url", "token_env"))
    url = string(join(path, "url"), raw["url"]).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(
            join(path, "url"), f"must be an http(s) URL, got {url!r}", "e.g. https://badges/api"
        )
    variable = string(join(path, "token_env"), raw["token_env"])
    token = os.environ.get(variable)
    if not token:
        problem = f"the environment variable {variable} is not set"
        raise ConfigError(join(path, "token_env"), problem, f"export {variable}=<the token>")
    timeout_s = positive(join(path, "timeout_s"), raw.get("timeout_s", 10.0))
    return BadgeSettings(url=url, token=token, timeout_s=timeout_s)
