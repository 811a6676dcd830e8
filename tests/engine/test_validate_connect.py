"""`roster validate --connect` checks the sources and targets themselves, against real peers (SQLite,
PostgreSQL, scim2-server, slapd), writes nothing, and never shows a secret."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
import yaml

from engine.cli.main import main
from tests.conftest import SCIM_TOKEN
from tests.databases import private_database
from tests.scim_server import ScimServer
from tests.slapd import ROOT_DN, SUFFIX, Slapd, target_settings

HEADER = "employee_id,given_name,title\n"
TABLE = "CREATE TABLE accounts (employee_id TEXT PRIMARY KEY, given_name TEXT, active BOOLEAN)"


def write(tmp_path: Path, target: dict[str, object], **job: object) -> Path:
    (tmp_path / "people.csv").write_text(HEADER + "1,Ann,Boss\n")
    people = {
        "name": "people",
        "source": {"type": "csv", "path": "people.csv", "id_column": "employee_id"},
        "target": "app",
        "mappings": [
            {"target": "employee_id", "source": "employee_id", "match": True},
            {"target": "given_name", "source": "given_name"},
            {"target": "title", "source": "title"},
        ],
        **job,
    }
    file = tmp_path / "jobs.yaml"
    file.write_text(yaml.safe_dump({"jobs": [people], "targets": [{"name": "app", **target}]}))
    return file


def validate(file: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(["validate", str(file), "--connect"])
    return code, capsys.readouterr().out.splitlines()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database holding `TABLE` (no title column): its URL."""
    if request.param == "sqlite":
        with sqlite3.connect(tmp_path / "accounts.db") as conn:
            conn.execute(TABLE)
        yield f"sqlite:///{tmp_path / 'accounts.db'}"
        return
    with private_database("validate") as url:

        async def create() -> None:
            conn = await asyncpg.connect(url)
            try:
                await conn.execute(TABLE)
            finally:
                await conn.close()

        asyncio.run(create())
        yield url


def sql_target(url: str, **overrides: object) -> dict[str, object]:
    return {"type": "sql", "url": url, "table": "accounts", "key_column": "employee_id"} | {
        "active_column": "active",
        **overrides,
    }


def test_a_sql_table_without_a_column_for_a_mapped_attribute_is_reported_at_the_mapping(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = validate(write(tmp_path, sql_target(database)), capsys)
    assert code == 2
    assert lines[0].startswith("error jobs[0].mappings[2].target: table 'accounts' has no column 'title'")
    assert lines[-1].startswith("1 problem(s) in ") and lines[-1].endswith("contacted: 1 target")


def test_a_sql_key_column_that_is_not_a_column_of_the_table_is_reported_with_the_near_name(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = sql_target(database, key_column="employe_id", columns={"employee_id": "employee_id"})
    mappings = [{"target": "employee_id", "source": "employee_id", "match": True}]
    code, lines = validate(write(tmp_path, target, mappings=mappings), capsys)
    assert code == 2
    assert lines[:-1] == [
        "error targets[0].key_column: table 'accounts' has no column 'employe_id' "
        "(did you mean 'employee_id'?)"
    ]


def test_a_sql_table_that_fits_the_jobs_is_ok_and_nothing_is_written(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mappings = [
        {"target": "employee_id", "source": "employee_id", "match": True},
        {"target": "given_name", "source": "given_name"},
    ]
    code, lines = validate(write(tmp_path, sql_target(database), mappings=mappings), capsys)
    assert (code, len(lines)) == (0, 1) and lines[0].startswith("ok ")


def test_a_missing_sql_table_is_reported_unless_it_is_to_be_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "empty.db"
    sqlite3.connect(database).close()
    target = sql_target(f"sqlite:///{database}", table="people")
    code, lines = validate(write(tmp_path, target), capsys)
    assert code == 2
    assert lines[0].startswith(
        f"error targets[0].table: table 'people' does not exist in sqlite+aiosqlite:///{database}"
    )
    columns = {"employee_id": "employee_id", "given_name": "given_name", "title": "title"}
    code, lines = validate(write(tmp_path, {**target, "create_table": True, "columns": columns}), capsys)
    assert code == 0, lines
    with sqlite3.connect(database) as conn:  # validate created nothing
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []


def test_a_scim_target_that_answers_with_its_credentials_is_ok(
    scim_auth_server: ScimServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = {"type": "scim", "url": scim_auth_server.url, "auth": {"type": "bearer", "token": SCIM_TOKEN}}
    mappings = [{"target": "userName", "source": "employee_id", "match": True}]
    code, lines = validate(write(tmp_path, target, mappings=mappings), capsys)
    assert code == 0, lines
    assert lines[-1].endswith("; contacted: 1 target")


def test_a_scim_target_that_refuses_the_credentials_is_reported_without_the_token(
    scim_auth_server: ScimServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = "wrong-" + SCIM_TOKEN
    target = {"type": "scim", "url": scim_auth_server.url, "auth": {"type": "bearer", "token": wrong}}
    mappings = [{"target": "userName", "source": "employee_id", "match": True}]
    code, lines = validate(write(tmp_path, target, mappings=mappings), capsys)
    assert code == 2
    assert lines[0].startswith(
        f"error targets[0].url: GET /Users on {scim_auth_server.url} refused the credentials"
    )
    assert "check `auth:`" in lines[0]
    assert not any(wrong in line or SCIM_TOKEN in line for line in lines)


def test_an_unreachable_scim_target_is_reported_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/scim/v2"
    target = {"type": "scim", "url": url, "connect_timeout_s": 2}
    mappings = [{"target": "userName", "source": "employee_id", "match": True}]
    code, lines = validate(write(tmp_path, target, mappings=mappings), capsys)
    assert code == 2
    assert lines[0].startswith(f"error targets[0].url: {url} cannot be reached: ")
    assert lines[0].endswith("(check the URL, the network and the TLS settings)")


def test_an_ldap_target_whose_users_base_is_missing_and_an_ldap_source_with_a_wrong_password_are_reported(
    slapd: Slapd, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = {"type": "ldap", **target_settings(slapd, users={"base": f"ou=staff,{SUFFIX}"})}
    wrong = "wrong-" + slapd.password
    source = {
        "type": "ldap",
        "url": slapd.url,
        "bind_dn": ROOT_DN,
        "bind_password": wrong,
        "base_dn": f"ou=people,{SUFFIX}",
        "connect_timeout_s": 2,
    }
    mappings = [{"target": "userName", "source": "uid", "match": True}]
    code, lines = validate(write(tmp_path, target, source=source, mappings=mappings), capsys)
    assert code == 2
    assert lines[0].startswith(
        f"error jobs[0].source.url: {slapd.url}: bind as {ROOT_DN} failed: invalidCredentials"
    )
    assert lines[1] == (
        f"error targets[0].users.base: 'ou=staff,{SUFFIX}' does not exist (create the entry, or fix the DN)"
    )
    assert not any(wrong in line or slapd.password in line for line in lines)


def test_an_ldap_source_and_target_that_fit_are_ok(
    slapd_factory: Callable[..., Slapd], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    slapd = slapd_factory()
    source = {
        "type": "ldap",
        "url": slapd.url,
        "bind_dn": ROOT_DN,
        "bind_password": slapd.password,
        "base_dn": f"ou=people,{SUFFIX}",
    }
    mappings = [{"target": "userName", "source": "uid", "match": True}]
    file = write(tmp_path, {"type": "ldap", **target_settings(slapd)}, source=source, mappings=mappings)
    code, lines = validate(file, capsys)
    assert code == 0, lines
    assert lines[-1].endswith("; contacted: 1 source and 1 target")


def test_a_scim_source_that_answers_is_ok(
    scim_server: ScimServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = {"type": "scim", "url": scim_server.url}
    mappings = [{"target": "userName", "source": "userName", "match": True}]
    code, lines = validate(write(tmp_path, {"type": "noop"}, source=source, mappings=mappings), capsys)
    assert code == 0, lines
    assert lines[-1].endswith("; contacted: 1 source")


def test_attributes_a_scim_target_does_not_have_are_named_from_its_schemas(
    scim_server: ScimServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mappings = [
        {"target": "userName", "source": "employee_id", "match": True},
        {"target": "externalId", "source": "employee_id"},
        {"target": "titel", "source": "title"},
        {"target": "name.givenNme", "source": "given_name"},
        {"target": "enterprise.departement", "source": "title"},
        {"target": 'emails[type eq "work"].value', "source": "given_name"},
    ]
    code, lines = validate(
        write(tmp_path, {"type": "scim", "url": scim_server.url}, mappings=mappings), capsys
    )
    assert code == 2
    user, enterprise = "urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:"
    assert lines[:-1] == [
        f"error jobs[0].mappings[2].target: {user} has no attribute 'titel' (GET /Schemas) "
        "(did you mean 'title'?)",
        f"error jobs[0].mappings[3].target: {user}: name has no sub-attribute 'givenNme' (GET /Schemas) "
        "(did you mean 'givenName'?)",
        f"error jobs[0].mappings[4].target: {enterprise}enterprise:2.0:User has no attribute 'departement' "
        "(GET /Schemas) (did you mean 'department'?)",
    ]


def test_the_scim_example_fits_scim2_server(
    scim_server: ScimServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCIM_URL", scim_server.url)
    code, lines = validate(Path(__file__).resolve().parents[2] / "examples" / "scim.yaml", capsys)
    assert code == 0, lines
    assert lines[-1].endswith("; contacted: 1 target")


def test_attributes_and_object_classes_the_directory_schema_lacks_are_named(
    slapd: Slapd, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = target_settings(slapd)
    settings["users"] = {**settings["users"], "object_classes": ["inetOrgPersn"]}
    mappings = [
        {"target": "userName", "source": "employee_id", "match": True},
        {"target": "email", "source": "given_name"},  # mail, by users.attributes
        {"target": "titel", "source": "title"},
    ]
    code, lines = validate(write(tmp_path, {"type": "ldap", **settings}, mappings=mappings), capsys)
    assert code == 2
    assert lines[:-1] == [
        "error jobs[0].mappings[2].target: the directory's schema has no attribute type 'titel' "
        "(did you mean 'title'?)",
        "error targets[0].users.object_classes[0]: the directory's schema has no object class 'inetOrgPersn' "
        "(name a class it has, such as inetOrgPerson)",
    ]


def test_a_postgresql_target_that_cannot_be_opened_is_reported_without_its_password(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "postgresql://postgres:hunter2-secret@127.0.0.1:5432/roster_validate_no_such_database"
    code, lines = validate(write(tmp_path, sql_target(url)), capsys)
    assert code == 2
    assert lines[0].startswith(
        "error targets[0].url: postgresql+asyncpg://postgres:***@127.0.0.1:5432/"
        "roster_validate_no_such_database cannot be reached: "
    )
    assert "roster_validate_no_such_database" in lines[0].partition("cannot be reached: ")[2]
    assert not any("hunter2" in line for line in lines)
