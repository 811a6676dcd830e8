"""`engine.console`: a wrong setting names the field and the fix; the roles a person gets from a claim;
the PKCE challenge as RFC 7636 computes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from common.errors import ConfigError
from engine.api.console.oidc import s256
from engine.api.console.settings import ConsoleSettings, parse_console

SECRET = "0123456789abcdef0123456789"


def oidc(**overrides: Any) -> dict[str, Any]:
    raw = {
        "issuer": "https://login.example.com/realms/staff",
        "client_id": "roster-console",
        "client_secret": SECRET,
        "redirect_url": "https://roster.example.com/ui/auth/callback",
        "roles": {"identity-team": ["viewer", "operator", "approver"], "helpdesk": ["viewer"]},
    }
    return {"oidc": {**raw, **overrides}}


def test_without_a_console_section_the_console_signs_in_with_tokens_on_loopback() -> None:
    assert parse_console(None, base_dir=Path(".")) == ConsoleSettings()


def test_the_roles_a_person_gets_are_those_their_claim_values_map_to() -> None:
    settings = parse_console(oidc(), base_dir=Path(".")).oidc
    assert settings is not None and "client_secret" not in repr(settings) and SECRET not in repr(settings)
    assert settings.roles_of({"groups": ["helpdesk", "payroll"]}) == {"viewer"}
    assert settings.roles_of({"groups": "identity-team"}) == {"viewer", "operator", "approver"}
    assert settings.roles_of({"groups": ["payroll"]}) == frozenset()
    assert settings.roles_of({}) == frozenset()


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"issuer": "http://login.example.com"}, "engine.console.oidc.issuer", "https"),
        (
            {"redirect_url": "https://roster.example.com/callback"},
            "engine.console.oidc.redirect_url",
            "/ui/auth/callback",
        ),
        ({"roles": {}}, "engine.console.oidc.roles", "is empty"),
        ({"roles": {"admins": ["root"]}}, "engine.console.oidc.roles.admins[0]", "not a role"),
        ({"scopes": ["profile"]}, "engine.console.oidc.scopes", "openid"),
        ({"client_secret": "changeme"}, "engine.console.oidc.client_secret", "placeholder"),
        ({"colour": "blue"}, "engine.console.oidc.colour", "unknown"),
    ],
)
def test_a_wrong_setting_names_the_field_and_the_fix(change: dict[str, Any], field: str, says: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_console(oidc(**change), base_dir=Path("."))
    assert raised.value.path == field and says in str(raised.value)
    assert SECRET not in str(raised.value)


def test_a_provider_on_this_machine_may_speak_plain_http() -> None:
    settings = parse_console(oidc(issuer="http://127.0.0.1:4593/api/oidc"), base_dir=Path(".")).oidc
    assert settings is not None and settings.issuer == "http://127.0.0.1:4593/api/oidc"


def test_the_pkce_challenge_is_rfc_7636s() -> None:
    assert (
        s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )
