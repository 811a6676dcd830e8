"""The admin API's service accounts as the jobs file gives them (`engine.api_accounts`): a token from the
environment or a file, one or more roles, and every mistake named with its path."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.errors import ConfigError
from engine.api.accounts import Accounts, ApiAccount, admin_account
from engine.config import load_engine_config

JOB = """
jobs:
  - name: people
    source: {type: csv, path: people.csv, id_column: id}
    target: app
    mappings: [{target: userName, source: id, match: true}]
"""


def _config(tmp_path: Path, accounts: str, environ: dict[str, str] | None = None) -> tuple[ApiAccount, ...]:
    (tmp_path / "people.csv").write_text("id\n", encoding="utf-8")
    file = tmp_path / "roster.yaml"
    file.write_text(f"engine:\n  api_accounts:\n{accounts}{JOB}", encoding="utf-8")
    return load_engine_config(file, environ=environ or {}).api_accounts


def test_tokens_come_from_the_environment_or_a_file_and_stay_out_of_the_repr(tmp_path: Path) -> None:
    (tmp_path / "oncall.token").write_text("file-token-0123456789\n", encoding="utf-8")
    accounts = _config(
        tmp_path,
        "    - {name: grafana, token: '${GRAFANA_TOKEN}', roles: [viewer]}\n"
        "    - {name: oncall, token_file: oncall.token, roles: [viewer, operator]}\n",
        {"GRAFANA_TOKEN": "env-token-0123456789"},
    )
    assert [(a.name, a.token, a.role_names) for a in accounts] == [
        ("grafana", "env-token-0123456789", ["viewer"]),
        ("oncall", "file-token-0123456789", ["viewer", "operator"]),
    ]
    assert "token-0123456789" not in repr(accounts)


def test_a_file_without_accounts_has_none(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text("id\n", encoding="utf-8")
    (tmp_path / "roster.yaml").write_text(JOB, encoding="utf-8")
    assert load_engine_config(tmp_path / "roster.yaml").api_accounts == ()


@pytest.mark.parametrize(
    ("accounts", "path", "said"),
    [
        ("    - {name: x, token: 0123456789abcdef0, roles: [root]}\n", "roles[0]", "'root' is not a role"),
        ("    - {name: x, token: 0123456789abcdef0, roles: []}\n", "roles", "is empty"),
        ("    - {name: x, roles: [viewer]}\n", "api_accounts[0]", "needs token or token_file"),
        ("    - {name: x, token: short, roles: [viewer]}\n", "token", "shorter than 16"),
        ("    - {name: admin, token: 0123456789abcdef0, roles: [viewer]}\n", "name", "engine's own token"),
        (
            "    - {name: x, token: 0123456789abcdef0, roles: [viewer], role: viewer}\n",
            "api_accounts[0]",
            "role",
        ),
        (
            "    - {name: x, token: 0123456789abcdef0, roles: [viewer]}\n"
            "    - {name: x, token: 0123456789abcdef1, roles: [viewer]}\n",
            "api_accounts[1].name",
            "used by",
        ),
    ],
    ids=["unknown role", "no role", "no token", "weak token", "admin", "unknown key", "twice"],
)
def test_a_wrong_account_is_named_with_its_path(tmp_path: Path, accounts: str, path: str, said: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _config(tmp_path, accounts)
    assert path in caught.value.path and said in str(caught.value)
    assert "0123456789abcdef" not in str(caught.value)


def test_a_token_finds_its_own_account_and_no_other() -> None:
    accounts = Accounts(
        [
            admin_account("admin-token-0123456789"),
            ApiAccount("ci", "ci-token-0123456789", frozenset({"viewer"})),
        ]
    )
    assert accounts.find("ci-token-0123456789") == ApiAccount(
        "ci", "ci-token-0123456789", frozenset({"viewer"})
    )
    found = accounts.find("admin-token-0123456789")
    assert found is not None and (found.name, found.role_names) == (
        "admin",
        ["viewer", "operator", "approver"],
    )
    for wrong in ("", "ci-token-012345678", "ci-token-01234567890", "admin-token-0123456789 "):
        assert accounts.find(wrong) is None


def test_two_accounts_with_one_token_are_refused() -> None:
    with pytest.raises(ConfigError, match="shares its token"):
        Accounts(
            [
                admin_account("same-token-0123456789"),
                ApiAccount("ci", "same-token-0123456789", frozenset({"viewer"})),
            ]
        )
