"""The `scim` connector type: a SCIM 2.0 service's Users and Groups."""

from __future__ import annotations

from common.plugins import API_VERSION
from workers.connectors.plugin import ConnectorPlugin
from workers.connectors.scim.check import check_scim_target, scim_path_problems
from workers.connectors.scim.connector import ScimConnector
from workers.connectors.scim.settings import parse_scim_settings

PLUGIN = ConnectorPlugin(
    api_version=API_VERSION,
    parse=lambda path, raw, base_dir: parse_scim_settings(path, raw, base_dir=base_dir),
    build=ScimConnector,
    problems=lambda _path, _settings, use: scim_path_problems(use.sent),
    check=lambda path, settings, use: check_scim_target(path, settings, use.sent or {"user": {}}),
    takes_proxy=True,
    summary="Users and Groups of a SCIM 2.0 service (RFC 7643, RFC 7644)",
)
