"""The `rest` connector type: an in-house web service, its calls described in YAML."""

from __future__ import annotations

from common.plugins import API_VERSION
from workers.connectors.plugin import ConnectorPlugin
from workers.connectors.rest.check import check_rest_target, rest_template_problems
from workers.connectors.rest.connector import RestConnector
from workers.connectors.rest.settings import parse_rest_settings

PLUGIN = ConnectorPlugin(
    api_version=API_VERSION,
    parse=lambda path, raw, base_dir: parse_rest_settings(path, raw, base_dir=base_dir),
    build=RestConnector,
    problems=lambda path, settings, use: rest_template_problems(path, settings, use.sent),
    check=lambda path, settings, use: check_rest_target(path, settings, use.sent),
    takes_proxy=True,
    summary="a web service whose calls are HTTP method, URL and JSON body templates",
)
