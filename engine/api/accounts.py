"""The admin API's service accounts: a name, a bearer token and the roles it holds.

    engine:
      api_accounts:
        - {name: grafana, token: ${GRAFANA_ROSTER_TOKEN}, roles: [viewer]}
        - {name: oncall, token_file: /run/secrets/oncall, roles: [viewer, operator]}
        - {name: change-board, token_file: /run/secrets/cab, roles: [viewer, approver]}

Three roles: `viewer` reads (status, cycles, logs, the audit trail), `operator` acts (trigger, pause,
resume, restart, reset, reconcile, provision now), `approver` approves or rejects what was held. The
engine's own token (ROSTER_API_TOKEN, `--api-token-file`, or the generated `api-token`) is the account
`admin`, which holds all three, so automation that used it goes on as before. Tokens are compared in
constant time against every account, and are never logged nor shown in a repr.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from common.config.secrets import secret
from common.config.validation import as_list, as_mapping, check_keys, join, string, unique_names
from common.errors import ConfigError

Role = Literal["viewer", "operator", "approver"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "approver")
ADMIN = "admin"
"""The account of the engine's own API token, which holds every role."""
ACCOUNT_KEYS = ("name", "token", "token_file", "roles")


@dataclass(frozen=True, slots=True)
class ApiAccount:
    """A service account of the API: its name, its token (kept out of the repr) and its roles."""

    name: str
    token: str = field(repr=False)
    roles: frozenset[Role]

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("an API account needs a name")
        if not self.token:
            raise ValueError(f"the API account {self.name!r} needs a token")
        unknown = sorted(set(self.roles) - set(ROLES))
        if unknown or not self.roles:
            raise ValueError(f"the API account {self.name!r} has no roles, or unknown ones: {unknown}")

    def holds(self, role: Role) -> bool:
        return role in self.roles

    @property
    def role_names(self) -> list[str]:
        """Its roles, in the order of `ROLES`."""
        return [role for role in ROLES if role in self.roles]


class Accounts:
    """Every account the API knows, looked up by the token presented."""

    def __init__(self, accounts: Iterable[ApiAccount]) -> None:
        self._accounts = tuple(accounts)
        names = [a.name for a in self._accounts]
        if len(set(names)) != len(names):
            raise ValueError("two API accounts have one name")
        tokens = [a.token.encode() for a in self._accounts]
        for i, token in enumerate(tokens):
            if any(hmac.compare_digest(token, other) for other in tokens[i + 1 :]):
                raise ConfigError(
                    "engine.api_accounts",
                    f"the account {names[i]!r} shares its token with another (or with ROSTER_API_TOKEN)",
                    "give each account a token of its own",
                )

    def __iter__(self) -> Iterator[ApiAccount]:
        return iter(self._accounts)

    def find(self, presented: str) -> ApiAccount | None:
        """The account whose token was presented, if any: every token is compared (in constant time
        each), whichever matches, so the time taken does not tell which one it was."""
        given = presented.encode("utf-8", "replace")
        found = None
        for account in self._accounts:
            if hmac.compare_digest(given, account.token.encode()):
                found = account
        return found


def admin_account(token: str) -> ApiAccount:
    """The engine's own token as the account `admin`, with every role."""
    return ApiAccount(ADMIN, token, frozenset(ROLES))


def parse_api_accounts(raw: Any, *, base_dir: Path) -> tuple[ApiAccount, ...]:
    """The `engine.api_accounts` list (none when absent)."""
    path = "engine.api_accounts"
    if raw is None:
        return ()
    accounts = tuple(_account(join(path, i), item, base_dir) for i, item in enumerate(as_list(path, raw)))
    unique_names(path, [a.name for a in accounts], "API account")
    return accounts


def _account(path: str, raw: Any, base_dir: Path) -> ApiAccount:
    item = as_mapping(path, raw)
    check_keys(path, item, ACCOUNT_KEYS, required=("name", "roles"))
    name = string(join(path, "name"), item["name"])
    if name == ADMIN:
        raise ConfigError(
            join(path, "name"),
            f"{ADMIN!r} is the account of the engine's own token (ROSTER_API_TOKEN), with every role",
            "give this account another name",
        )
    token = secret(path, item, "token", base_dir)
    return ApiAccount(name, token, parse_roles(join(path, "roles"), item["roles"]))


def parse_roles(path: str, raw: Any) -> frozenset[Role]:
    roles = [string(join(path, i), role) for i, role in enumerate(as_list(path, raw))]
    if not roles:
        raise ConfigError(path, "is empty", f"give one or more of: {', '.join(ROLES)}")
    for i, role in enumerate(roles):
        if role not in ROLES:
            raise ConfigError(join(path, i), f"{role!r} is not a role", f"roles: {', '.join(ROLES)}")
    return frozenset(cast(Sequence[Role], roles))
