"""`roster connector-check`: refuses to write without --yes, runs the kit through the connector's own
listing, says what it did not run and why, and leaves the target as it found it."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.cli.main import main
from tests.scim_server import ScimServer
from tests.slapd import Slapd, target_settings


def targets_file(tmp_path: Path, target: dict[str, Any]) -> Path:
    path = tmp_path / "workers.yaml"
    path.write_text(yaml.safe_dump({"targets": [{"name": "people", **target}]}))
    return path


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Path:
    database = tmp_path / "people.db"
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE people (user_name TEXT PRIMARY KEY, active BOOLEAN NOT NULL DEFAULT 1)")
        conn.execute("INSERT INTO people VALUES ('ada', 1)")
    return targets_file(
        tmp_path,
        {"type": "sql", "url": "sqlite:///people.db", "table": "people", "key_column": "user_name",
         "active_column": "active"},
    )  # fmt: skip


def rows(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path.parent / "people.db") as conn:
        return conn.execute("SELECT * FROM people").fetchall()


def test_it_refuses_to_write_without_yes(sqlite_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["connector-check", str(sqlite_file), "people"]) == 2
    out = capsys.readouterr().out
    assert "refused" in out and "--yes" in out and "roster-ck-" in out
    assert rows(sqlite_file) == [("ada", 1)]


def test_it_checks_a_sqlite_target_and_deletes_what_it_made(
    sqlite_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["connector-check", str(sqlite_file), "people", "--yes"]) == 0
    out = capsys.readouterr().out
    for passed in (
        "user/crud:create ",
        "user/crud:create-again",
        "user/crud:disable",
        "user/crud:create-disabled",
        "user/crud:update-disabled",
        "user/values:hostile",
    ):
        assert passed in out
    assert "the probe has no plant()" in out  # a listing cannot create outside the connector
    assert "9 passed, 0 failed, 8 not run" in out
    assert rows(sqlite_file) == [("ada", 1)]  # the target's own row untouched, the kit's all gone


def test_it_runs_only_the_checks_named(sqlite_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["connector-check", str(sqlite_file), "people", "--yes", "--check", "user/crud:delete"]) == 0
    assert "1 passed, 0 failed, 0 not run" in capsys.readouterr().out


def test_an_unknown_target_is_named_with_those_there(
    sqlite_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["connector-check", str(sqlite_file), "nobody", "--yes"]) == 2
    assert "has no target named 'nobody'" in capsys.readouterr().out


def test_it_checks_a_scim_target(
    tmp_path: Path, scim_server: ScimServer, capsys: pytest.CaptureFixture[str]
) -> None:
    path = targets_file(
        tmp_path, {"type": "scim", "url": scim_server.url, "timeout_s": 5, "connect_timeout_s": 2}
    )
    code = main(["connector-check", str(path), "people", "--yes"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "groups:members " in out and "error:transient-stalled" in out


def test_it_checks_an_ldap_target(tmp_path: Path, slapd: Slapd, capsys: pytest.CaptureFixture[str]) -> None:
    path = targets_file(tmp_path, {"type": "ldap", **target_settings(slapd)})
    code = main(["connector-check", str(path), "people", "--yes"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert not [dn for dn in slapd.entries() if "roster-ck-" in dn]
