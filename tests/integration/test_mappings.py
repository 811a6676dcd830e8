"""Expressions and scoping filters in whole cycles, into a real SQLite target."""

from __future__ import annotations

from pathlib import Path

from tests.integration.pipeline import job_config, person, pipeline, sql_target, target_rows, write_csv


def _raw(tmp_path: Path, url: str, **job: object) -> dict:
    raw = {**job_config(tmp_path, **job), **sql_target(url)}
    return raw


async def test_a_changed_scoping_filter_moves_exactly_the_right_objects_in_and_out_of_scope(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'target.db'}"
    rows = [person(i) for i in range(40)]  # departments cycle Sales, "", R&D, People
    write_csv(tmp_path / "people.csv", rows)
    sales = [{"clauses": [{"attribute": "department", "operator": "EQUALS", "value": "Sales"}]}]
    async with pipeline(tmp_path, _raw(tmp_path, url, scoping=sales)) as p:
        first = await p.runner.run_cycle(p.runner.config.jobs[0])
    assert (first.created, first.out_of_scope) == (10, 30)
    assert set(await target_rows(url)) == {r["employee_id"] for r in rows if r["department"] == "Sales"}

    research_or_sales = [
        {"clauses": [{"attribute": "department", "operator": "EQUALS", "value": "R&D"}]},
        {
            "clauses": [
                {"attribute": "department", "operator": "EQUALS", "value": "Sales"},
                {"attribute": "employee_id", "operator": "REGEX MATCH", "value": "^E0000[0-9]$"},
            ]
        },
    ]
    async with pipeline(tmp_path, _raw(tmp_path, url, scoping=research_or_sales)) as p:
        second = await p.runner.run_cycle(p.runner.config.jobs[0])

    in_scope = {r["employee_id"] for r in rows if r["department"] == "R&D"} | {
        r["employee_id"] for r in rows if r["department"] == "Sales" and int(r["employee_id"][1:]) < 10
    }
    left_scope = {r["employee_id"] for r in rows if r["department"] == "Sales"} - in_scope
    assert (second.created, second.disabled, second.updated) == (10, len(left_scope), 0)
    target = await target_rows(url)
    assert {k for k, row in target.items() if row["active"]} == in_scope
    assert {k for k, row in target.items() if not row["active"]} == left_scope


async def test_expressions_map_values_and_a_failing_expression_fails_only_its_object(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'target.db'}"
    rows = [person(i) for i in range(12)]
    rows[4] = person(4, email="")  # an empty email takes the branch that fails (Mid from position 0)
    write_csv(tmp_path / "people.csv", rows)
    raw = _raw(tmp_path, url)
    raw["jobs"][0]["mappings"][1] = {
        "target": "first_name",
        "expression": "ToUpper(NormalizeDiacritics([given_name]))",
    }
    raw["jobs"][0]["mappings"][3] = {
        "target": "email",
        "expression": 'IIF(IsNullOrEmpty([email]), Mid("x", 0, 1),'
        ' ToLower(Join("@", Item(Split([email], "@"), 1), "corp.example")))',
    }
    async with pipeline(tmp_path, raw) as p:
        summary = await p.runner.run_cycle(p.runner.config.jobs[0])
        log = await p.state.log_records("people", cycle_id=summary.cycle_id)

    assert (summary.created, summary.failed, summary.status) == (11, 1, "completed_with_failures")
    failed = [r for r in log if r["status"] == "failed"]
    assert [(r["source_id"], r["error_class"]) for r in failed] == [("E00004", "MappingError")]
    assert "email" in failed[0]["error_message"] and "Mid" in failed[0]["error_message"]
    target = await target_rows(url)
    assert "E00004" not in target
    assert target["E00001"]["first_name"] == "ZOE" and target["E00001"]["email"] == "user1@corp.example"
    assert target["E00003"]["first_name"] == "LUKASZ"


async def test_select_unique_value_gives_each_new_account_the_first_login_nobody_holds(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'target.db'}"
    rows = [person(i, given_name="Ana", family_name="Silva") for i in range(3)] + [person(9)]
    write_csv(tmp_path / "people.csv", rows)
    raw = _raw(tmp_path, url)
    raw["jobs"][0]["mappings"].append(
        {
            "target": "login",
            "apply": "on_create",
            "expression": 'SelectUniqueValue(ToLower(Join("", Left([given_name], 1), [family_name])),'
            ' ToLower(Join("", Left([given_name], 2), [family_name])),'
            ' ToLower(Join(".", [given_name], [family_name])))',
        }
    )
    raw["targets"][0]["columns"]["login"] = "login"
    async with pipeline(tmp_path, raw) as p:
        first = await p.runner.run_cycle(p.runner.config.jobs[0])
        rows.append(person(10, given_name="Ana", family_name="Silva"))
        write_csv(tmp_path / "people.csv", rows)
        second = await p.runner.run_cycle(p.runner.config.jobs[0])
        log = await p.state.log_records("people", cycle_id=second.cycle_id)

    assert (first.created, first.failed) == (4, 0)
    logins = {k: row["login"] for k, row in (await target_rows(url)).items()}
    assert sorted(logins[f"E0000{i}"] for i in range(3)) == ["ana.silva", "ansilva", "asilva"]
    assert (second.created, second.failed) == (0, 1)
    assert "all unique candidates taken for 'login'" in log[0]["error_message"]
