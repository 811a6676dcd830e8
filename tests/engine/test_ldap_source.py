"""The LDAP source against a real OpenLDAP: paged full reads, incremental reads by modifyTimestamp."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import ldap3
import pytest

from common.errors import ConfigError, SourceError
from engine.model import SourceObject
from engine.sources.ldap import LdapSource, parse_ldap_source
from engine.sources.registry import parse_source
from tests.slapd import READER_DN, ROOT_DN, SUFFIX, Slapd

PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"


def admin(server: Slapd) -> ldap3.Connection:
    conn = ldap3.Connection(ldap3.Server(server.url, get_info=ldap3.NONE), ROOT_DN, server.password)
    conn.bind()
    return conn


def seed(server: Slapd, count: int) -> list[str]:
    conn = admin(server)
    dns = []
    for i in range(count):
        dn = f"uid=p{i},{PEOPLE}"
        attributes = {"uid": f"p{i}", "cn": f"Person {i}", "sn": f"Family {i}", "mail": [f"p{i}@example.org"]}
        if i % 2:
            attributes["mail"].append(f"alias{i}@example.org")
        assert conn.add(dn, ["inetOrgPerson"], attributes), conn.result
        dns.append(dn)
    assert conn.add(f"cn=Team,{GROUPS}", ["groupOfNames"], {"cn": "Team", "member": dns[:3]}), conn.result
    conn.unbind()
    return dns


def source_settings(server: Slapd, **overrides: Any) -> dict[str, Any]:
    return {
        "type": "ldap",
        "url": server.url,
        "bind_dn": READER_DN,
        "bind_password": server.reader_password,
        "base_dn": PEOPLE,
        "attributes": ["uid", "cn", "sn", "mail"],
        "page_size": 100,
        **overrides,
    }


async def read_all(source: LdapSource, size: int = 1000) -> tuple[list[SourceObject], list[int]]:
    objects, sizes = [], []
    async for batch in source.batches(size):
        objects += batch
        sizes.append(len(batch))
    return objects, sizes


async def test_a_full_read_pages_through_every_entry_as_a_reader(slapd: Slapd, tmp_path: Path) -> None:
    dns = seed(slapd, 750)  # past slapd's default size limit of 500 for a plain search
    settings = parse_source("jobs[0].source", source_settings(slapd), base_dir=tmp_path)
    source = settings.open()
    assert isinstance(source, LdapSource) and source.full
    objects, sizes = await read_all(source)

    assert sizes == [100] * 7 + [50]
    assert source.problem_count == 0
    by_uid = {o.attributes["uid"]: o for o in objects}
    assert len(objects) == len(by_uid) == len(dns)
    p1 = by_uid["p1"]
    assert p1.attributes == {
        "dn": f"uid=p1,{PEOPLE}",
        "uid": "p1",
        "cn": "Person 1",
        "sn": "Family 1",
        "mail": ["p1@example.org", "alias1@example.org"],
    }
    assert len({o.source_id for o in objects}) == len(dns)  # entryUUIDs, one each


async def test_groups_come_with_their_members_as_a_list(slapd: Slapd, tmp_path: Path) -> None:
    dns = seed(slapd, 5)
    raw = source_settings(
        slapd, base_dn=GROUPS, filter="(objectClass=groupOfNames)", attributes=["cn", "member"]
    )
    raw["id_attribute"] = "dn"
    source = LdapSource(parse_ldap_source("s", raw, base_dir=tmp_path))
    (team,), _ = await read_all(source)
    assert team.source_id == f"cn=Team,{GROUPS}"
    assert team.attributes["member"] == dns[:3]


async def test_with_member_base_member_dns_become_the_ids_of_those_members(
    slapd: Slapd, tmp_path: Path
) -> None:
    dns = seed(slapd, 5)
    conn = admin(slapd)
    # The same members spelled otherwise, one entry outside the base and one that is not there at all.
    members = [dns[0].upper(), dns[1].replace(",", ", "), ROOT_DN, f"uid=gone,{PEOPLE}"]
    assert conn.add(f"cn=Other,{GROUPS}", ["groupOfNames"], {"cn": "Other", "member": members})
    conn.unbind()
    people, _ = await read_all(LdapSource(parse_ldap_source("s", source_settings(slapd), base_dir=tmp_path)))
    id_of = {o.attributes["dn"]: o.source_id for o in people}
    raw = source_settings(
        slapd,
        base_dn=GROUPS,
        filter="(objectClass=groupOfNames)",
        attributes=["cn", "member"],
        member_base=PEOPLE,
    )
    source = LdapSource(parse_ldap_source("s", raw, base_dir=tmp_path))
    groups, _ = await read_all(source)

    by_cn = {g.attributes["cn"]: g for g in groups}
    assert by_cn["Team"].attributes["member"] == [id_of[dn] for dn in dns[:3]]
    assert by_cn["Other"].attributes["member"] == [id_of[dns[0]], id_of[dns[1]]]
    (problem,) = source.problems
    assert problem.line == by_cn["Other"].line
    assert f"2 member(s) not found under {PEOPLE}" in problem.message
    assert ROOT_DN in problem.message and "left out" in problem.message
    assert source.skipped == 0  # a member left out is a note: its group was read, the read is complete

    by_uid = {**raw, "member_id_attribute": "uid"}
    groups, _ = await read_all(LdapSource(parse_ldap_source("s", by_uid, base_dir=tmp_path)))
    assert {g.attributes["cn"]: g.attributes["member"] for g in groups}["Team"] == ["p0", "p1", "p2"]


async def test_an_incremental_read_picks_up_only_what_changed(slapd: Slapd, tmp_path: Path) -> None:
    seed(slapd, 200)
    settings = parse_ldap_source("s", source_settings(slapd, attributes=["uid", "mail"]), base_dir=tmp_path)
    full = LdapSource(settings)
    await read_all(full)
    watermark = full.watermark
    assert watermark is not None and watermark.endswith("Z")

    time.sleep(1.1)  # the server stamps in whole seconds
    conn = admin(slapd)
    for uid in ("p3", "p150"):
        assert conn.modify(f"uid={uid},{PEOPLE}", {"mail": [(ldap3.MODIFY_REPLACE, [f"{uid}@new.example"])]})
    assert conn.add(f"uid=fresh,{PEOPLE}", ["inetOrgPerson"], {"uid": "fresh", "cn": "F", "sn": "F"})
    conn.unbind()

    incremental = LdapSource(settings, since=watermark)
    assert not incremental.full
    objects, _ = await read_all(incremental)
    # `>=`: entries stamped within the watermark's own second come again; nothing older does.
    stamped_then = {
        e["uid"][0]
        for e in slapd.entries(PEOPLE, f"(&(uid=*)(modifyTimestamp={watermark}))", ["uid"]).values()
        if e["uid"][0] not in ("p3", "p150", "fresh")
    }
    assert {o.attributes["uid"] for o in objects} == {"p3", "p150", "fresh"} | stamped_then
    assert len(stamped_then) < 200
    assert {o.attributes["mail"] for o in objects if o.attributes["uid"] == "p3"} == {"p3@new.example"}
    assert incremental.watermark is not None and incremental.watermark > watermark

    again = LdapSource(settings, since=incremental.watermark)
    objects, _ = await read_all(again)
    assert {o.attributes["uid"] for o in objects} <= {"p3", "p150", "fresh"}


async def test_an_entry_without_an_id_is_a_problem_not_an_error(slapd: Slapd, tmp_path: Path) -> None:
    seed(slapd, 3)
    raw = source_settings(slapd, id_attribute="employeeNumber")
    source = LdapSource(parse_ldap_source("s", raw, base_dir=tmp_path))
    objects, _ = await read_all(source)
    assert objects == [] and source.problem_count == 3
    assert source.skipped == 3  # each entry skipped makes the read incomplete
    assert "has no employeeNumber" in str(source.problems[0])


@pytest.mark.parametrize("mode", ["ldaps", "start_tls"])
async def test_a_read_over_tls_with_a_ca_file(slapd: Slapd, tmp_path: Path, mode: str) -> None:
    seed(slapd, 3)
    tls = {"url": slapd.ldaps_url} if mode == "ldaps" else {"start_tls": True}
    raw = source_settings(slapd, ca_file=str(slapd.ca_file), **tls)
    objects, _ = await read_all(LdapSource(parse_ldap_source("s", raw, base_dir=tmp_path)))
    assert sorted(o.attributes["uid"] for o in objects) == ["p0", "p1", "p2"]

    without_ca = source_settings(slapd, url=slapd.ldaps_url)
    with pytest.raises(SourceError, match="cannot connect"):
        await read_all(LdapSource(parse_ldap_source("s", without_ca, base_dir=tmp_path)))


async def test_a_ca_file_gone_since_the_settings_were_read_is_a_source_error(
    slapd: Slapd, tmp_path: Path
) -> None:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(slapd.ca_file.read_bytes())
    raw = source_settings(slapd, url=slapd.ldaps_url, ca_file=str(ca_file))
    source = LdapSource(parse_ldap_source("s", raw, base_dir=tmp_path))
    ca_file.unlink()
    with pytest.raises(SourceError, match="the TLS settings cannot be used"):
        await read_all(source)


async def test_a_wrong_password_or_a_stopped_server_is_a_source_error_without_the_password(
    slapd: Slapd, tmp_path: Path
) -> None:
    secret = "not-the-password-42"
    source = LdapSource(
        parse_ldap_source("s", source_settings(slapd, bind_password=secret), base_dir=tmp_path)
    )
    with pytest.raises(SourceError) as caught:
        await read_all(source)
    assert "invalidCredentials" in str(caught.value) and secret not in str(caught.value)

    slapd.stop()
    source = LdapSource(parse_ldap_source("s", source_settings(slapd), base_dir=tmp_path))
    with pytest.raises(SourceError, match="cannot connect"):
        await read_all(source)


def test_settings_errors_name_the_key_and_the_fix(tmp_path: Path) -> None:
    base = {"type": "ldap", "url": "ldap://h", "bind_dn": "cn=r", "bind_password": "pw", "base_dn": "dc=x"}
    cases = [
        ({"url": "https://h"}, "jobs[0].source.url", "ldap://"),
        ({"filter": "objectClass=person"}, "jobs[0].source.filter", "parentheses"),
        ({"scope": "base"}, "jobs[0].source.scope", "one of"),
        ({"page_size": 0}, "jobs[0].source.page_size", "at least 1"),
        ({"pagesize": 10}, "jobs[0].source.pagesize", "page_size"),
        ({"member_base": "people"}, "jobs[0].source.member_base", "not a DN"),
        ({"member_id_attribute": "uid"}, "jobs[0].source.member_id_attribute", "only with `member_base:`"),
    ]
    for override, where, words in cases:
        with pytest.raises(ConfigError) as caught:
            parse_source("jobs[0].source", {**base, **override}, base_dir=tmp_path)
        assert where in str(caught.value) and words in str(caught.value), str(caught.value)
    assert "pw" not in repr(parse_ldap_source("s", base, base_dir=tmp_path))


def test_the_link_is_checked_as_the_ldap_target_checks_it(tmp_path: Path) -> None:
    secret = "s3cret-pw-1234"
    base = {"type": "ldap", "url": "ldap://h", "bind_dn": "cn=r", "bind_password": secret, "base_dn": "dc=x"}
    cases = [
        ({"url": "ldaps://h", "start_tls": True}, "s.start_tls", "ldaps:// is TLS already"),
        ({"bind_password": ""}, "s.bind_password", "non-empty string"),
        ({"bind_password": 1234}, "s.bind_password", "non-empty string"),
        ({"bind_dn": "reader"}, "s.bind_dn", "write a DN such as"),
        ({"connect_timeout_s": 0}, "s.connect_timeout_s", "above 0"),
    ]
    for override, where, words in cases:
        with pytest.raises(ConfigError) as caught:
            parse_ldap_source("s", {**base, **override}, base_dir=tmp_path)
        message = str(caught.value)
        assert where in message and words in message and "1234" not in message, message
    settings = parse_ldap_source("s", {**base, "connect_timeout_s": 2.5}, base_dir=tmp_path)
    assert settings.link.connect_timeout_s == 2.5 and secret not in repr(settings)


PHOTO = b"\xff\xd8\xff\xe0 not text"  # the start of a JPEG: not UTF-8


def _give_photos(server: Slapd, dns: list[str]) -> None:
    conn = admin(server)
    for dn in dns:
        assert conn.modify(dn, {"jpegPhoto": [(ldap3.MODIFY_ADD, [PHOTO])]}), conn.result
    conn.unbind()


@pytest.mark.parametrize("named", ["attribute", "id"])
async def test_an_entry_with_a_value_that_is_not_text_is_skipped_and_counted(
    slapd: Slapd, tmp_path: Path, named: str
) -> None:
    dns = seed(slapd, 4)
    _give_photos(slapd, dns[1:2])
    names = ["uid", "cn", "jpegPhoto"] if named == "attribute" else ["uid", "cn"]
    raw = source_settings(slapd, attributes=names)
    if named == "id":
        raw["id_attribute"] = "jpegPhoto"
        _give_photos(slapd, [dns[0], dns[2], dns[3]])
    source = LdapSource(parse_ldap_source("s", raw, base_dir=tmp_path))
    objects, _ = await read_all(source)

    # Never a value with U+FFFD in place of the bytes: the entry cannot be read, so the read is incomplete.
    assert all("\ufffd" not in repr(o) for o in objects)
    expected = 3 if named == "attribute" else 0
    assert len(objects) == expected and source.skipped == 4 - expected
    problem = source.problems[0]
    assert "jpegPhoto has a value that is not UTF-8 text" in problem.message
    assert problem.message.endswith("entry skipped")


async def test_reading_every_attribute_leaves_a_binary_one_out_and_says_so_once(
    slapd: Slapd, tmp_path: Path
) -> None:
    dns = seed(slapd, 3)
    _give_photos(slapd, dns[:2])
    raw = source_settings(slapd)
    del raw["attributes"]
    source = LdapSource(parse_ldap_source("s", raw, base_dir=tmp_path))
    objects, _ = await read_all(source)

    assert len(objects) == 3 and source.skipped == 0
    assert all("jpegPhoto" not in o.attributes and o.attributes["uid"] for o in objects)
    (note,) = source.problems
    assert "jpegPhoto has a value that is not UTF-8 text" in note.message and "left out" in note.message
