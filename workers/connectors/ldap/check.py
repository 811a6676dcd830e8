"""An LDAP target checked against what the jobs send, and with `--connect` against its directory,
writing nothing (`roster validate`).

Without a connection: a DN template's `{fields}` must be attributes the jobs of that kind send (a
create without one fails), and a kind the jobs send (users, groups) must be configured. With one: the
bind, the base DN and the users' and groups' bases; and when the server's schema can be read, each
attribute sent (by its LDAP name), the object classes and the disable attribute must be in it. With
`flavor: active_directory`, a refused bind says AD's reason in words (`ad_errors`: wrong password, expired,
locked out, ...); the bind itself runs over the LDAPS or StartTLS link that initial passwords need.
"""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Mapping

from common.config.validation import join
from common.errors import ConfigError
from common.peers.ldap_probe import LdapSchema, check_ldap, read_schema
from workers.connectors.ldap.ad_errors import explain
from workers.connectors.ldap.settings import KindSettings, LdapSettings


def ldap_target_problems(
    path: str, settings: LdapSettings, sent: Mapping[str, Mapping[str, str]]
) -> list[ConfigError]:
    """What the settings cannot do with what the jobs send (`sent`: per object type, each attribute
    with the path of the mapping that sends it); needs no connection."""
    problems = []
    for kind, attributes in sorted(sent.items()):
        settings_of = _kind(settings, kind)
        if settings_of is None:
            section = f"{kind}s"
            problems.append(
                ConfigError(
                    join(path, section),
                    f"is required: {kind} jobs send to this target",
                    f"add `{section}:` with at least `dn:`",
                )
            )
            continue
        for field in settings_of.dn.fields:
            if field not in attributes:
                problem = f"{{{field}}} is no attribute the {kind} jobs of this target send"
                fix = f"map `{field}` in those jobs, or name a mapped attribute in the template"
                problems.append(ConfigError(join(path, f"{kind}s.dn"), problem, fix))
    return problems


async def check_ldap_target(
    path: str, settings: LdapSettings, sent: Mapping[str, Mapping[str, str]]
) -> list[ConfigError]:
    """The problems found on the directory (see the module docstring)."""
    bases = {join(path, "base_dn"): settings.base_dn}
    for configured in (settings.users, settings.groups):
        if configured is not None and configured.base not in bases.values():
            bases[join(path, f"{configured.kind}s.base")] = configured.base
    problems = await check_ldap(path, settings.link, bases)
    if settings.active_directory is not None:
        problems = [_worded(problem) for problem in problems]
    if any(problem.path == join(path, "url") for problem in problems):
        return problems
    schema = await asyncio.to_thread(read_schema, settings.link)
    if schema is None:
        return problems
    for kind, attributes in sorted(sent.items()):
        settings_of = _kind(settings, kind)
        if settings_of is not None:
            problems += _unknown_to_schema(path, settings, settings_of, attributes, schema)
    return problems


def _not_written(settings: LdapSettings, kind: KindSettings) -> set[str]:
    """Attributes the jobs send that are never written as attributes (AD's initial password)."""
    passwords = settings.active_directory.passwords if settings.active_directory else None
    return {passwords.attribute} if passwords and passwords.attribute and kind.kind == "user" else set()


def _unknown_to_schema(
    path: str, settings: LdapSettings, kind: KindSettings, attributes: Mapping[str, str], schema: LdapSchema
) -> list[ConfigError]:
    section = join(path, f"{kind.kind}s")
    problems = []
    for attribute, where in attributes.items():
        if attribute in _not_written(settings, kind):
            continue
        name = kind.ldap_name(attribute)
        if name.lower() not in schema.attribute_types:
            via = (
                f" (the name {join(section, 'attributes')} gives {attribute!r})" if name != attribute else ""
            )
            problems.append(
                _missing(where, f"the directory's schema has no attribute type {name!r}{via}", name, schema)
            )
    for i, object_class in enumerate(kind.object_classes):
        if object_class.lower() not in schema.object_classes:
            where = join(join(section, "object_classes"), i)
            problems.append(
                ConfigError(
                    where,
                    f"the directory's schema has no object class {object_class!r}",
                    "name a class it has, such as inetOrgPerson",
                )
            )
    if kind.disable is not None and kind.disable.attribute is not None:
        name = kind.disable.attribute
        if name.lower() not in schema.attribute_types:
            where = join(section, "disable.attribute")
            problems.append(
                _missing(where, f"the directory's schema has no attribute type {name!r}", name, schema)
            )
    return problems


def _worded(problem: ConfigError) -> ConfigError:
    reason = explain(problem.problem)
    if reason is None:
        return problem
    return ConfigError(problem.path, f"{reason} ({problem.problem})", problem.fix)


def _missing(where: str, problem: str, name: str, schema: LdapSchema) -> ConfigError:
    close = difflib.get_close_matches(name, schema.names, n=1)
    fix = f"did you mean {close[0]!r}?" if close else "map it to an attribute type the directory has"
    return ConfigError(where, problem, fix)


def _kind(settings: LdapSettings, kind: str) -> KindSettings | None:
    return settings.groups if kind == "group" else settings.users
