"""Connectors list a target's objects (id and matching attributes) against the real peers: a private
slapd, SQLite and PostgreSQL (scim2-server in tests/integration/test_scim_listing.py and below).

Each test makes more objects than one page holds, some out of band, and checks that the listing holds
each exactly once with its values, or fails: never a part of them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from common.errors import ConnectorError, PermanentError
from common.peers.ldap_names import same_dn
from tests.conftest import running_scim_server
from tests.slapd import READER_DN, SUFFIX, Slapd, target_settings
from tests.workers.test_ldap_connector import op as ldap_op
from tests.workers.test_ldap_connector import person as ldap_person
from tests.workers.test_sql_connector import Database, db, op  # noqa: F401  (db is a fixture)
from workers.connectors.base import Applied, Lister
from workers.connectors.ldap.connector import LdapConnector
from workers.connectors.ldap.settings import parse_ldap_settings
from workers.connectors.scim.connector import ScimConnector
from workers.connectors.scim.listing import PageReader, listing_query
from workers.connectors.scim.paths import parse_path
from workers.connectors.scim.settings import parse_scim_settings
from workers.connectors.sql.connector import SqlConnector
from workers.connectors.sql.settings import parse_sql_settings


async def everything(
    connector: Lister, object_type: str, attributes: Sequence[str]
) -> tuple[list[str], list[list[Any]]]:
    fields = connector.listing_fields(object_type, attributes)
    rows = [row async for page in connector.list_objects(object_type, fields) for row in page]
    return fields, rows


async def test_ldap_lists_every_entry_of_a_kind_under_its_base_over_several_pages(slapd: Slapd) -> None:
    connector = LdapConnector("ldap", parse_ldap_settings("targets[0]", target_settings(slapd)))
    await connector.open()
    try:
        ops = [ldap_op("create", ldap_person(i)) for i in range(1_100)]  # pages of 500
        for start in range(0, len(ops), 200):
            outcomes = await connector.apply(ops[start : start + 200])
            assert all(isinstance(o, Applied) for o in outcomes), outcomes
        fields, rows = await everything(connector, "user", ["email"])
    finally:
        await connector.aclose()

    assert fields == ["email", "userName"]  # asked for, then what this target matches on (uid)
    assert len(rows) == 1_100
    by_uid = {row[2]: row for row in rows}
    assert len(by_uid) == 1_100
    for i in range(1_100):
        dn, email, _uid = by_uid[f"u{i}"]
        assert same_dn(dn, f"uid=u{i},ou=people,{SUFFIX}")
        assert email == f"u{i}@example.org"


async def test_ldap_a_reader_lists_past_the_servers_size_limit_by_paging(slapd: Slapd) -> None:
    writer = LdapConnector("ldap", parse_ldap_settings("targets[0]", target_settings(slapd)))
    reader_settings = target_settings(slapd, bind_dn=READER_DN, bind_password=slapd.reader_password)
    reader = LdapConnector("ldap", parse_ldap_settings("targets[0]", reader_settings))
    await writer.open()
    await reader.open()
    try:
        ops = [ldap_op("create", ldap_person(i)) for i in range(600)]  # slapd's default size limit: 500
        for start in range(0, len(ops), 200):
            await writer.apply(ops[start : start + 200])
        _, rows = await everything(reader, "user", [])
    finally:
        await writer.aclose()
        await reader.aclose()

    assert len({row[0] for row in rows}) == len(rows) == 600


async def test_sql_lists_every_row_by_one_select_in_pages(db: Database) -> None:  # noqa: F811
    connector = SqlConnector("app", db.settings())
    await connector.open()
    try:
        ops = [op("create", f"user{i}", userName=f"user{i}", mail=f"m{i}@example.org") for i in range(5_200)]
        for start in range(0, len(ops), 1_000):
            outcomes = await connector.apply(ops[start : start + 1_000])
            assert all(isinstance(o, Applied) for o in outcomes)
        await db.execute(f"INSERT INTO {db.table} (user_name, email) VALUES ('oob', NULL)")  # out of band
        pages = []
        fields = connector.listing_fields("user", ["mail"])
        async for page in connector.list_objects("user", fields):
            pages.append(page)
        with pytest.raises(PermanentError, match="'nickname' has no column"):
            connector.listing_fields("user", ["nickname"])
    finally:
        await connector.aclose()

    assert fields == ["mail", "userName"]
    assert [len(page) for page in pages] == [5_000, 201]
    rows = {row[0]: row[1:] for page in pages for row in page}
    assert len(rows) == 5_201
    assert rows["oob"] == [None, "oob"]
    assert all(rows[f"user{i}"] == [f"m{i}@example.org", f"user{i}"] for i in range(5_200))


async def test_scim_lists_past_the_servers_page_cap(tmp_path: Path) -> None:
    with running_scim_server(tmp_path) as server:
        async with aiohttp.ClientSession() as session:
            for i in range(2_300):  # the server answers at most 1,000 a page
                body = {
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": f"User{i}@Example.org",
                    "externalId": f"E{i}",
                    "emails": [{"type": "work", "value": f"w{i}@example.org"}],
                }
                async with session.post(f"{server.url}/Users", json=body) as answer:
                    assert answer.status == 201
        settings = parse_scim_settings("targets[0]", {"url": server.url})
        async with ScimConnector("app", settings) as connector:
            fields, rows = await everything(connector, "user", ['emails[type eq "work"].value'])

    assert fields == ['emails[type eq "work"].value', "userName", "externalId"]
    assert len({row[0] for row in rows}) == len(rows) == 2_300
    by_external = {row[3]: row for row in rows}
    assert by_external["E7"][1:3] == ["w7@example.org", "User7@Example.org"]


def test_a_listing_in_pages_that_do_not_add_up_is_an_error() -> None:
    reader = PageReader("user", [parse_path("userName")])
    reader.read({"totalResults": 3, "Resources": [{"id": "a", "userName": "x"}, {"id": "b"}]})
    with pytest.raises(ConnectorError, match="totalResults went from 3 to 2"):
        reader.read({"totalResults": 2, "Resources": [{"id": "c"}]})
    again = PageReader("user", [parse_path("userName")])
    again.read({"totalResults": 3, "Resources": [{"id": "a"}]})
    with pytest.raises(ConnectorError, match="came twice"):
        again.read({"totalResults": 3, "Resources": [{"id": "a"}]})
    short = PageReader("user", [])
    short.read({"totalResults": 3, "Resources": [{"id": "a"}]})
    with pytest.raises(ConnectorError, match="came back empty"):
        short.read({"totalResults": 3, "Resources": []})


def test_a_server_that_ignores_attributes_answers_whole_resources_read_the_same_way() -> None:
    paths = [parse_path('emails[type eq "work"].value'), parse_path("userName")]
    assert listing_query(paths, 1001) == "startIndex=1001&count=1000&attributes=emails,userName"
    whole = {
        "id": "t-1",
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "UserName": "ada@example.org",  # attribute names in the server's own case
        "name": {"givenName": "Ada"},
        "emails": [{"type": "home", "value": "h@x.org"}, {"type": "Work", "value": "w@x.org"}],
        "meta": {"resourceType": "User"},
    }
    rows = PageReader("user", paths).read({"totalResults": 1, "Resources": [whole]})
    assert rows == [["t-1", "w@x.org", "ada@example.org"]]


async def test_sql_lists_dates_decimals_and_a_number_key_as_text(tmp_path: Path) -> None:
    database = tmp_path / "typed.db"
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE staff (id INTEGER PRIMARY KEY, name TEXT, born DATE, pay NUMERIC(10, 2))")
        conn.execute("INSERT INTO staff VALUES (7, 'Ada', '1815-12-10', 1234.50), (8, NULL, NULL, NULL)")
    settings = parse_sql_settings(
        "targets[0]",
        {
            "url": f"sqlite:///{database}",
            "table": "staff",
            "key_column": "id",
            "columns": {"id": "id", "name": "name", "born": "born", "pay": "pay"},
            "on_disable": "delete",
        },
    )
    connector = SqlConnector("app", settings)
    await connector.open()
    try:
        fields, rows = await everything(connector, "user", ["name", "born", "pay"])
    finally:
        await connector.aclose()

    assert fields == ["name", "born", "pay", "id"]
    assert sorted(rows) == [["7", "Ada", "1815-12-10", "1234.50", 7], ["8", None, None, None, 8]]
