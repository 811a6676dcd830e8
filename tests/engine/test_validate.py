"""`roster validate` says every problem of a file, each with its path and fix, and checks the columns a job
reads against its source file; it contacts nothing without `--connect`, and `roster run` still refuses a bad
file at its first error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from common.config.problems import Reported
from common.errors import ConfigError
from engine.cli.embedded import load_both
from engine.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
HEADER = "employee_id,given_name,family_name,title,department\n"


def job(**overrides: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "name": "people",
        "source": {"type": "csv", "path": "people.csv", "id_column": "employee_id"},
        "target": "db",
        "mappings": [
            {"target": "id", "source": "employee_id", "match": True},
            {"target": "title", "source": "title"},
        ],
    }
    entry.update(overrides)
    return entry


def write(tmp_path: Path, *jobs: dict[str, object], targets: list[dict[str, object]] | None = None) -> Path:
    (tmp_path / "people.csv").write_text(HEADER + "1,Ann,Lee,Boss,IT\n")
    file = tmp_path / "jobs.yaml"
    file.write_text(
        yaml.safe_dump({"jobs": list(jobs), "targets": targets or [{"name": "db", "type": "noop"}]})
    )
    return file


def validate(file: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[int, list[str]]:
    code = main(["validate", str(file), *flags])
    return code, capsys.readouterr().out.splitlines()


def test_a_mapped_column_that_is_not_in_the_csv_header_is_refused_with_the_near_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mappings = [
        {"target": "id", "source": "employee_id", "match": True},
        {"target": "title", "source": "titel"},
    ]
    code, lines = validate(write(tmp_path, job(mappings=mappings)), capsys)
    assert code == 2
    assert lines[0] == (
        f"error jobs[0].mappings[1].source: column 'titel' is not in the header of {tmp_path / 'people.csv'}"
        " (did you mean 'title'?)"
    )
    assert lines[-1].startswith("1 problem(s) in ")


def test_a_date_column_that_is_not_in_the_csv_header_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Read from no column, a start date would be empty for everyone: every joiner enabled at once."""
    code, lines = validate(write(tmp_path, job(dates={"starts_on": "start_date", "prehire_days": 7})), capsys)
    assert code == 2
    header = tmp_path / "people.csv"
    assert lines[0].startswith(
        f"error jobs[0].dates.starts_on: column 'start_date' is not in the header of {header}"
    )


def test_a_source_file_that_does_not_exist_is_named_with_the_path_as_resolved(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = {"type": "csv", "path": "exports/people.csv", "id_column": "employee_id"}
    code, lines = validate(write(tmp_path, job(source=source)), capsys)
    assert code == 2
    assert lines[0].startswith(
        f"error jobs[0].source.path: no such file: {tmp_path / 'exports' / 'people.csv'} ("
    )


def test_an_id_column_that_is_not_a_column_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = {"type": "csv", "path": "people.csv", "id_column": "employe_id"}
    code, lines = validate(write(tmp_path, job(source=source)), capsys)
    assert code == 2
    assert lines[0].startswith("error jobs[0].source.id_column: column 'employe_id' is not in the header")
    assert lines[0].endswith("(did you mean 'employee_id'?)")


def test_the_columns_of_expressions_scoping_and_members_are_checked_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    people = job(
        mappings=[
            {"target": "id", "source": "employee_id", "match": True},
            {"target": "name", "expression": 'Join(" ", [given_name], [familyname])'},
        ],
        scoping=[{"clauses": [{"attribute": "departmnt", "operator": "EQUALS", "value": "IT"}]}],
    )
    (tmp_path / "teams.csv").write_text("team_id,name,members\nt1,Sales,1\n")
    teams = {
        "name": "teams",
        "source": {"type": "csv", "path": "teams.csv", "id_column": "team_id"},
        "target": "db",
        "object_type": "group",
        "members": {"source": "member", "job": "people"},
        "mappings": [{"target": "displayName", "source": "name", "match": True}],
    }
    code, lines = validate(write(tmp_path, people, teams), capsys)
    assert code == 2
    assert [line.split(" is not in ")[0] for line in lines[:-1]] == [
        "error jobs[0].mappings[1].expression: [familyname]",
        "error jobs[0].scoping[0].clauses[0].attribute: column 'departmnt'",
        "error jobs[1].members.source: column 'member'",
    ]
    assert "(did you mean 'family_name'?)" in lines[0] and "(did you mean 'department'?)" in lines[1]


def test_every_problem_of_a_file_is_reported_each_with_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = job(
        name="broken",
        mappings=[
            {"target": "id", "source": "employee_id", "match": True},
            {"target": "mail", "sorce": "email"},
            {"target": "name", "expression": "Jion([given_name])"},
            {"target": "title", "source": "titel"},
        ],
    )
    typo = job(
        name="typo", mappings=[{"target": "id", "source": "employee_id"}, {"target": "t", "source": "titel"}]
    )
    elsewhere = job(name="elsewhere", target="dbb", deprovision="remove")
    targets = [{"name": "db", "type": "noop"}, {"name": "db2", "type": "sq1"}]
    code, lines = validate(write(tmp_path, broken, typo, elsewhere, targets=targets), capsys)
    assert code == 2
    paths = [line.removeprefix("error ").split(":")[0] for line in lines[:-1]]
    assert paths == [
        "jobs[0].mappings[1].sorce",
        "jobs[0].mappings[2].expression",
        "jobs[0].mappings[3].source",
        "jobs[1].mappings[1].source",
        "jobs[2].deprovision",
        "targets[1].type",
    ]
    assert "did you mean 'source'?" in lines[0] and "unknown function 'Jion'" in lines[1]
    assert lines[-1].startswith("6 problem(s) in ")


def test_a_job_naming_a_missing_target_is_reported_beside_the_other_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = job(
        name="b", mappings=[{"target": "id", "source": "employee_id"}, {"target": "t", "source": "titel"}]
    )
    code, lines = validate(write(tmp_path, job(name="a", target="dbb"), typo), capsys)
    assert code == 2
    assert lines[0].startswith("error jobs[0].target: no target named 'dbb'")
    assert lines[1].startswith("error jobs[1].mappings[1].source: column 'titel'")


def test_roster_run_still_refuses_a_bad_file_at_its_first_error(tmp_path: Path) -> None:
    broken = job(mappings=[{"target": "id", "sorce": "employee_id"}, {"target": "m", "expression": "Jion()"}])
    file = write(tmp_path, broken, job(name="b", target="dbb"))
    with pytest.raises(ConfigError) as caught:
        load_both(file)
    assert not isinstance(caught.value, Reported)
    assert caught.value.path == "jobs[0].mappings[0].sorce"


def test_a_json_lines_key_absent_from_the_first_rows_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [{"id": "1", "mail": "a@example.org"}, {"id": "2", "phone": "+1 555"}]
    (tmp_path / "people.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    mappings = [
        {"target": "id", "source": "id", "match": True},
        {"target": "mail", "source": "mail"},
        {"target": "phone", "source": "phone"},  # only in the second row: present
        {"target": "fax", "source": "mial"},
    ]
    source = {"path": "people.jsonl", "id_column": "id"}
    code, lines = validate(write(tmp_path, job(source=source, mappings=mappings)), capsys)
    assert code == 2
    assert lines[:-1] == [
        "error jobs[0].mappings[3].source: column 'mial' is not in the first 2 rows of "
        f"{tmp_path / 'people.jsonl'} (did you mean 'mail'?)"
    ]


def test_a_good_file_is_ok_and_says_that_nothing_was_contacted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = {"name": "db", "type": "sql", "url": "sqlite:///nowhere/accounts.db", "table": "t"}
    target |= {"key_column": "id", "on_disable": "delete"}
    code, lines = validate(write(tmp_path, job(), targets=[target]), capsys)
    assert code == 0
    assert lines == [
        f"ok {tmp_path / 'jobs.yaml'}: 1 job(s) (people), 1 target(s) (db); file checked, with 1 source "
        "file; not contacted: 1 target (run with --connect to check them)"
    ]
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize(
    "example",
    [
        "examples/quickstart.yaml",
        "examples/scim.yaml",
        "examples/ldap.yaml",
        "examples/scaled/jobs.yaml",
        "examples/scaled/workers.yaml",
        "deploy/roster/jobs.yaml",
        "deploy/roster/workers.yaml",
    ],
)
def test_the_example_files_validate_ok(
    example: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("LDAP_URL", "MIRROR_LDAP_URL"):
        monkeypatch.setenv(name, "ldap://127.0.0.1:1")
    monkeypatch.setenv("LDAP_BIND_DN", "cn=roster,dc=example,dc=org")
    for name in ("LDAP_PASSWORD", "MIRROR_PASSWORD"):
        monkeypatch.setenv(name, "x")
    code, lines = validate(ROOT / example, capsys)
    assert code == 0, lines
    assert lines[-1].startswith("ok ")


def test_every_environment_variable_that_is_not_set_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ROSTER_TEST_UNSET_URL", raising=False)
    monkeypatch.delenv("ROSTER_TEST_UNSET_TOKEN", raising=False)
    target = {"name": "db", "type": "scim", "url": "${ROSTER_TEST_UNSET_URL}"}
    target["auth"] = {"type": "bearer", "token": "${ROSTER_TEST_UNSET_TOKEN}"}
    code, lines = validate(write(tmp_path, job(), targets=[target]), capsys)
    assert code == 2
    assert [line.split(" (")[0] for line in lines] == [
        "error targets[0].auth.token: environment variable ROSTER_TEST_UNSET_TOKEN is not set",
        "error targets[0].url: environment variable ROSTER_TEST_UNSET_URL is not set",
        f"2 problem(s) in {tmp_path / 'jobs.yaml'}: fix these, then validate it again to check the rest",
    ]


def test_a_csv_header_naming_a_column_twice_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = write(tmp_path, job())
    (tmp_path / "people.csv").write_text("employee_id,title,title\n1,a,b\n")
    code, lines = validate(file, capsys)
    assert code == 2
    assert lines[0] == (
        f"error jobs[0].source.path: the header of {tmp_path / 'people.csv'} names 'title' more than once"
        " (give each column its own name)"
    )


def test_an_ldap_source_that_lists_its_attributes_is_checked_against_the_list_without_connecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = {
        "type": "ldap",
        "url": "ldap://127.0.0.1:1",
        "bind_dn": "cn=reader,dc=example,dc=org",
        "bind_password": "secret",
        "base_dn": "ou=people,dc=example,dc=org",
        "attributes": ["uid", "givenName", "sn"],
    }
    mappings = [
        {"target": "userName", "source": "uid", "match": True},
        {"target": "given", "source": "givenname"},
        {"target": "mail", "source": "mail"},
        {"target": "where", "source": "dn"},
    ]
    code, lines = validate(write(tmp_path, job(source=source, mappings=mappings)), capsys)
    assert code == 2
    assert lines[:-1] == [
        "error jobs[0].mappings[1].source: column 'givenname' is not in jobs[0].source.attributes "
        "(did you mean 'givenName'?)",
        "error jobs[0].mappings[2].source: column 'mail' is not in jobs[0].source.attributes "
        "(its columns: uid, givenName, sn, dn)",
    ]
    assert lines[-1].endswith("not contacted: 1 source (run with --connect to check them)")


def test_what_a_target_cannot_do_with_what_its_jobs_send_is_said_without_connecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    people = job(
        name="people",
        target="db",
        mappings=[
            {"target": "id", "source": "employee_id", "match": True},
            {"target": "title", "source": "title"},
        ],
    )
    directory = job(name="directory", target="ldap", mappings=[{"target": "login", "source": "employee_id"}])
    app = job(name="app", target="app", mappings=[{"target": "emails[type eq work]", "source": "title"}])
    targets: list[dict[str, object]] = [
        {"name": "db", "type": "sql", "url": "sqlite:///accounts.db", "table": "t", "key_column": "id"}
        | {"on_disable": "delete", "columns": {"id": "id"}},
        {"name": "ldap", "type": "ldap", "url": "ldap://127.0.0.1:1", "bind_dn": "cn=a,dc=example,dc=org"}
        | {"bind_password": "secret", "base_dn": "dc=example,dc=org"}
        | {"users": {"dn": "uid={userName},ou=people,dc=example,dc=org"}},
        {"name": "app", "type": "scim", "url": "http://127.0.0.1:1/scim/v2"},
    ]
    code, lines = validate(write(tmp_path, people, directory, app, targets=targets), capsys)
    assert code == 2
    assert [line.split(" (")[0] for line in lines[:-1]] == [
        "error jobs[0].mappings[1].target: 'title' has no column in targets[0].columns: its value is dropped",
        "error jobs[2].mappings[0].target: 'emails[type eq work]' is not a SCIM attribute path; write name, "
        'name.sub, name[type eq "work"].sub, enterprise.name or urn:...:name',
        "error targets[1].users.dn: {userName} is no attribute the user jobs of this target send",
    ]
    assert "secret" not in "".join(lines)


def test_on_collision_is_accepted_with_further_candidates_and_refused_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def named(on_collision: object) -> list[dict[str, object]]:
        return [{"target": "id", "source": "employee_id", "match": True, "on_collision": on_collision}]

    good = [named("fail"), named({"next": ['Join("", [title], " (", [employee_id], ")")']})]
    for mappings in good:
        assert validate(write(tmp_path, job(mappings=mappings)), capsys)[0] == 0
    bad = job(mappings=named({"next": ["Jion([title])", "[titel]"]}))
    code, lines = validate(write(tmp_path, bad, job(name="others", mappings=named("next"))), capsys)
    assert code == 2
    assert lines[:2] == [
        "error jobs[0].mappings[0].on_collision.next[0]: unknown function 'Jion' at column 1 (did you mean"
        " 'Join'?)",
        "error jobs[1].mappings[0].on_collision: 'next' is neither `fail` nor `{next: [...]}` (say `fail`,"
        """ or give further candidates: `{next: ['Join("", [name], " (", [id], ")")']}`)""",
    ]
    code, lines = validate(write(tmp_path, job(mappings=named({"next": ["[titel]"]}))), capsys)
    assert (code, lines[0]) == (
        2,
        f"error jobs[0].mappings[0].on_collision.next[0]: [titel] is not in the header of "
        f"{tmp_path / 'people.csv'} (did you mean 'title'?)",
    )
