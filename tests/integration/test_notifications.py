"""Notifications, delivered for real: a webhook receiver (an aiohttp server of the test's) and an SMTP
server (aiosmtpd) on 127.0.0.1, both reading what Roster sends as any receiver would. Deletions held by
the guard make one webhook, whose signature checks out with the secret, and one mail; the same hold
found again makes none; a receiver that fails is tried again, and one that is away when the engine stops
gets the delivery from the next engine; a route whose tries are used up records why, without the URL's
token; a worker that stops answering is said."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

from common.errors import ConfigError
from engine.config import parse_engine_config
from engine.notify import outbox
from engine.notify.notifier import Notifier, notifying
from engine.notify.senders import SIGNATURE_HEADER, verify
from engine.pipeline.fleet import Fleet, FleetSettings
from queues.presence import Announcement, TargetReport
from tests.integration.pipeline import job_config, person, pipeline, sql_target, write_csv
from tests.integration.processes import REPO, free_port
from tests.integration.test_cli import ROSTER

SECRET = "0f1e2d3c4b5a69788796a5b4c3d2e1f0-hook"
URL_TOKEN = "receiver-token-7c1d0e9b"


@dataclass
class Receiver:
    """A webhook receiver: answers 503 to the first `failing` requests, then 204; keeps each request."""

    failing: int = 0
    port: int = field(default_factory=free_port)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/roster?token={URL_TOKEN}"

    async def start(self) -> None:
        async def take(request: web.Request) -> web.Response:
            self.requests.append((dict(request.headers), await request.read()))
            if len(self.requests) <= self.failing:
                return web.Response(status=503)
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/roster", take)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def delivered(self) -> list[dict[str, Any]]:
        """The bodies of the requests answered 204 (each checked against its signature)."""
        out = []
        for i, (headers, body) in enumerate(self.requests):
            assert verify(SECRET, headers[SIGNATURE_HEADER], body, now=time.time()), headers
            assert not verify(
                "another-secret-of-sufficient-length", headers[SIGNATURE_HEADER], body, now=time.time()
            )
            if i >= self.failing:
                out.append(orjson.loads(body))
        return out


class Mailbox:
    """A real SMTP server (aiosmtpd) that keeps each message it is given."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port())

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd calls it so
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))  # type: ignore[arg-type]
        return "250 OK"


@pytest.fixture
def mailbox() -> Any:
    box = Mailbox()
    box.controller.start()
    yield box
    box.controller.stop()


def config(tmp_path: Path, hook_url: str, mailbox: Mailbox | None, **notifications: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        **job_config(tmp_path, deletion_guard={"count": 2, "percent": 100}),
        **sql_target(f"sqlite:///{tmp_path / 'target.db'}"),
    }
    section: dict[str, Any] = {
        "webhooks": [
            {
                "name": "iam-hook",
                "url": hook_url,
                "secret": SECRET,
                "events": ["deletions_held", "job_quarantined", "cycle_failed", "worker_gone"],
                "timeout_s": 5,
            }
        ],
        "retry": {"attempts": 3, "first_delay_s": 0.05, "multiplier": 2},
        **notifications,
    }
    if mailbox is not None:
        section["smtp"] = {"host": "127.0.0.1", "port": mailbox.controller.port, "from": "roster@example.org"}
        section["mail"] = [
            {"name": "iam", "to": ["iam@example.org", "oncall@example.org"], "events": ["deletions_held"]}
        ]
    raw["notifications"] = section
    return raw


async def settled(notifier: Notifier, count: int, timeout_s: float = 20) -> list[dict[str, Any]]:
    """The outbox once `count` deliveries were recorded and none is pending any more."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows = await outbox.read(notifier.state)
        if len(rows) >= count and all(r["status"] != "pending" for r in rows):
            return rows
        assert time.monotonic() < deadline, rows
        await asyncio.sleep(0.02)


@asynccontextmanager
async def receiving(receiver: Receiver) -> AsyncIterator[Receiver]:
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


async def test_held_deletions_make_one_signed_webhook_and_one_mail(tmp_path: Path, mailbox: Mailbox) -> None:
    rows = [person(i) for i in range(6)]
    write_csv(tmp_path / "people.csv", rows)
    async with receiving(Receiver(failing=1)) as receiver:
        async with pipeline(tmp_path, config(tmp_path, receiver.url, mailbox)) as p:
            (job,) = p.runner.config.jobs
            async with notifying(p.runner, p.fleet) as notifier:
                assert notifier is not None
                assert (await p.runner.run_cycle(job)).created == 6  # nothing to say
                write_csv(tmp_path / "people.csv", rows[:2])
                held = await p.runner.run_cycle(job)
                assert held.staged == 4 and held.status == "held"
                sent = await settled(notifier, 2)
                again = await p.runner.run_cycle(job)  # the same hold, found again: said once
                assert again.staged == 4
                assert len(await settled(notifier, 2)) == 2

    by_channel = {row["channel"]: row for row in sent}
    assert {c: (r["status"], r["attempts"], r["event"]) for c, r in by_channel.items()} == {
        "webhook": ("sent", 2, "deletions_held"),  # the first try met a 503
        "mail": ("sent", 1, "deletions_held"),
    }
    assert by_channel["webhook"]["last_error"] is None and by_channel["webhook"]["job"] == "people"

    (delivered,) = receiver.delivered()
    assert [h["Roster-Delivery"] for h, _ in receiver.requests] == [str(by_channel["webhook"]["id"])] * 2
    assert (delivered["event"], delivered["job"], delivered["id"]) == (
        "deletions_held",
        "people",
        by_channel["webhook"]["id"],
    )
    assert delivered["details"]["held"] == 4 and delivered["details"]["cycle_id"] == held.cycle_id
    assert "held 4 deprovision(s) for approval" in delivered["text"] and "roster approve" in delivered["text"]
    assert any("deletion guard" in hold for hold in delivered["details"]["holds"])

    (mail,) = mailbox.messages
    assert mailbox.envelopes == [("roster@example.org", ["iam@example.org", "oncall@example.org"])]
    assert mail["Subject"] == "Roster: 4 deprovision(s) of job people held for approval"
    assert mail["To"] == "iam@example.org, oncall@example.org" and mail["Roster-Event"] == "deletions_held"
    text = mail.get_content()
    assert "held 4 deprovision(s) for approval" in text and held.cycle_id in text


async def test_a_delivery_pending_when_the_engine_stops_goes_out_from_the_next_engine(tmp_path: Path) -> None:
    write_csv(tmp_path / "people.csv", [person(i) for i in range(6)])
    receiver = Receiver()  # not listening yet: every try is refused
    raw = config(tmp_path, receiver.url, None, retry={"attempts": 50, "first_delay_s": 0.05, "multiplier": 1})
    async with pipeline(tmp_path, raw) as p:
        (job,) = p.runner.config.jobs
        async with notifying(p.runner) as notifier:
            assert notifier is not None
            await p.runner.run_cycle(job)
            write_csv(tmp_path / "people.csv", [person(i) for i in range(2)])
            assert (await p.runner.run_cycle(job)).staged == 4
            deadline = time.monotonic() + 20
            while not (rows := await outbox.read(notifier.state)) or rows[0]["attempts"] < 2:
                assert time.monotonic() < deadline, rows
                await asyncio.sleep(0.02)
        (row,) = await outbox.read(p.state)
        assert row["status"] == "pending" and row["last_error"].startswith("cannot connect to 127.0.0.1:")
        assert URL_TOKEN not in row["last_error"]

    async with receiving(receiver), pipeline(tmp_path, raw) as p, notifying(p.runner) as notifier:
        assert notifier is not None
        (row,) = await settled(notifier, 1)
    assert row["status"] == "sent"
    (delivered,) = receiver.delivered()
    assert delivered["event"] == "deletions_held" and delivered["id"] == row["id"]


async def test_a_route_whose_tries_are_used_up_says_why_and_never_its_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_csv(tmp_path / "people.csv", [person(i) for i in range(6)])
    caplog.set_level(logging.INFO)
    async with receiving(Receiver(failing=1000)) as receiver:
        async with pipeline(tmp_path, config(tmp_path, receiver.url, None)) as p:
            (job,) = p.runner.config.jobs
            async with notifying(p.runner) as notifier:
                assert notifier is not None
                await p.runner.run_cycle(job)
                write_csv(tmp_path / "people.csv", [person(i) for i in range(2)])
                await p.runner.run_cycle(job)
                (row,) = await settled(notifier, 1)
    assert (row["status"], row["attempts"], row["last_error"]) == (
        "failed",
        3,
        "the receiver answered HTTP 503",
    )
    assert len(receiver.requests) == 3
    said = "\n".join(
        r.getMessage() for r in caplog.records if r.name.startswith("roster")
    )  # not the receiver's
    assert "event=notification_given_up" in said and URL_TOKEN not in said and SECRET not in said


async def test_a_worker_that_stops_answering_is_said_and_one_that_leaves_is_not(tmp_path: Path) -> None:
    write_csv(tmp_path / "people.csv", [person(0)])
    now = [1000.0]
    fleet = Fleet(FleetSettings(interval_s=5, missed=3), clock=lambda: now[0])
    async with receiving(Receiver()) as receiver:
        async with pipeline(tmp_path, config(tmp_path, receiver.url, None)) as p:
            async with notifying(p.runner, fleet) as notifier:
                assert notifier is not None
                fleet.heard(_worker("w-1", "running"))
                fleet.heard(_worker("w-2", "running"))
                fleet.heard(_worker("w-2", "leaving"))  # a clean stop
                now[0] += 16  # three heartbeats of 5 s missed
                assert [m.last.id for m in fleet.sweep()] == ["w-1"]
                (row,) = await settled(notifier, 1)
    assert (row["event"], row["job"], row["status"]) == ("worker_gone", None, "sent")
    (delivered,) = receiver.delivered()
    assert delivered["details"] == {
        "worker": "w-1",
        "host": "host-a",
        "targets": ["db"],
        "reason": "missed 3 heartbeats",
    }
    assert "serving db" in delivered["text"]


def _worker(peer: str, state: str) -> Announcement:
    return Announcement(
        kind="worker",
        id=peer,
        host="host-a",
        pid=1,
        version="test",
        spoken=(4,),
        state=state,  # type: ignore[arg-type]
        started_at=0.0,
        sent_at=1.0,
        interval_s=5.0,
        targets=(TargetReport(name="db", concurrency=4),),
    )


@pytest.mark.parametrize(
    ("change", "where", "said"),
    [
        (
            {"webhooks": [{"name": "h", "url": "http://x/", "secret": SECRET, "events": ["deletions"]}]},
            "notifications.webhooks[0].events[0]",
            "'deletions' is not an event",
        ),
        (
            {
                "webhooks": [
                    {"name": "h", "url": "http://x/", "secret": "changeme", "events": ["cycle_failed"]}
                ]
            },
            "notifications.webhooks[0].secret",
            "placeholder or shorter",
        ),
        (
            {"webhooks": [{"name": "h", "url": "ftp://x/", "secret": SECRET, "events": ["cycle_failed"]}]},
            "notifications.webhooks[0].url",
            "not an http(s) URL",
        ),
        (
            {
                "webhooks": [
                    {
                        "name": "h",
                        "url": "http://x/",
                        "secret": SECRET,
                        "events": ["cycle_failed"],
                        "jobs": ["nobody"],
                    }
                ]
            },
            "notifications.webhooks[0].jobs[0]",
            "no job is named 'nobody'",
        ),
        (
            {"webhooks": [], "mail": [{"name": "m", "to": ["a@example.org"], "events": ["cycle_failed"]}]},
            "notifications.smtp",
            "`mail` needs it",
        ),
        (
            {
                "webhooks": [],
                "mail": [{"name": "m", "to": ["a@example.org, b@example.org"], "events": ["cycle_failed"]}],
                "smtp": {"host": "h", "port": 25, "from": "r@example.org"},
            },
            "notifications.mail[0].to[0]",
            "not one mail address",
        ),
    ],
)
def test_a_wrong_notification_setting_names_the_field_and_the_fix(
    tmp_path: Path, change: dict[str, Any], where: str, said: str
) -> None:
    raw = config(tmp_path, "http://127.0.0.1:1/", None)
    raw["notifications"].update(change)
    with pytest.raises(ConfigError) as caught:
        parse_engine_config(raw, base_dir=tmp_path)
    assert where in str(caught.value) and said in str(caught.value), str(caught.value)


async def test_roster_run_sends_what_it_said_before_it_ends(tmp_path: Path, mailbox: Mailbox) -> None:
    """`roster run` from cron: the mail and the webhook of the deletions it held go out before it exits."""
    write_csv(tmp_path / "people.csv", [person(i) for i in range(6)])
    async with receiving(Receiver()) as receiver:
        raw = config(tmp_path, receiver.url, mailbox)
        raw["engine"]["state"] = str(tmp_path / "state.db")
        file = tmp_path / "jobs.yaml"
        file.write_text(json.dumps(raw), encoding="utf-8")  # JSON is YAML
        first = await roster("run", str(file), "--no-progress")
        assert first[0] == 0, first
        write_csv(tmp_path / "people.csv", [person(i) for i in range(2)])
        held = await roster("run", str(file), "--no-progress")
        assert "held for approval" in held[1], held
        (delivered,) = receiver.delivered()
    assert delivered["event"] == "deletions_held" and delivered["details"]["held"] == 4
    (mail,) = mailbox.messages
    assert mail["Subject"] == "Roster: 4 deprovision(s) of job people held for approval"


async def roster(*args: str) -> tuple[int, str]:
    """`roster ARGS` as a child process, the event loop serving the receiver meanwhile."""
    child = await asyncio.create_subprocess_exec(
        *ROSTER, *args, cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(child.communicate(), 120)
    return child.returncode or 0, out.decode()


async def test_a_joiner_s_account_created_is_mailed_to_their_manager_and_a_first_load_is_not(
    tmp_path: Path, mailbox: Mailbox
) -> None:
    """The manager's address is their mail as last applied, found through the joiner's `manager`
    reference; a joiner without a manager is said to the webhook alone."""

    def write(rows: list[tuple[str, str, str]]) -> None:
        lines = ["employee_id,email,manager_id"] + [",".join(row) for row in rows]
        (tmp_path / "people.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")

    rows = [("M1", "ada@example.org", ""), ("E1", "grace@example.org", "M1")]
    write(rows)
    db = tmp_path / "target.db"
    raw: dict[str, Any] = {
        "engine": {"batch_size": 50, "linger_ms": 2},
        "jobs": [
            {
                "name": "people",
                "source": {"type": "csv", "path": str(tmp_path / "people.csv"), "id_column": "employee_id"},
                "target": "db",
                "mappings": [
                    {"target": "employee_id", "source": "employee_id", "match": True},
                    {"target": "email", "source": "email"},
                    {"target": "manager", "reference": {"source": "manager_id", "job": "people"}},
                ],
            }
        ],
        "targets": [
            {
                "name": "db",
                "type": "sql",
                "url": f"sqlite:///{db}",
                "table": "accounts",
                "key_column": "employee_id",
                "active_column": "active",
                "create_table": True,
                "columns": {"employee_id": "employee_id", "email": "email", "manager": "manager"},
            }
        ],
    }
    async with receiving(Receiver()) as receiver:
        raw["notifications"] = {
            "webhooks": [
                {"name": "hr-hook", "url": receiver.url, "secret": SECRET, "events": ["account_created"]}
            ],
            "smtp": {"host": "127.0.0.1", "port": mailbox.controller.port, "from": "roster@example.org"},
            "mail": [
                {
                    "name": "managers",
                    "events": ["account_created"],
                    "to_manager": {"reference": "manager", "address": "email"},
                }
            ],
        }
        async with pipeline(tmp_path, raw) as p:
            (job,) = p.runner.config.jobs
            async with notifying(p.runner) as notifier:
                assert notifier is not None
                assert (await p.runner.run_cycle(job)).created == 2  # the first load: not said
                write([*rows, ("E2", "linus@example.org", "M1"), ("E3", "ken@example.org", "")])
                assert (await p.runner.run_cycle(job)).created == 2
                sent = await settled(notifier, 3)
        said = sorted((d["event"], d["details"]["source_id"]) for d in receiver.delivered())

    assert said == [("account_created", "E2"), ("account_created", "E3")]
    assert sorted((r["route"], r["recipient"], r["status"]) for r in sent) == [
        ("hr-hook", None, "sent"),
        ("hr-hook", None, "sent"),
        ("managers", "ada@example.org", "sent"),
    ]
    (mail,) = mailbox.messages
    assert mailbox.envelopes == [("roster@example.org", ["ada@example.org"])]
    assert mail["Subject"] == "Roster: account created for E2 in job people"


def test_a_mail_to_the_manager_needs_a_reference_attribute_of_the_job(tmp_path: Path) -> None:
    raw = config(tmp_path, "http://127.0.0.1:1/", None)
    raw["notifications"]["smtp"] = {"host": "127.0.0.1", "port": 25, "from": "roster@example.org"}
    raw["notifications"]["mail"] = [
        {
            "name": "managers",
            "events": ["account_created"],
            "to_manager": {"reference": "manager", "address": "email"},
        }
    ]
    with pytest.raises(ConfigError) as caught:
        parse_engine_config(raw, base_dir=tmp_path)
    assert "notifications.mail[0].to_manager.reference" in str(caught.value)
    assert "'manager' is no reference attribute of people" in str(caught.value)
