"""The worker-wide `proxy:` of a targets file: given to every HTTP target that sets none, unless
`NO_PROXY` lists its host; a target's own wins; other types never get it; a wrong one is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.errors import ConfigError
from workers.config import parse_targets

PROXY = "http://proxy.example.org:3128"
REST = {"users": {"list": {"url": "/users"}, "read": "/users/{target_id}"}}


def _targets(**top: object) -> dict[str, object]:
    return {
        **top,
        "targets": [
            {"name": "app", "type": "scim", "url": "https://app.example.org/scim/v2"},
            {"name": "own", "type": "scim", "url": "https://own.example.org/scim", "proxy": "http://p2:8080"},
            {"name": "api", "type": "rest", "url": "https://api.internal.example.org/v1", **REST},
            {
                "name": "db",
                "type": "sql",
                "url": "sqlite:///accounts.db",
                "table": "accounts",
                "key_column": "id",
                "on_disable": "delete",
            },
        ],
    }


@pytest.fixture(autouse=True)
def _no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


def test_every_http_target_without_its_own_proxy_takes_the_workers(tmp_path: Path) -> None:
    targets = {t.name: t for t in parse_targets(_targets(proxy=PROXY), base_dir=tmp_path)}
    assert targets["app"].settings.http.proxy == PROXY
    assert targets["api"].settings.http.proxy == PROXY
    assert targets["own"].settings.http.proxy == "http://p2:8080"
    assert not hasattr(targets["db"].settings, "http")


def test_no_proxy_sends_a_listed_host_direct(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", ".internal.example.org")
    targets = {t.name: t for t in parse_targets(_targets(proxy=PROXY), base_dir=tmp_path)}
    assert targets["api"].settings.http.proxy is None
    assert targets["app"].settings.http.proxy == PROXY


def test_without_a_proxy_setting_nothing_is_set(tmp_path: Path) -> None:
    targets = {t.name: t for t in parse_targets(_targets(), base_dir=tmp_path)}
    assert targets["app"].settings.http.proxy is None


def test_a_proxy_that_is_no_http_url_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^proxy: must be an http\(s\) URL"):
        parse_targets(_targets(proxy="socks5://proxy:1080"), base_dir=tmp_path)
