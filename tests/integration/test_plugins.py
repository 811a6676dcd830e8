"""Connector types from packages outside Roster: the example badge connector (examples/badge-connector),
installed with pip, found by its entry point, provisioning through the engine embedded and scaled; and
packages whose entry point is broken, reported by name while the others work.

Each package is installed by a real `pip install --target` into a folder that the Roster processes get
on their PYTHONPATH: how a distribution is found there is how it is found in a venv's site-packages,
and the venv the other tests share is left as it was.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from tests import needs
from tests.integration.processes import Fleet, free_port
from tests.rabbit import vhost

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "badge-connector"
TOKEN = "badge-token-for-the-tests-0123456789"

HR_SOURCE = '''
"""A source of people from the HR system's JSON export, written on roster.source alone."""
import asyncio
import orjson
from pathlib import Path
from roster.source import (
    API_VERSION, ProblemLog, SourceError, SourceObject, SourcePlugin, check_keys, join, string,
)

class HrSource(ProblemLog):
    full = True
    watermark = None

    def __init__(self, path):
        super().__init__()
        self.path = path

    async def batches(self, size):
        self._forget_problems()
        try:
            people = orjson.loads(await asyncio.to_thread(Path(self.path).read_bytes))
        except (OSError, ValueError) as error:
            raise SourceError(f"cannot read the HR export {self.path}: {error}") from None
        batch, seen = [], set()
        for line, person in enumerate(people, start=1):
            number = person.get("personnel_number")
            if not number or number in seen:
                self._problem(line, f"personnel_number {number!r} missing or repeated")
                continue
            seen.add(number)
            batch.append(SourceObject(str(number), {k: v for k, v in person.items()}, line))
            if len(batch) == size:
                yield batch
                batch = []
        if batch:
            yield batch

def parse(path, raw, base_dir, object_type):
    check_keys(path, raw, ("type", "export"), required=("export",))
    return str(base_dir / string(join(path, "export"), raw["export"]))

PLUGIN = SourcePlugin(
    api_version=API_VERSION,
    parse=parse,
    open=lambda settings, since, state: HrSource(settings),
    summary="people from the HR system's JSON export",
)
'''

WORKING_PACKAGES = {"roster-hr-source": ("hr_source", HR_SOURCE, "hr", "roster.sources")}

BROKEN_PACKAGES = {
    # An entry point whose module cannot be imported.
    "roster-broken-plugin": ("broken_plugin", "from nowhere_at_all import Connector\n", "broken"),
    # A plugin written for an API version this Roster does not speak.
    "roster-old-plugin": (
        "old_plugin",
        "from dataclasses import replace\n"
        "from workers.connectors.null_plugin import PLUGIN as NULL\n"
        "PLUGIN = replace(NULL, api_version=0)\n",
        "old",
    ),
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the badge connector and the broken packages, as pip installs them."""
    root = tmp_path_factory.mktemp("plugins")
    sources = [root / "badge-connector"]
    shutil.copytree(EXAMPLE, sources[0], ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    packages = {**WORKING_PACKAGES, **{d: (*p, "roster.connectors") for d, p in BROKEN_PACKAGES.items()}}
    for distribution, (module, code, name, group) in packages.items():
        folder = root / distribution
        (folder / module).mkdir(parents=True)
        (folder / module / "__init__.py").write_text(code)
        (folder / "pyproject.toml").write_text(
            '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n'
            f'[project]\nname = "{distribution}"\nversion = "0.3.0"\n'
            f'[project.entry-points."{group}"]\n{name} = "{module}:PLUGIN"\n'
            f'[tool.setuptools]\npackages = ["{module}"]\n'
        )
        sources.append(folder)
    target = root / "site"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*pip, "--target", str(target), *map(str, sources)],
        check=True,
        cwd=root,
    )
    return target


def _env(site: Path) -> dict[str, str]:
    return {"PYTHONPATH": str(site), "BADGE_TOKEN": TOKEN}


def _roster(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "common.process.launcher", *args],
        cwd=REPO,
        env={**os.environ, **_env(site)},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def badges(site: Path, tmp_path: Path) -> Iterator[str]:
    """The badge system's stand-in (the example package's own), in a process of its own: its URL."""
    port = free_port()
    log = (tmp_path / "badges.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "badge_connector.service", "--port", str(port), "--token", TOKEN],
        env={**os.environ, "PYTHONPATH": str(site)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                _get(url, "/badges")
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((tmp_path / "badges.log").read_text()) from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)
        log.close()


def _get(url: str, path: str) -> Any:
    request = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        return orjson.loads(answer.read())


def _people(n: int) -> list[dict[str, str]]:
    return [
        {"employee_id": f"E{i:04d}", "name": f"Person {i} O'Brien-Ünal", "email": f"p{i}@example.com"}
        for i in range(n)
    ]


def _config(tmp_path: Path, url: str, people: list[dict[str, str]]) -> Path:
    with (tmp_path / "people.csv").open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=["employee_id", "name", "email"])
        writer.writeheader()
        writer.writerows(people)
    raw = {
        "engine": {"state": str(tmp_path / "state.db")},
        "jobs": [
            {
                "name": "people-to-badges",
                "source": {"type": "csv", "path": "people.csv", "id_column": "employee_id"},
                "target": "badges",
                "object_type": "user",
                "deprovision": "delete",
                "mappings": [
                    {"target": "employee_no", "source": "employee_id", "match": True},
                    {"target": "display_name", "source": "name"},
                    {"target": "email", "source": "email"},
                ],
            }
        ],
        "targets": [{"name": "badges", "type": "badge", "url": url, "token_env": "BADGE_TOKEN"}],
    }
    file = tmp_path / "roster.yaml"
    file.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return file


def _assert_badges_are(url: str, people: list[dict[str, str]]) -> None:
    held = _get(url, "/badges")["badges"]
    by_number: dict[str, dict[str, Any]] = {}
    for badge in held:
        assert badge["employee_no"] not in by_number, f"two badges for {badge['employee_no']}"
        by_number[badge["employee_no"]] = badge
    assert sorted(by_number) == sorted(p["employee_id"] for p in people)
    for person in people:
        badge = by_number[person["employee_id"]]
        held = (badge["display_name"], badge["email"], badge["active"])
        assert held == (person["name"], person["email"], True)


def test_roster_plugins_lists_an_installed_connector_and_reports_broken_ones_by_name(site: Path) -> None:
    done = _roster(site, "plugins", "--json")
    listed = {(row["kind"], row["type"]): row for row in orjson.loads(done.stdout)["plugins"]}

    badge = listed[("connector", "badge")]
    assert badge["loaded"] and not badge["builtin"]
    assert (badge["distribution"], badge["version"], badge["entry_point"]) == (
        "roster-badge-connector",
        "0.1.0",
        "badge_connector:PLUGIN",
    )
    broken = listed[("connector", "broken")]
    assert not broken["loaded"] and broken["distribution"] == "roster-broken-plugin"
    assert broken["error"] == "ModuleNotFoundError: No module named 'nowhere_at_all'"
    old = listed[("connector", "old")]
    assert not old["loaded"]
    assert old["error"] == "written for API version 0; this Roster speaks version 1"
    builtin = {key for key, row in listed.items() if row["builtin"] and row["loaded"]}
    connectors = {("connector", name) for name in ("sql", "scim", "ldap", "noop")}
    sources = {("source", name) for name in ("csv", "jsonl", "ldap", "scim", "scim_inbound")}
    assert connectors | sources <= builtin
    assert done.returncode == 1, "a broken plugin must fail the command, for deployment checks"
    assert "event=plugin_broken" in done.stderr and "name=broken" in done.stderr


def test_a_target_of_a_broken_type_is_refused_with_the_plugins_error(site: Path, tmp_path: Path) -> None:
    config = tmp_path / "targets.yaml"
    config.write_text(yaml.safe_dump({"targets": [{"name": "t", "type": "broken"}]}))

    done = _roster(site, "validate", str(config))

    assert done.returncode == 2, done.stdout + done.stderr
    assert "targets[0].type: connector type 'broken' (roster-broken-plugin 0.3.0, broken_plugin:PLUGIN)" in (
        " ".join(done.stdout.split())
    )
    assert "No module named 'nowhere_at_all'" in done.stdout


def test_an_installed_connector_provisions_embedded_creates_updates_and_deletes(
    site: Path, badges: str, tmp_path: Path
) -> None:
    people = _people(20)
    config = _config(tmp_path, badges, people)
    first = _roster(site, "run", str(config), "--no-progress")
    assert first.returncode == 0, first.stdout + first.stderr
    _assert_badges_are(badges, people)

    people[3]["email"] = "moved@example.com"
    del people[7]
    people.append({"employee_id": "E9999", "name": "New, Starter", "email": "new@example.com"})
    config = _config(tmp_path, badges, people)
    second = _roster(site, "run", str(config), "--no-progress")
    assert second.returncode == 0, second.stdout + second.stderr
    _assert_badges_are(badges, people)


@pytest.mark.rabbitmq
def test_an_installed_connector_provisions_through_a_scaled_worker(
    site: Path, badges: str, tmp_path: Path
) -> None:
    needs.rabbitmq()
    people = _people(300)
    config = _config(tmp_path, badges, people)
    with vhost() as broker_url:
        fleet = Fleet(tmp_path, broker_url)
        try:
            worker = fleet.worker(config, env=_env(site))
            worker.wait_healthy()
            engine = fleet.engine(config, "--once", env=_env(site))
            assert engine.wait(120) == 0, fleet.logs()
        finally:
            fleet.stop_all()
    _assert_badges_are(badges, people)


def test_a_source_from_another_package_feeds_a_job_and_a_row_it_cannot_read_deprovisions_nobody(
    site: Path, badges: str, tmp_path: Path
) -> None:
    people = _people(12)
    export = [{"personnel_number": p["employee_id"], "name": p["name"], "email": p["email"]} for p in people]
    (tmp_path / "hr.json").write_bytes(orjson.dumps(export))
    config = _config(tmp_path, badges, people)
    raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    raw["jobs"][0]["source"] = {"type": "hr", "export": "hr.json"}
    raw["jobs"][0]["mappings"][0]["source"] = "personnel_number"
    config.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")

    first = _roster(site, "run", str(config), "--no-progress")
    assert first.returncode == 0, first.stdout + first.stderr
    _assert_badges_are(badges, people)

    export[5]["personnel_number"] = None  # a row the source cannot read: not a person who left
    (tmp_path / "hr.json").write_bytes(orjson.dumps(export))
    second = _roster(site, "run", str(config), "--no-progress")
    assert second.returncode == 3, second.stdout + second.stderr
    assert "line 6: personnel_number None missing or repeated" in second.stdout
    _assert_badges_are(badges, people)
