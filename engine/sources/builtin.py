"""Roster's own source types, declared as `roster.sources` entry points in pyproject.toml."""

from __future__ import annotations

from common.plugins import API_VERSION
from engine.sources.checks import check_ldap_source, check_scim_source, check_sql_source
from engine.sources.file import FileSource, parse_file_source
from engine.sources.inbound import InboundSource, parse_inbound_source
from engine.sources.ldap import LdapSource, parse_ldap_source
from engine.sources.plugin import SourcePlugin
from engine.sources.rules import RuleGroupSource, refuse_source
from engine.sources.scim import ScimSource, parse_scim_source
from engine.sources.sql import SqlSource, parse_sql_source

FILE = SourcePlugin(
    api_version=API_VERSION,
    parse=lambda path, raw, base_dir, _object_type: parse_file_source(path, raw, base_dir=base_dir),
    open=lambda settings, _since, _state: FileSource(settings),
    summary="a CSV or JSON Lines file (its suffix picks which when `type:` is left out)",
)

LDAP = SourcePlugin(
    api_version=API_VERSION,
    parse=lambda path, raw, base_dir, _object_type: parse_ldap_source(path, raw, base_dir=base_dir),
    open=lambda settings, since, _state: LdapSource(settings, since=since),
    incremental=lambda settings: (settings.incremental, settings.full_import_every_s),
    check=check_ldap_source,
    summary="entries of an LDAP directory (or Active Directory), incrementally by modifyTimestamp (or USN)",
)

SCIM = SourcePlugin(
    api_version=API_VERSION,
    parse=lambda path, raw, base_dir, object_type: parse_scim_source(
        path, raw, base_dir=base_dir, object_type=object_type
    ),
    open=lambda settings, _since, _state: ScimSource(settings),
    check=check_scim_source,
    summary="Users or Groups read from a SCIM 2.0 service",
)

SCIM_INBOUND = SourcePlugin(
    api_version=API_VERSION,
    parse=lambda path, raw, _base_dir, object_type: parse_inbound_source(path, raw, object_type=object_type),
    open=lambda settings, _since, state: InboundSource(settings, state),
    summary="what identity providers push into Roster's inbound SCIM service",
)

SQL = SourcePlugin(
    api_version=API_VERSION,
    parse=lambda path, raw, base_dir, _object_type: parse_sql_source(path, raw, base_dir=base_dir),
    open=lambda settings, since, _state: SqlSource(settings, since=since),
    incremental=lambda settings: (settings.incremental, settings.full_import_every_s),
    check=check_sql_source,
    summary="rows of a table, view or query in any SQLAlchemy database, incrementally by a watermark",
)

RULES = SourcePlugin(
    api_version=API_VERSION,
    parse=lambda path, raw, _base_dir, _object_type: refuse_source(path, raw),
    open=lambda settings, _since, state: RuleGroupSource(settings, state),
    summary="groups by rule: computed from the people of a group job's member job (`members.rule`)",
)
