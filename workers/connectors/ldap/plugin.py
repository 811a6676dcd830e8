"""The `ldap` connector type: entries and groups in an LDAP directory."""

from __future__ import annotations

from common.plugins import API_VERSION
from workers.connectors.ldap.ad_connector import ActiveDirectoryConnector
from workers.connectors.ldap.check import check_ldap_target, ldap_target_problems
from workers.connectors.ldap.connector import LdapConnector
from workers.connectors.ldap.settings import LdapSettings, parse_ldap_settings
from workers.connectors.plugin import ConnectorPlugin

PLUGIN = ConnectorPlugin(
    api_version=API_VERSION,
    parse=lambda path, raw, base_dir: parse_ldap_settings(path, raw, base_dir=base_dir),
    build=lambda name, settings: _build(name, settings),
    problems=lambda path, settings, use: ldap_target_problems(path, settings, use.sent),
    check=lambda path, settings, use: check_ldap_target(path, settings, use.sent),
    summary="entries and groups of an LDAP directory (OpenLDAP and Active Directory tested)",
)


def _build(name: str, settings: LdapSettings) -> LdapConnector:
    if settings.active_directory is not None:
        return ActiveDirectoryConnector(name, settings)
    return LdapConnector(name, settings)
