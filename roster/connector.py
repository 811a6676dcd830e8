"""The connector API: what a connector type implements, and what Roster gives it to do so.

A connector applies batches of operations to one target (see docs/connectors.md for the whole contract).
A package offers one by an entry point in the `roster.connectors` group naming a `ConnectorPlugin`:

    [project.entry-points."roster.connectors"]
    badge = "badge_connector:PLUGIN"

Everything a connector needs is imported from here; the names below are the published interface of
`API_VERSION`, and the rest of Roster's modules are internal.
"""

from __future__ import annotations

from common.config.validation import (
    as_list,
    as_mapping,
    boolean,
    check_keys,
    choice,
    integer,
    join,
    number,
    positive,
    string,
)
from common.errors import AuthError, ConfigError, ConnectorError, PermanentError, TransientError
from common.plugins import API_VERSION
from queues.contracts import Operation
from workers.connectors.base import Applied, AsyncContextConnector, Connector, Lister, Outcome
from workers.connectors.plugin import ConnectorPlugin, TargetUse
from workers.limits import Gate

__all__ = [
    "API_VERSION",
    "Applied",
    "AsyncContextConnector",
    "AuthError",
    "ConfigError",
    "Connector",
    "ConnectorError",
    "ConnectorPlugin",
    "Gate",
    "Lister",
    "Operation",
    "Outcome",
    "PermanentError",
    "TargetUse",
    "TransientError",
    "as_list",
    "as_mapping",
    "boolean",
    "check_keys",
    "choice",
    "integer",
    "join",
    "number",
    "positive",
    "string",
]
