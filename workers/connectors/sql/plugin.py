"""The `sql` connector type: one table in SQLite or PostgreSQL."""

from __future__ import annotations

from common.plugins import API_VERSION
from workers.connectors.plugin import ConnectorPlugin
from workers.connectors.sql.check import check_sql_target, unmapped_attributes
from workers.connectors.sql.connector import SqlConnector
from workers.connectors.sql.settings import parse_sql_settings

PLUGIN = ConnectorPlugin(
    api_version=API_VERSION,
    parse=lambda path, raw, base_dir: parse_sql_settings(path, raw, base_dir=base_dir),
    build=SqlConnector,
    problems=lambda _path, settings, use: unmapped_attributes(settings, use.attributes, use.matched),
    check=lambda _path, settings, use: check_sql_target(settings, use.attributes),
    summary="rows of one table in SQLite or PostgreSQL",
)
