"""A Roster connector for the badge system, an in-house REST service.

Written only against Roster's public API (`roster.connector`), as any connector outside Roster is; Roster
finds it by the `roster.connectors` entry point in pyproject.toml, as `type: badge`.
"""

from __future__ import annotations

from roster.connector import API_VERSION, ConnectorPlugin

from badge_connector.connector import BadgeConnector
from badge_connector.settings import parse_settings

PLUGIN = ConnectorPlugin(
    api_version=API_VERSION,
    parse=parse_settings,
    build=BadgeConnector,
    summary="people in the badge system's REST API",
)
