"""The REST connector against a real in-house style service (tests/rest_service.py): every action,
idempotence, hostile values, error verdicts, listing in each paging style, and group members.

Every check reads the service's own state back, bypassing the connector.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import yaml

from common.errors import ConfigError, PermanentError, TransientError
from queues.contracts import Operation
from tests.rest_service import KEY, RestService, serving
from workers.connectors.base import Applied, Outcome
from workers.connectors.rest.connector import RestConnector
from workers.connectors.rest.settings import RestSettings, parse_rest_settings

TARGET = """
auth: {type: api_key, header: X-Api-Key, key: %(key)s}
error_path: error.message
max_concurrency: 4
max_pause_s: 5
users:
  attributes: {given: name.given, family: name.family, enabled: active}
  read: {url: "/users/{target_id}", path: data}
  match:
    - {url: "/users?login={login}", path: items}
  create:
    url: /users
    path: data
    body: {login: "{login}", email: "{email}", name: {given: "{given}", family: "{family}"}, level: "{level}",
           active: "{enabled}"}
  update:
    method: PATCH
    url: "/users/{target_id}"
    body: {login: "{login}", email: "{email}", name: {given: "{given}", family: "{family}"}, level: "{level}",
           active: "{enabled}"}
  disable: {method: POST, url: "/users/{target_id}/disable"}
  delete: {url: "/users/{target_id}"}
  list: {url: /users, path: items, paging: {style: cursor, size: 3, size_param: limit}}
groups:
  match:
    - {url: "/groups?external_id={source_id}", path: items}
    - {url: "/groups?name={name}", path: items}
  read: {url: "/groups/{target_id}", path: data}
  create: {url: /groups, path: data, body: {name: "{name}", external_id: "{source_id}"}}
  update: {url: "/groups/{target_id}", body: {name: "{name}"}}
  delete: "/groups/{target_id}"
  list: {url: /groups, path: items}
  members:
    add: {method: PUT, url: "/groups/{target_id}/members/{member_id}"}
    remove: {method: DELETE, url: "/groups/{target_id}/members/{member_id}"}
"""


def settings(url: str, **overrides: Any) -> RestSettings:
    raw = yaml.safe_load(TARGET % {"key": KEY})
    return parse_rest_settings("targets[0]", {"url": url, **raw, **overrides})


def op(action: str, object_type: str = "user", *, source_id: str | None = None, **fields: Any) -> Operation:
    extra = {
        k: fields.pop(k) for k in ("target_id", "members_add", "members_remove", "disabled") if k in fields
    }
    login = fields.get("login")
    return Operation(
        op_id=uuid.uuid4().hex,
        job="people",
        target="app",
        cycle_id="c1",
        action=action,  # type: ignore[arg-type]
        object_type=object_type,
        source_id=source_id or uuid.uuid4().hex,
        attributes=fields,
        desired_hash="h",
        matching=[["login", login]] if login else [],
        **extra,
    )


@pytest.fixture
async def service() -> AsyncIterator[RestService]:
    async with serving() as service:
        yield service


@pytest.fixture
async def rest(service: RestService) -> AsyncIterator[RestConnector]:
    async with RestConnector("app", settings(service.url)) as connector:
        yield connector


async def one(connector: RestConnector, operation: Operation) -> Outcome:
    [outcome] = await connector.apply([operation])
    return outcome


def applied_id(outcome: Outcome) -> str:
    assert isinstance(outcome, Applied), outcome
    assert outcome.target_id is not None
    return outcome.target_id


async def test_create_update_disable_delete_land_in_the_service(
    service: RestService, rest: RestConnector
) -> None:
    user_id = applied_id(await one(rest, op("create", login="ada", email="ada@x.org", given="Ada", level=3)))
    assert service.users[user_id] == {
        "id": user_id,
        "login": "ada",
        "email": "ada@x.org",
        "name": {"given": "Ada"},  # family is not mapped: left out, not null
        "level": 3,  # the value's JSON type is kept
        "active": True,
    }
    assert user_id.startswith("u-")

    sent = len(service.requests)
    await one(rest, op("update", target_id=user_id, login="ada", email="ada@x.org", given="Ada", level=3))
    assert service.requests[sent:] == [("GET", f"/api/users/{user_id}")]  # nothing differs: no write

    await one(
        rest, op("update", target_id=user_id, login="ada", email="lovelace@x.org", given="Ada", level=3)
    )
    assert service.users[user_id]["email"] == "lovelace@x.org"
    assert service.requests[-1] == ("PATCH", f"/api/users/{user_id}")

    assert applied_id(await one(rest, op("disable", target_id=user_id, login="ada"))) == user_id
    assert service.users[user_id]["active"] is False
    assert applied_id(await one(rest, op("delete", target_id=user_id, login="ada"))) == user_id
    assert user_id not in service.users
    # Deleting or disabling what is gone is done, not an error.
    assert isinstance(await one(rest, op("delete", target_id=user_id, login="ada")), Applied)
    assert isinstance(await one(rest, op("disable", target_id=user_id, login="ada")), Applied)


async def test_an_account_left_disabled_is_written_so_by_the_flag_in_the_body_in_one_request(
    service: RestService, rest: RestConnector
) -> None:
    sent = len(service.requests)
    user_id = applied_id(await one(rest, op("create", login="cy", email="cy@x.org", disabled=True)))
    assert service.users[user_id]["active"] is False
    assert service.requests[sent:] == [("GET", "/api/users?login=cy"), ("POST", "/api/users")]
    # An update that changes no attribute still sends the flag when the object shows another state.
    sent = len(service.requests)
    await one(rest, op("update", target_id=user_id, login="cy", email="cy@x.org"))
    assert service.users[user_id]["active"] is True
    await one(rest, op("update", target_id=user_id, login="cy", email="cy@x.org", disabled=True))
    assert service.users[user_id]["active"] is False
    assert [m for m, _ in service.requests[sent:]] == ["GET", "PATCH", "GET", "PATCH"]


async def test_without_the_flag_in_its_bodies_the_disable_call_follows_the_write(
    service: RestService,
) -> None:
    raw = yaml.safe_load(TARGET % {"key": KEY})
    for call in ("create", "update"):
        del raw["users"][call]["body"]["active"]
    async with RestConnector("app", parse_rest_settings("t", {"url": service.url, **raw})) as connector:
        create = op("create", login="di", email="di@x.org", disabled=True)
        user_id = applied_id(await one(connector, create))
        assert service.users[user_id]["active"] is False
        assert service.requests[-1] == ("POST", f"/api/users/{user_id}/disable")
        service.users[user_id]["active"] = True  # a crash between the two: the retry disables it
        assert applied_id(await one(connector, create)) == user_id
        assert service.users[user_id]["active"] is False and len(service.users) == 1
        await one(connector, op("update", target_id=user_id, login="di", email="new@x.org", disabled=True))
    assert service.users[user_id] | {} == {
        "id": user_id,
        "login": "di",
        "email": "new@x.org",
        "active": False,
    }
    assert [m for m, _ in service.requests[-3:]] == ["GET", "PATCH", "POST"]


async def test_with_neither_the_flag_nor_a_disable_call_a_disabled_write_fails_before_it_writes(
    service: RestService,
) -> None:
    raw = yaml.safe_load(TARGET % {"key": KEY})
    del raw["users"]["disable"]
    del raw["users"]["update"]["body"]["active"]
    async with RestConnector("app", parse_rest_settings("t", {"url": service.url, **raw})) as connector:
        outcomes = await connector.apply(
            [
                op("create", login="no", disabled=True),
                op("create", "group", source_id="g1", name="Ops", disabled=True),
            ]
        )
    assert all(isinstance(o, PermanentError) and o.code == "config" for o in outcomes), outcomes
    assert "add `disable:` under `users:`" in outcomes[0].message and "{enabled}" in outcomes[0].message
    assert "`disable:` under `groups:`" in outcomes[1].message
    assert service.requests == [] and service.users == {} and service.groups == {}


async def test_an_update_sends_only_the_changed_attributes(service: RestService, rest: RestConnector) -> None:
    user_id = applied_id(
        await one(rest, op("create", login="bea", email="b@x.org", given="Bea", family="Ng"))
    )
    service.users[user_id]["email"] = "kept-by-the-app@x.org"  # the app's own change to another field
    service.users[user_id]["name"]["family"] = "Old"
    # The source changes the family name only; what the service answered as email is the source's again.
    await one(
        rest, op("update", target_id=user_id, login="bea", email="b@x.org", given="Bea", family="Nguyen")
    )
    assert service.users[user_id]["name"] == {"given": "Bea", "family": "Nguyen"}
    assert service.users[user_id]["email"] == "b@x.org"


async def test_a_create_matches_first_so_a_redelivered_batch_applies_once(
    service: RestService, rest: RestConnector
) -> None:
    batch = [op("create", source_id=f"s{i}", login=f"user{i}", email=f"u{i}@x.org") for i in range(6)]
    first = [applied_id(o) for o in await rest.apply(batch)]
    again = [applied_id(o) for o in await rest.apply(batch)]
    assert first == again
    assert sorted(u["login"] for u in service.users.values()) == [f"user{i}" for i in range(6)]

    # An account made by hand before Roster came: matched by login (any case), adopted, updated.
    service.users["u-90000"] = {"id": "u-90000", "login": "GRACE", "email": "old@x.org", "active": False}
    assert applied_id(await one(rest, op("create", login="grace", email="grace@x.org"))) == "u-90000"
    assert service.users["u-90000"] | {} == {
        "id": "u-90000",
        "login": "grace",
        "email": "grace@x.org",
        "active": True,
    }


async def test_a_409_on_create_is_resolved_by_matching_again(
    service: RestService, rest: RestConnector
) -> None:
    def another_writer(request: Any) -> None:  # creates the account just after Roster's search
        if request.method == "GET" and not service.users:
            service.users["u-90001"] = {
                "id": "u-90001",
                "login": "hopper",
                "email": "h@x.org",
                "active": True,
            }

    service.after = another_writer
    outcome = await one(rest, op("create", login="Hopper", email="grace.hopper@x.org"))
    assert applied_id(outcome) == "u-90001"
    assert [m for m, _ in service.requests] == ["GET", "POST", "GET", "PATCH"]
    assert len(service.by_login("hopper")) == 1
    assert service.users["u-90001"]["email"] == "grace.hopper@x.org"


async def test_hostile_characters_travel_as_values_never_as_url_syntax(
    service: RestService, rest: RestConnector
) -> None:
    hostile = ["a/b", "c?d=e&f", "g#h", "100%", 'o\'brien "q"', "zoë 東京", "x y+z", "../users"]
    ids = [applied_id(await one(rest, op("create", login=x, email=f"{x}@x.org"))) for x in hostile]
    assert len(set(ids)) == len(hostile)
    assert sorted(service.users[i]["login"] for i in ids) == sorted(hostile)
    for login, user_id in zip(hostile, ids, strict=True):
        # Matched again by the same value: the search's query carried it whole.
        assert applied_id(await one(rest, op("create", login=login, email=f"{login}@x.org"))) == user_id
    assert len(service.users) == len(hostile)
    # A target id with the same characters stays one path segment: that object, and no other, changes.
    service.users["u/1?x#y"] = {"id": "u/1?x#y", "login": "odd", "active": True}
    before = {i: dict(u) for i, u in service.users.items()}
    outcome = await one(rest, op("update", target_id="u/1?x#y", login="odd", email="odd@x.org"))
    assert applied_id(outcome) == "u/1?x#y"
    assert service.requests[-1] == ("PATCH", "/api/users/u%2F1%3Fx%23y")
    assert service.users == {**before, "u/1?x#y": {**before["u/1?x#y"], "email": "odd@x.org"}}


async def test_a_url_placeholder_without_a_value_refuses_the_operation(rest: RestConnector) -> None:
    outcome = await one(rest, op("create", email="nobody@x.org"))  # no login: no search can run
    assert isinstance(outcome, PermanentError)
    assert "login" in outcome.message


async def test_4xx_is_permanent_with_the_services_message_and_5xx_transient(
    service: RestService, rest: RestConnector
) -> None:
    service.users["u-1"] = {"id": "u-1", "login": "taken", "active": True}
    user_id = applied_id(await one(rest, op("create", login="free")))
    refused = await one(rest, op("update", target_id=user_id, login="Taken"))
    assert isinstance(refused, PermanentError)
    assert refused.code == "409"
    assert "login 'Taken' is taken" in refused.message

    service.faults.fail_nth = 1
    failed = await one(rest, op("update", target_id=user_id, login="free", email="e@x.org"))
    assert isinstance(failed, TransientError) and failed.code == "500"
    assert "internal error" in failed.message


async def test_503_with_retry_after_pauses_the_whole_target(
    service: RestService, rest: RestConnector
) -> None:
    service.faults.status_503 = 1
    service.faults.retry_after = "1"
    first = await one(rest, op("create", login="paused"))
    assert isinstance(first, TransientError) and first.code == "503"
    assert rest.gate.pause.remaining_s > 0.5
    started_at = time.monotonic()
    applied_id(await one(rest, op("create", login="paused")))
    assert time.monotonic() - started_at >= 0.5  # the retry waited for the pause
    service.faults.status_429 = 1
    assert isinstance(await one(rest, op("create", login="slow")), TransientError)


async def test_a_stalled_service_is_a_transient_timeout(service: RestService) -> None:
    service.faults.stall_s = 2.0
    async with RestConnector("app", settings(service.url, timeout_s=0.3)) as connector:
        outcome = await one(connector, op("create", login="stalled"))
    assert isinstance(outcome, TransientError) and outcome.code == "timeout"


async def test_secrets_never_reach_a_message(service: RestService) -> None:
    service.key = "the-right-key"  # the service echoes the wrong key it got: the connector hides it
    async with RestConnector("app", settings(service.url)) as connector:
        outcome = await one(connector, op("create", login="who"))
    assert isinstance(outcome, PermanentError) and outcome.code == "401"
    assert KEY not in outcome.message and "API key '***' is not valid" in outcome.message
    assert KEY not in repr(settings(service.url))


@pytest.mark.parametrize(
    "paging",
    [
        {"style": "cursor", "size": 3},
        {"style": "offset", "size": 3},
        {"style": "page", "size": 3, "size_param": "per_page"},
        {"style": "link", "size": 3},
        {"style": "none"},
    ],
)
async def test_a_listing_holds_every_object_once_in_each_paging_style(
    service: RestService, paging: dict[str, Any]
) -> None:
    for i in range(10):
        service.users[f"u-{i:05d}"] = {"id": f"u-{i:05d}", "login": f"l{i}", "email": f"e{i}@x.org"}
    raw = yaml.safe_load(TARGET % {"key": KEY})
    raw["users"]["list"]["paging"] = paging
    async with RestConnector("app", parse_rest_settings("t", {"url": service.url, **raw})) as connector:
        fields = connector.listing_fields("user", ["email"])
        pages = [page async for page in connector.list_objects("user", fields)]
    assert fields == ["email", "login"]
    rows = [row for page in pages for row in page]
    assert sorted(rows) == [[f"u-{i:05d}", f"e{i}@x.org", f"l{i}"] for i in range(10)]
    if paging["style"] != "none":
        assert len(pages) == 4


async def test_a_listing_that_shifts_under_it_is_incomplete_not_short(service: RestService) -> None:
    for i in range(6):
        service.users[f"u-{i:05d}"] = {"id": f"u-{i:05d}", "login": f"l{i}"}
    raw = yaml.safe_load(TARGET % {"key": KEY})
    raw["users"]["list"]["paging"] = {"style": "offset", "size": 3}
    async with RestConnector("app", parse_rest_settings("t", {"url": service.url, **raw})) as connector:
        pages = connector.list_objects("user", ["login"])
        await pages.__anext__()
        service.users["u-00000a"] = {"id": "u-00000a", "login": "new"}  # lands before the next offset
        with pytest.raises(TransientError, match="came twice"):
            async for _ in pages:
                pass


async def test_group_members_are_added_and_removed_one_call_each(
    service: RestService, rest: RestConnector
) -> None:
    users = [applied_id(await one(rest, op("create", login=f"m{i}"))) for i in range(3)]
    group_id = applied_id(
        await one(rest, op("create", "group", source_id="g1", name="Ops", members_add=users[:2]))
    )
    assert service.groups[group_id] == {
        "id": group_id,
        "name": "Ops",
        "external_id": "g1",
        "members": users[:2],
    }
    # A redelivered create finds the group by its source id, and re-adding members is harmless.
    again = await one(rest, op("create", "group", source_id="g1", name="Ops", members_add=users[:2]))
    assert applied_id(again) == group_id
    await one(
        rest,
        op(
            "update",
            "group",
            source_id="g1",
            target_id=group_id,
            name="Ops",
            members_add=[users[2]],
            members_remove=[users[0], users[0]],
        ),
    )
    assert service.groups[group_id]["members"] == [users[1], users[2]]
    assert len(service.groups) == 1
    assert isinstance(await one(rest, op("delete", "group", target_id=group_id)), Applied)
    assert service.groups == {}


async def test_settings_errors_name_the_key() -> None:
    raw = yaml.safe_load(TARGET % {"key": KEY})
    with pytest.raises(ConfigError, match=r"targets\[0\]\.users\.match: is required"):
        parse_rest_settings("targets[0]", {"url": "http://x", "users": {"create": {"url": "/users"}}})
    with pytest.raises(ConfigError, match=r"targets\[0\]\.users\.read\.url: .*lone"):
        parse_rest_settings("targets[0]", {"url": "http://x", "users": {"read": {"url": "/users/{id"}}})
    with pytest.raises(ConfigError, match=r"targets\[0\]\.users\.read\.path: .*not a JSON path"):
        parse_rest_settings(
            "targets[0]",
            {"url": "http://x", "users": {**raw["users"], "read": {"url": "/u", "path": "a..b"}}},
        )
    with pytest.raises(ConfigError, match=r"targets\[0\]\.users\.list\.paging\.style: 'pages' is not one of"):
        parse_rest_settings(
            "targets[0]", {"url": "http://x", "users": {"list": {"url": "/u", "paging": {"style": "pages"}}}}
        )


def test_validate_names_a_placeholder_that_no_job_sends() -> None:
    from workers.connectors.rest.check import rest_template_problems

    target = settings("http://127.0.0.1:1")
    sent = {"user": {"login": "jobs[0].mappings[0].target", "email": "jobs[0].mappings[1].target"}}
    problems = [str(p) for p in rest_template_problems("targets[0]", target, sent)]
    fix = "map that attribute, or take it out"
    assert f"targets[0].users.create: {{level}} names an attribute no job sends ({fix})" in problems
    assert not any("{target_id} names" in p or "{login} names" in p for p in problems)
    assert not any(".groups" in p for p in problems)  # no job sends groups
    with_groups = rest_template_problems("targets[0]", target, {**sent, "group": {"name": "x"}})
    assert not any(".groups" in str(p) for p in with_groups)
