"""The `noop` connector type: a target that stores nothing (benchmarks, dry wiring)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from common.config.validation import check_keys
from common.plugins import API_VERSION
from workers.connectors.null import NullConnector
from workers.connectors.plugin import ConnectorPlugin


def _parse(path: str, raw: Mapping[str, Any], base_dir: Path) -> None:
    check_keys(path, raw, ())


PLUGIN = ConnectorPlugin(
    api_version=API_VERSION,
    parse=_parse,
    build=lambda name, _settings: NullConnector(name),
    summary="applies nothing and reports every operation applied",
)
