"""Configuration errors name the path, what is wrong and the fix; secrets never appear in them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from common.config.yamlfile import load_yaml
from common.errors import ConfigError
from engine.cli.main import main
from engine.config import parse_engine_config
from workers.config import parse_targets


def _job(**overrides) -> dict:
    job = {
        "name": "people",
        "source": {"type": "csv", "path": "people.csv", "id_column": "employee_id"},
        "target": "db",
        "mappings": [{"target": "id", "source": "employee_id", "match": True}],
    }
    job.update(overrides)
    return job


@pytest.mark.parametrize(
    ("raw", "path", "words"),
    [
        ({"jobs": [_job(mapings=[])]}, "jobs[0].mapings", "did you mean 'mappings'"),
        ({"jobs": [_job(target=None)]}, "jobs[0].target", "is required"),
        (
            {"jobs": [_job(mappings=[{"target": "x"}])]},
            "jobs[0].mappings[0]",
            "exactly one of `source:`, `constant:`, `expression:` and `reference:`",
        ),
        (
            {"jobs": [_job(mappings=[{"target": "x", "source": "a", "apply": "sometimes"}])]},
            "jobs[0].mappings[0].apply",
            "not one of",
        ),
        (
            {"jobs": [_job(deprovision="remove")]},
            "jobs[0].deprovision",
            "'delete', 'disable', 'none'".replace("'", ""),
        ),
        (
            {"jobs": [_job(source={"type": "xlsx", "path": "a", "id_column": "id"})]},
            "jobs[0].source.type",
            "not one of",
        ),
        ({"jobs": [_job(), _job()]}, "jobs[1].name", "used by jobs[0] too"),
        (
            {
                "jobs": [
                    _job(
                        mappings=[
                            {"target": "id", "source": "a", "match": 1},
                            {"target": "mail", "source": "b", "match": 1},
                        ]
                    )
                ]
            },
            "jobs[0].mappings",
            "id, mail share matching precedence 1",
        ),
        (
            {"jobs": [_job(mappings=[{"target": "id", "source": "a", "match": 0}])]},
            "jobs[0].mappings[0].match",
            "at least 1",
        ),
        ({"jobs": [_job()], "engine": {"batch_size": 0}}, "engine.batch_size", "at least 1"),
        ({"jobs": []}, "jobs", "is empty"),
        ({"jobs": [_job(source_min_objects=-5)]}, "jobs[0].source_min_objects", "fewest objects"),
        ({"jobs": [_job(source_max_drop_percent=101)]}, "jobs[0].source_max_drop_percent", "such as 10"),
        ({"jobs": [_job(source_max_drop=10)]}, "jobs[0].source_max_drop", "source_max_drop_percent"),
    ],
)
def test_a_wrong_job_config_names_the_field_and_the_fix(raw: dict, path: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_engine_config(raw, base_dir=Path("."))
    assert caught.value.path == path
    assert words.replace("'", "") in str(caught.value).replace("'", "")


def test_a_wrong_target_config_names_the_field() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_targets({"targets": [{"name": "db", "type": "sq1"}]}, base_dir=Path("."))
    assert caught.value.path == "targets[0].type" and "did you mean 'sql'" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        parse_targets(
            {"targets": [{"name": "db", "type": "noop", "retry": {"tires": 3}}]}, base_dir=Path(".")
        )
    assert caught.value.path == "targets[0].retry.tires" and "did you mean 'tiers'" in str(caught.value)


def test_environment_variables_are_substituted_and_a_missing_one_is_named_without_values(
    tmp_path: Path,
) -> None:
    file = tmp_path / "jobs.yaml"
    file.write_text(
        "targets:\n  - name: db\n    url: postgresql://app:${DB_PASSWORD}@db/x\n    token: ${TOKEN:-none}\n"
    )
    data = load_yaml(file, environ={"DB_PASSWORD": "hunter2"})
    assert data["targets"][0]["url"] == "postgresql://app:hunter2@db/x"
    assert data["targets"][0]["token"] == "none"
    with pytest.raises(ConfigError) as caught:
        load_yaml(file, environ={})
    assert caught.value.path == "targets[0].url" and "DB_PASSWORD is not set" in str(caught.value)


def test_roster_validate_reports_a_broken_file_with_the_path_and_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "jobs.yaml"
    file.write_text(
        "jobs:\n  - name: people\n    source: {type: csv, path: p.csv, id_column: id}\n    target: db\n"
        "    mappings:\n      - {target: id, source: id}\n      - {target: mail, sorce: email}\n"
        "targets:\n  - {name: db, type: noop}\n"
    )
    assert main(["validate", str(file)]) == 2
    out = capsys.readouterr().out
    assert "jobs[0].mappings[1].sorce: unknown key" in out and "did you mean 'source'" in out


def test_roster_validate_names_a_job_whose_target_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "jobs.yaml"
    file.write_text(
        "jobs:\n  - name: people\n    source: {type: csv, path: p.csv, id_column: id}\n    target: dbb\n"
        "    mappings: [{target: id, source: id}]\ntargets:\n  - {name: db, type: noop}\n"
    )
    assert main(["validate", str(file)]) == 2
    assert "jobs[0].target: no target named 'dbb'" in capsys.readouterr().out


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    file = tmp_path / "jobs.yaml"
    file.write_text("jobs:\n  - name: [unclosed\n")
    with pytest.raises(ConfigError) as caught:
        load_yaml(file)
    assert f"{file}:" in str(caught.value) and "not valid YAML" in str(caught.value)


def test_matching_attributes_are_ordered_by_precedence() -> None:
    mappings = [
        {"target": "mail", "source": "email", "match": 2},
        {"target": "name", "source": "login", "match": True},
        {"target": "id", "source": "employee_id", "match": 1},
        {"target": "title", "source": "title"},
    ]
    config = parse_engine_config({"jobs": [_job(mappings=mappings)]}, base_dir=Path("."))
    assert config.jobs[0].matching == ("name", "id", "mail")
    assert config.jobs[0].mapper().matching == ("name", "id", "mail")


def test_log_retention_defaults_to_30_days_and_a_wrong_value_names_the_key_and_the_fix() -> None:
    assert parse_engine_config({"jobs": [_job()]}, base_dir=Path(".")).log_retention_days == 30
    kept = parse_engine_config({"jobs": [_job()], "engine": {"log_retention_days": 7.5}}, base_dir=Path("."))
    assert kept.log_retention_days == 7.5
    for wrong, problem in (
        (0, "must be above 0"),
        (-3, "at least 0"),
        ("a month", "expected a number, got str"),
    ):
        with pytest.raises(ConfigError) as caught:
            parse_engine_config(
                {"jobs": [_job()], "engine": {"log_retention_days": wrong}}, base_dir=Path(".")
            )
        assert caught.value.path == "engine.log_retention_days" and problem in str(caught.value)
        assert "such as 30" in str(caught.value)


@pytest.mark.parametrize(
    ("deadline", "path", "words"),
    [
        ({"base_s": 0}, "engine.deadline.base_s", "must be above 0 (give the seconds a cycle waits"),
        ({"base_s": "5m"}, "engine.deadline.base_s", "expected a number"),
        ({"base_s": float("nan")}, "engine.deadline.base_s", "out of range"),
        ({"base_s": 1e300}, "engine.deadline.base_s", "at most a week"),
        ({"per_batch_s": -1}, "engine.deadline.per_batch_s", "such as 2 (0 for none)"),
        ({"base": 60}, "engine.deadline.base", "did you mean 'base_s'"),
        ([60], "engine.deadline", "mapping"),
    ],
)
def test_a_wrong_cycle_deadline_names_the_key_and_the_fix(deadline: object, path: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_engine_config({"jobs": [_job()], "engine": {"deadline": deadline}}, base_dir=Path("."))
    assert caught.value.path == path
    assert words.replace("'", "") in str(caught.value).replace("'", "")


def test_the_cycle_deadline_grows_with_the_batches_awaited() -> None:
    config = parse_engine_config(
        {"jobs": [_job()], "engine": {"deadline": {"base_s": 60, "per_batch_s": 0.5}}}, base_dir=Path(".")
    )
    assert config.deadline.for_ops(0, 500) == 60
    assert config.deadline.for_ops(1001, 500) == 61.5  # three batches
    assert parse_engine_config({"jobs": [_job()]}, base_dir=Path(".")).deadline.for_ops(500, 500) == 362


def test_relative_paths_in_a_file_are_read_from_its_folder_whatever_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.cli.options import DEFAULT_STATE
    from engine.config import load_engine_config
    from engine.store.state import state_url
    from workers.config import load_targets

    folder = tmp_path / "conf"
    folder.mkdir()
    (folder / "people.csv").write_text("id,mail\n1,a@example.org\n", encoding="utf-8")
    raw = {
        "jobs": [_job(source={"type": "csv", "path": "people.csv", "id_column": "id"})],
        "targets": [
            {
                "name": "db",
                "type": "sql",
                "url": "sqlite:///target.db",
                "table": "t",
                "key_column": "id",
                "on_disable": "delete",
            }
        ],
    }
    (folder / "roster.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # the file named relative to the cwd...
    config = load_engine_config(Path("conf/roster.yaml"))
    targets = load_targets(Path("conf/roster.yaml"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # ...and the cwd moved after reading it
    assert config.base_dir == folder
    assert config.jobs[0].source.settings.path == folder / "people.csv"
    assert config.jobs[0].source.settings.path.is_file()
    assert (
        state_url(DEFAULT_STATE, base_dir=config.base_dir) == f"sqlite+aiosqlite:///{folder}/.roster/state.db"
    )
    assert targets[0].settings.url.database == str(folder / "target.db")


@pytest.mark.parametrize(
    ("engine", "path"),
    [
        ({"quarantine": {"windw": 3}}, "engine.quarantine.windw"),
        ({"quarantine": {"failure_share": "most"}}, "engine.quarantine.failure_share"),
        ({"state": ""}, "engine.state"),
    ],
)
def test_an_engine_setting_error_names_the_key_as_the_file_has_it(engine: dict, path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_engine_config({"jobs": [_job()], "engine": engine}, base_dir=Path("."))
    assert caught.value.path == path


def test_roster_version_names_the_package_and_the_wire_version(capsys: pytest.CaptureFixture[str]) -> None:
    from common.process.build import roster_version
    from queues.contracts import VERSION

    for argv in (["--version"], ["worker", "--version"]):  # a worker says which messages it speaks too
        with pytest.raises(SystemExit) as done:
            main(argv)
        assert done.value.code == 0
        assert capsys.readouterr().out.strip() == f"roster {roster_version()} (wire version {VERSION})"
