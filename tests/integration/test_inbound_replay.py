"""Entra ID and Okta, replayed: the requests both providers document sending (tests/integration/
idp_replay.py) pushed over HTTP into one engine's inbound service, whose jobs provision the users, the
groups and their members into a private slapd, and the users into a SQLite table (a SQL target keeps no
group members). Both targets are read back with connections of our own and must hold exactly what the
script means, object by object: no entry missing, none extra, none twice.

Once in process, request after request, the service answering each after the targets applied it (a few
answers lost on the way, and the request sent again as the providers retry: a create looked up first, so
that a group, whose name need not be unique, is not created twice); a cycle over the mirror afterwards
finds nothing to do. Then as `roster run --serve`, the service answering once each push is stored,
pushed concurrently and killed with SIGKILL mid-push in each phase: everything it acknowledged reaches
both targets after a restart on the same state store (whose first cycles read the mirror), and once the
client sent again what went unanswered, both targets hold the whole script's outcome.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from yarl import URL

from common.peers.ldap_names import canonical_dn
from engine.config import in_dependency_order
from tests.integration.idp_replay import (
    ENTRA_TOKEN,
    OKTA_TOKEN,
    PHASES,
    Step,
    World,
    chains,
    script,
    through,
    world_after,
)
from tests.integration.pipeline import target_rows
from tests.integration.processes import REPO, free_port
from tests.integration.test_inbound import served
from tests.integration.test_ldap_cycle import GROUPS, PEOPLE
from tests.integration.test_ldap_cycle import target as ldap_target
from tests.slapd import ROOT_DN, Slapd

JOBS = ["people", "accounts", "teams"]
SQL_COLUMNS = (
    "employee_id",
    "user_name",
    "first_name",
    "last_name",
    "display_name",
    "email",
    "department",
    "title",
    "employee_number",
    "manager",
)


def replay_config(server: Slapd, db: Path, *, respond: str, listen: str = "127.0.0.1:0") -> dict[str, Any]:
    """One engine: the inbound service, and three jobs over it. Users go to the directory (`people`)
    and to the table (`accounts`), both scoped on `active` as docs/inbound.md advises (who leaves it is
    disabled); groups go to the directory with their members (`teams`)."""
    free = {"deletion_guard": False, "mass_change_guard": False, "source_max_drop_percent": 100}
    scoping = [{"clauses": [{"attribute": "active", "operator": "IS TRUE"}]}]
    manager = "enterprise.manager.value"
    return {
        "engine": {"batch_size": 100, "linger_ms": 2},
        "inbound": {
            "listen": listen,
            "respond": respond,
            "apply_timeout_s": 10,
            "tokens": [
                {"name": "entra", "token": ENTRA_TOKEN, "jobs": JOBS},
                {"name": "okta", "token": OKTA_TOKEN, "jobs": JOBS},
            ],
        },
        "jobs": [
            {
                "name": "people",
                "source": {"type": "scim_inbound"},
                "target": "directory",
                "scoping": scoping,
                **free,
                "mappings": [
                    {"target": "employeeNumber", "source": "externalId", "match": True},
                    {"target": "userName", "source": "userName"},
                    {"target": "givenName", "source": "name.givenName"},
                    {"target": "familyName", "source": "name.familyName"},
                    {"target": "displayName", "source": "displayName"},
                    {"target": "email", "source": 'emails[type eq "work"].value'},
                    {"target": "departmentNumber", "source": "enterprise.department"},
                    {"target": "title", "source": "title"},
                    {"target": "manager", "reference": {"source": manager, "job": "people"}},
                ],
            },
            {
                "name": "accounts",
                "source": {"type": "scim_inbound"},
                "target": "db",
                "scoping": scoping,
                **free,
                "mappings": [
                    {"target": "employee_id", "source": "externalId", "match": True},
                    {"target": "user_name", "source": "userName"},
                    {"target": "first_name", "source": "name.givenName"},
                    {"target": "last_name", "source": "name.familyName"},
                    {"target": "display_name", "source": "displayName"},
                    {"target": "email", "source": 'emails[type eq "work"].value'},
                    {"target": "department", "source": "enterprise.department"},
                    {"target": "title", "source": "title"},
                    {"target": "employee_number", "source": "enterprise.employeeNumber"},
                    {"target": "manager", "reference": {"source": manager, "job": "accounts"}},
                ],
            },
            {
                "name": "teams",
                "object_type": "group",
                "source": {"type": "scim_inbound"},
                "target": "directory",
                **free,
                "members": {"source": "members", "job": "people"},
                "mappings": [{"target": "displayName", "source": "displayName", "match": True}],
            },
        ],
        "targets": [
            ldap_target(server, first_delay_ms=50),
            {
                "name": "db",
                "type": "sql",
                "url": f"sqlite:///{db}",
                "table": "accounts",
                "key_column": "employee_id",
                "active_column": "active",
                "on_disable": "deactivate",
                "create_table": True,
                "columns": {c: c for c in SQL_COLUMNS},
                "retry": {"first_delay_ms": 20, "multiplier": 2, "tiers": 4},
            },
        ],
    }


# -- The targets, read back -------------------------------------------------------------------------------


def directory(server: Slapd) -> tuple[dict[str, dict[str, list[str]]], dict[str, list[str]]]:
    """The users by employeeNumber (each manager as the manager's employeeNumber) and each group's
    members (employeeNumbers) by name, as slapd holds them; fails on a user or a group held twice."""
    users = server.entries(PEOPLE, "(objectClass=inetOrgPerson)")
    number_of = {canonical_dn(dn): e["employeenumber"][0] for dn, e in users.items() if "employeenumber" in e}
    by_number: dict[str, dict[str, list[str]]] = {}
    for dn, entry in users.items():
        number = entry["employeenumber"][0]
        assert number not in by_number, f"{number} is in the directory twice"
        assert dn.lower().startswith("uid=") and len(entry["uid"]) == 1, dn  # the RDN is the one uid
        view = {k: v for k, v in entry.items() if k != "objectclass"}
        if "manager" in view:
            view["manager"] = [number_of.get(canonical_dn(m), m) for m in view["manager"]]
        by_number[number] = view
    groups: dict[str, list[str]] = {}
    for dn, entry in server.entries(GROUPS, "(objectClass=groupOfNames)", ["cn", "member"]).items():
        assert len(entry["cn"]) == 1 and dn.lower().startswith("cn="), (dn, entry["cn"])
        name = entry["cn"][0]
        assert name not in groups, f"group {name!r} is in the directory twice"
        members = [m for m in entry.get("member", []) if canonical_dn(m) != canonical_dn(ROOT_DN)]
        groups[name] = sorted(number_of.get(canonical_dn(m), m) for m in members)  # ROOT_DN: "empty"
    return by_number, groups


async def table(db: Path) -> dict[str, dict[str, Any]]:
    """The table's rows by key (fails on a key held twice), `active` as 0 or 1."""
    rows = await target_rows(f"sqlite:///{db}") if db.exists() else {}
    return {k: {**row, "active": int(row["active"])} for k, row in rows.items()}


def differences(what: str, held: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    found = [f"{what} {k}: missing, expected {expected[k]}" for k in expected if k not in held]
    found += [f"{what} {k}: extra {held[k]}" for k in held if k not in expected]
    found += [
        f"{what} {k}: {held[k]} != {expected[k]}" for k in expected if k in held and held[k] != expected[k]
    ]
    return found


async def assert_targets(server: Slapd, db: Path, world: World) -> None:
    """Both targets hold exactly what `world` says."""
    users, groups = directory(server)
    found = differences("directory user", users, world.ldap_users())
    found += differences("directory group", groups, world.ldap_groups())
    found += differences("table row", await table(db), world.sql_rows())
    assert not found, "\n".join(found)


async def assert_between(server: Slapd, db: Path, before: World, after: World) -> None:
    """Each object in both targets is as `before` or as `after` say (`after` has the requests that went
    unanswered too, each of which may or may not have been stored)."""
    users, groups = directory(server)
    rows = await table(db)
    found: list[str] = []
    for what, held, one, other in [
        ("directory user", users, before.ldap_users(), after.ldap_users()),
        ("table row", rows, before.sql_rows(), after.sql_rows()),
    ]:
        for key in {*held, *one, *other}:
            if held.get(key) not in (one.get(key), other.get(key)):
                found.append(f"{what} {key}: {held.get(key)} is neither {one.get(key)} nor {other.get(key)}")
    # groups by their name, which a rename changes: each must be in one of its two states
    claimed: set[str] = set()
    for key in {*before.teams, *after.teams}:
        states = [_group(w, key) for w in (before, after)]
        fits = [s for s in states if s is not None and groups.get(s[0]) == s[1]]
        if fits:
            claimed.add(fits[0][0])
        elif None not in states:
            found.append(
                f"directory group {key}: {[(n, groups.get(n)) for n, _ in states]} fits neither state"
            )
    found += [f"directory group {name!r}: extra {groups[name]}" for name in groups if name not in claimed]
    assert not found, "\n".join(sorted(found))


def _group(world: World, key: str) -> tuple[str, list[str]] | None:
    team = world.teams.get(key)
    return None if team is None or team.deleted else (team.name, sorted(team.members))


async def assert_served(url: str, world: World) -> None:
    """The service lists each user and group of `world` once (a create sent again made no second)."""
    headers = {"Authorization": f"Bearer {ENTRA_TOKEN}"}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/Users?count=1000", headers=headers) as answer:
            users = [u["externalId"] for u in (await answer.json(content_type=None))["Resources"]]
        async with session.get(
            f"{url}/Groups?count=1000&excludedAttributes=members", headers=headers
        ) as answer:
            groups = [g["displayName"] for g in (await answer.json(content_type=None))["Resources"]]
    assert sorted(users) == sorted(e for e, p in world.people.items() if not p.deleted)
    assert sorted(groups) == sorted(world.ldap_groups())


async def eventually(check: Callable[[], Awaitable[None]], timeout_s: float = 30) -> None:
    """`check` passes within `timeout_s` (its last failure otherwise)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            await check()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


# -- The client ------------------------------------------------------------------------------------------


async def send(
    session: aiohttp.ClientSession, url: str, step: Step, ids: dict[str, str], path: str | None = None
) -> tuple[int, Any]:
    """One request of the script (or a GET of `path` with its token), as the provider sends it."""
    body = None if path is not None else step.payload(ids)
    headers = {"Authorization": f"Bearer {step.token}", "Content-Type": "application/scim+json"}
    method = "GET" if path is not None else step.method
    target = URL(f"{url}{path or step.url_path(ids)}", encoded=True)  # encoded as the script means
    data = None if body is None else orjson.dumps(body)
    async with session.request(method, target, data=data, headers=headers) as answer:
        text = await answer.read()
        return answer.status, orjson.loads(text) if text else None


async def replay_in_order(
    url: str, steps: list[Step], ids: dict[str, str], lose: set[int] | frozenset[int] = frozenset()
) -> None:
    """Each request after the answer to the one before, every answer a success; a lookup before a
    create finds nothing. The answers to the steps in `lose` are lost on the way (the client gave up
    waiting), so it sends each again, as the providers retry: a create once it looked it up (found, it
    is taken, not sent), a deletion found gone already (404)."""
    async with aiohttp.ClientSession() as session:
        for step in steps:
            status, answer = await send(session, url, step, ids)
            assert 200 <= status < 300, (step, status, answer)
            if step.n in lose and step.lookup is not None:
                status, found = await send(session, url, step, ids, step.lookup)
                assert (status, found["totalResults"]) == (200, 1), (step, found)
                status, answer = 201, found["Resources"][0]
            elif step.n in lose:
                status, answer = await send(session, url, step, ids)
                assert 200 <= status < 300 or (step.method, status) == ("DELETE", 404), (step, status, answer)
            if step.method == "GET":
                assert answer["totalResults"] == 0, (step, answer)
            if step.method == "POST":
                assert status == 201 and answer["id"], (step, answer)
                ids[step.chain] = answer["id"]


async def test_entra_and_okta_replayed_land_exactly_in_the_directory_and_the_table(
    tmp_path: Path, slapd: Slapd
) -> None:
    steps, db, ids = script(), tmp_path / "accounts.db", {}
    lost = {s.n for s in steps if s.method != "GET" and s.n % 9 == 4}  # a few of each kind, sent again
    assert {s.method for s in steps if s.n in lost} == {"POST", "PATCH", "PUT", "DELETE"}
    async with served(tmp_path, replay_config(slapd, db, respond="applied")) as (p, client, _session):
        for phase in PHASES:  # answered once applied: the targets hold each phase when it is sent
            await replay_in_order(client.url, [s for s in steps if s.phase == phase], ids, lost)
            await assert_targets(slapd, db, world_after(steps, through(steps, phase)))
        # a cycle over the mirror finds both targets as the pushes left them
        for job in in_dependency_order(p.runner.config.jobs):
            summary = await p.runner.run_cycle(job)
            done = (summary.created, summary.updated, summary.disabled, summary.deleted, summary.failed)
            assert done == (0, 0, 0, 0, 0), (job.name, summary)
        await assert_served(client.url, world_after(steps))
    await assert_targets(slapd, db, world_after(steps))


# -- Killed mid-push -------------------------------------------------------------------------------------


@dataclass
class Pushed:
    """What the client knows after a push: the steps answered 2xx, the steps sent and not answered."""

    acked: set[int] = field(default_factory=set)
    unanswered: set[int] = field(default_factory=set)
    refused: list[str] = field(default_factory=list)
    found: int = 0
    """Creates and deletions sent again that turned out to have been stored before the kill."""
    in_flight_at_kill: int = 0
    """Requests sent and not answered when the last kill came (some answers may still arrive after it:
    sent before the engine died, they were answered)."""


IN_FLIGHT_AT_KILL = 4
"""Requests sent and not answered, at least, when the engine is killed."""


async def push(
    url: str,
    steps: list[Step],
    ids: dict[str, str],
    pushed: Pushed,
    *,
    kill_after: int | None = None,
    kill: Callable[[], None] | None = None,
    parallel: int = 16,
) -> None:
    """Send what `pushed` does not have acknowledged, each object's requests in order and the objects
    side by side, `parallel` requests at a time; with `kill_after`, call `kill` once that many more were
    answered and `IN_FLIGHT_AT_KILL` others wait for theirs (or, where the script lets fewer run at once,
    as the next one goes out), and send nothing more. A create sent before
    and not answered is looked up first: found, it was stored, and its id is taken."""
    resend, pushed.unanswered = set(pushed.unanswered), set()
    events = {s.n: asyncio.Event() for s in steps}
    stop, gate, answered, due = asyncio.Event(), asyncio.Semaphore(parallel), 0, False

    def killed() -> None:
        assert kill is not None
        pushed.in_flight_at_kill = len(pushed.unanswered)
        kill()
        stop.set()

    def kill_if_sent() -> None:
        if due and not stop.is_set() and pushed.unanswered:
            killed()

    def ack(step: Step, resource: Any) -> None:
        nonlocal answered, due
        pushed.acked.add(step.n)
        pushed.unanswered.discard(step.n)
        if step.method == "POST":
            ids[step.chain] = resource["id"]
        events[step.n].set()
        answered += 1
        if kill is not None and kill_after is not None and answered >= kill_after and not stop.is_set():
            if len(pushed.unanswered) >= IN_FLIGHT_AT_KILL or (due and pushed.unanswered):
                killed()
            else:  # too few in flight (a narrow stretch of the script): kill at the next chance with one
                due = True

    async def waited(step: Step) -> bool:
        for dep in step.after:
            if dep not in pushed.acked:
                waits = [asyncio.ensure_future(e.wait()) for e in (events[dep], stop)]
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for w in waits:
                    w.cancel()
                if dep not in pushed.acked:
                    return False
        return not stop.is_set()

    async def chain(session: aiohttp.ClientSession, todo: list[Step]) -> None:
        for step in todo:
            if step.n in pushed.acked:
                continue
            if not await waited(step):
                return
            async with gate:
                if stop.is_set():
                    return
                if step.n in resend and step.lookup is not None:
                    status, found = await send(session, url, step, ids, step.lookup)
                    assert status == 200, (step, status, found)
                    assert found["totalResults"] <= 1, (step, found)  # never stored twice
                    if found["totalResults"]:
                        pushed.found += 1
                        ack(step, found["Resources"][0])
                        continue
                pushed.unanswered.add(step.n)
                if due:  # runs once this request is on its way, before its answer can be read
                    asyncio.get_running_loop().call_soon(kill_if_sent)
                try:
                    status, answer = await send(session, url, step, ids)
                except (TimeoutError, aiohttp.ClientError):
                    return  # the engine is gone: this one went unanswered
            if 200 <= status < 300:
                ack(step, answer)
            elif status == 404 and step.method == "DELETE" and step.n in resend:
                pushed.found += 1  # stored before the kill: gone already
                ack(step, answer)
            else:
                pushed.refused.append(f"{step}: {status} {answer}")
                return

    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(chain(session, c) for c in chains(steps)))
    assert not pushed.refused, "\n".join(pushed.refused)


class Engine:
    """`roster run --serve` on one jobs file and state store, started, killed and started again."""

    def __init__(self, tmp_path: Path, raw: dict[str, Any], port: int) -> None:
        self.file = tmp_path / "jobs.yaml"
        self.file.write_text(json.dumps(raw))  # JSON is YAML
        self.url = f"http://127.0.0.1:{port}/scim/v2"
        self.log = tmp_path / "serve.log"
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        args = ["run", "--serve", str(self.file), "--no-progress"]
        args += ["--api-listen", f"127.0.0.1:{free_port()}", "--listen", f"127.0.0.1:{free_port()}"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROSTER_")}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "common.process.launcher", *args],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        async with aiohttp.ClientSession() as session:
            while True:
                assert self.process.poll() is None, self.log.read_text()[-4000:]
                assert time.monotonic() < deadline, "the inbound service did not start"
                try:
                    async with session.get(
                        f"{self.url}/ServiceProviderConfig",
                        headers={"Authorization": f"Bearer {ENTRA_TOKEN}"},
                    ) as answer:
                        if answer.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no answer still owed is sent, nothing is flushed or given up in order."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


async def test_a_kill_mid_push_loses_nothing_acknowledged_and_the_resent_rest_lands_exactly(
    tmp_path: Path, slapd: Slapd
) -> None:
    steps, db, ids = script(), tmp_path / "accounts.db", {}
    port = free_port()
    raw = replay_config(slapd, db, respond="stored", listen=f"127.0.0.1:{port}")
    raw["engine"]["state"] = str(tmp_path / "state.db")
    engine, pushed, seen, cuts = Engine(tmp_path, raw, port), Pushed(), [], []
    try:
        await engine.start()
        for phase in PHASES:
            todo = [s for s in steps if s.phase == phase]
            pushed.in_flight_at_kill = 0
            await push(engine.url, todo, ids, pushed, kill_after=len(todo) * 2 // 5, kill=engine.kill)
            cut = (len(pushed.acked & {s.n for s in todo}), len(pushed.unanswered), pushed.found)
            assert pushed.in_flight_at_kill, "the engine was not killed with requests in flight"
            cuts.append(cut)
            await engine.start()  # on the same state store: its first cycles read the mirror
            answered = world_after(steps, pushed.acked)
            sent = world_after(steps, pushed.acked | pushed.unanswered)  # unanswered: stored or not
            await eventually(lambda a=answered, s=sent: assert_between(slapd, db, a, s))
            await push(engine.url, todo, ids, pushed)  # sent again, then the rest
            assert {s.n for s in todo} <= pushed.acked
            now = world_after(steps, through(steps, phase))
            await eventually(lambda w=now: assert_targets(slapd, db, w))
            seen.append(
                f"{phase}: killed after {cut[0]} of {len(todo)} answers with {cut[1]} unanswered, "
                f"of which {pushed.found - cut[2]} creates or deletions were found stored"
            )
        await assert_served(engine.url, world_after(steps))
        # An answer already on its way when the engine died still arrives; in some phase, one did not.
        assert any(cut[1] for cut in cuts), "every request in flight at the kills was answered after all"
    finally:
        engine.kill()
    print("; ".join(seen))  # shown with -s
