"""A provisioning service's pushes, scripted: the requests Microsoft Entra ID and Okta document sending to a
SCIM application, in the order they send them, and what each means for the people and groups.

A `Step` is one HTTP request whose path and body may name other objects by `Ref` (an identity provider
knows an object's id only from the answer to its create), with its meaning as an `effect` on a `World`.
The world is the test's own account of who exists, what they hold and who is in which group; it never
asks Roster, so the views it renders (`ldap_users`, `ldap_groups`, `sql_rows`) are what the targets must
hold.

Two phases, as the providers run them: `initial` (each user and group looked up, then created; profile
updates, managers and memberships, as the first cycles send them) and `later` (deactivations and a
reactivation, members removed, groups renamed, a group and two users deleted). The request shapes are
those engine/inbound/quirks.py cites: Entra's without `aadOptscim062020` (capital ops, "False", members
removed by value, the manager as a plain id) and with it (a value object keyed by paths, `members[value
eq "..."]`), and Okta's (PUT for profile updates, `active` replaced without a path, a group rename that
repeats the id, members with `display`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from common.peers.scim_schemas import ENTERPRISE_SCHEMA, GROUP_SCHEMA, PATCH_SCHEMA, USER_SCHEMA

ENTRA_TOKEN = "entra-replay-token-0123456789abcdef0123"
OKTA_TOKEN = "okta-replay-token-0123456789abcdef01234"
ENT = ENTERPRISE_SCHEMA

GIVEN = ["Zoë", "Seán", "José", "Åsa", "Łukasz", "Chloé", "Jürgen", "Renée", "Ana"]
FAMILY = ["O'Brien", "Müller, Jr.", "a+b", "Nuñez", "D'Angelo", "Smith; Jones", "<Lee>", 'Say "Hi"']
FAMILY += ["#Hash", "Back\\slash", "Ångström=1", "Ng"]
LOGIN = ["a+b", "müller, jr.", "o'brien", "zoë", "#hash", "semi;colon", "eq=al", "<angle>", 'quo"te']
LOGIN += ["back\\slash", "star*(x)"]
DEPARTMENTS = ["Sales", "R&D", "Ops, EMEA", "Zoë's Team"]
TITLES = ["Engineer", "Analyst", "Designer"]
ENTRA_USERS = 36
MANAGERS = 4
"""ent-000 to ent-003 manage the other Entra users (but every 7th); nobody manages them."""
OKTA_USERS = 20
ENTRA_GROUPS = ["App Helix", "Sales, EMEA", "R&D + Ops", 'Zoë\'s "Crew"']
OKTA_GROUPS = ["Okta Engineering", "#Support", "Ünïcode <Crew>; Ops"]

PHASES = ("initial", "later")
Ids = dict[str, str]
"""Roster's id of each object created, by its key (`U:ent-003`, `G:entra-1`)."""


@dataclass(frozen=True)
class Ref:
    """The id Roster gave the object `key`, in `text` at `{}` (the id alone by default)."""

    key: str
    text: str = "{}"

    def resolve(self, ids: Ids) -> str:
        return self.text.format(ids[self.key])


def resolve(value: Any, ids: Ids) -> Any:
    """`value` with each `Ref` in it replaced by what it stands for."""
    if isinstance(value, Ref):
        return value.resolve(ids)
    if isinstance(value, dict):
        return {k: resolve(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, ids) for v in value]
    return value


def refs(value: Any) -> Iterator[str]:
    """The keys of the objects `value` names."""
    if isinstance(value, Ref):
        yield value.key
    elif isinstance(value, dict):
        for v in value.values():
            yield from refs(v)
    elif isinstance(value, list):
        for v in value:
            yield from refs(v)


# -- The world: what the targets must hold ----------------------------------------------------------------

Attrs = dict[str, str | None]
"""A person's attributes: user_name, given, family, display, email, department, title, employee_number,
manager (the manager's externalId)."""


@dataclass
class Person:
    ext: str
    attrs: Attrs
    active: bool = True
    deleted: bool = False
    shown: Attrs | None = None
    """What the targets hold: the attributes as they were when the person was last in scope (active, not
    deleted; the jobs disable who leaves it and send nothing else); None while never in scope."""

    def settle(self) -> None:
        if self.active and not self.deleted:
            self.shown = dict(self.attrs)


@dataclass
class Team:
    name: str
    members: set[str] = field(default_factory=set)
    deleted: bool = False


@dataclass
class World:
    people: dict[str, Person] = field(default_factory=dict)
    teams: dict[str, Team] = field(default_factory=dict)

    def ldap_users(self) -> dict[str, dict[str, list[str]]]:
        """Each person the directory holds, by employeeNumber: attributes by lowercased name (the
        manager as the manager's employeeNumber)."""
        return {ext: ldap_user(p) for ext, p in self.people.items() if p.shown is not None}

    def ldap_groups(self) -> dict[str, list[str]]:
        """Each group's members (employeeNumbers) by its name."""
        return {t.name: sorted(t.members) for t in self.teams.values() if not t.deleted}

    def sql_rows(self) -> dict[str, dict[str, Any]]:
        return {ext: sql_row(p) for ext, p in self.people.items() if p.shown is not None}


def ldap_user(person: Person) -> dict[str, list[str]]:
    shown = person.shown
    assert shown is not None
    view = {
        "employeenumber": person.ext,
        "uid": shown["user_name"],
        "givenname": shown["given"],
        "sn": shown["family"],
        "cn": shown["display"],
        "mail": shown["email"],
        "departmentnumber": shown["department"],
        "title": shown["title"],
        "manager": shown["manager"],
        "employeetype": None if person.active and not person.deleted else "disabled",
    }
    return {k: [v] for k, v in view.items() if v is not None}


def sql_row(person: Person) -> dict[str, Any]:
    shown = person.shown
    assert shown is not None
    return {
        "employee_id": person.ext,
        "user_name": shown["user_name"],
        "first_name": shown["given"],
        "last_name": shown["family"],
        "display_name": shown["display"],
        "email": shown["email"],
        "department": shown["department"],
        "title": shown["title"],
        "employee_number": shown["employee_number"],
        "manager": shown["manager"],
        "active": 1 if person.active and not person.deleted else 0,
    }


Effect = Callable[[World], None]


def created(ext: str, attrs: Attrs) -> Effect:
    def effect(world: World) -> None:
        world.people[ext] = person = Person(ext, dict(attrs))
        person.settle()

    return effect


def changed(ext: str, *, active: bool | None = None, deleted: bool = False, **attrs: str | None) -> Effect:
    def effect(world: World) -> None:
        person = world.people[ext]
        person.attrs.update(attrs)
        person.active = person.active if active is None else active
        person.deleted = person.deleted or deleted
        person.settle()

    return effect


def team(
    key: str,
    *,
    name: str | None = None,
    add: tuple[str, ...] = (),
    remove: tuple[str, ...] = (),
    deleted: bool = False,
) -> Effect:
    def effect(world: World) -> None:
        held = world.teams.setdefault(key, Team(name or ""))
        held.name = name or held.name
        held.members = (held.members | set(add)) - set(remove)
        held.deleted = held.deleted or deleted

    return effect


# -- The script ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One request. The steps of one object (`chain`) go in order; `after` are the steps of other objects
    it waits for: those that created the objects it names, and any the provider keeps before it."""

    n: int
    chain: str
    idp: str
    phase: str
    method: str
    path: str | Ref
    body: Any = None
    effect: Effect | None = None
    after: tuple[int, ...] = ()
    lookup: str | None = None
    """For a create: the query that finds what it created. A client whose create went unanswered looks
    before it sends it again, as both providers look before they create."""

    @property
    def token(self) -> str:
        return ENTRA_TOKEN if self.idp == "entra" else OKTA_TOKEN

    def url_path(self, ids: Ids) -> str:
        return str(resolve(self.path, ids))

    def payload(self, ids: Ids) -> Any:
        return resolve(self.body, ids)

    def __repr__(self) -> str:
        return f"Step({self.n}: {self.idp} {self.method} {self.chain} {self.phase})"


def world_after(steps: list[Step], done: set[int] | None = None) -> World:
    """The world after the steps in `done` (all if None), applied in the script's order."""
    world = World()
    for step in steps:
        if step.effect is not None and (done is None or step.n in done):
            step.effect(world)
    return world


def through(steps: list[Step], phase: str) -> set[int]:
    """The steps of `phase` and of the phases before it."""
    last = PHASES.index(phase)
    return {s.n for s in steps if PHASES.index(s.phase) <= last}


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_SCHEMA], "Operations": list(operations)}


def by_filter(endpoint: str, attribute: str, value: str, extra: str = "") -> str:
    """A list request filtered on `attribute eq value`: the value a JSON string, as SCIM's filter grammar
    has it, and the filter percent-encoded (a `+` in a name must not arrive as a space)."""
    text = f"{attribute} eq {json.dumps(value, ensure_ascii=False)}"
    return f"/{endpoint}?{extra}filter={quote(text, safe='')}"


def user_ref(ext: str) -> Ref:
    return Ref(f"U:{ext}")


class _Script:
    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.creates: dict[str, int] = {}

    def send(
        self,
        chain: str,
        idp: str,
        phase: str,
        method: str,
        path: str | Ref,
        body: Any = None,
        *,
        after: tuple[int, ...] = (),
        **kw: Any,
    ) -> int:
        n = len(self.steps)
        named = {k for k in refs([path, body]) if k != chain}
        waits = tuple(sorted({*after, *(self.creates[k] for k in named)}))
        self.steps.append(Step(n, chain, idp, phase, method, path, body, after=waits, **kw))
        if method == "POST":
            self.creates[chain] = n
        return n

    def create(
        self, chain: str, idp: str, phase: str, endpoint: str, lookup: str, body: Any, effect: Effect
    ) -> None:
        self.send(chain, idp, phase, "GET", lookup)
        self.send(chain, idp, phase, "POST", f"/{endpoint}", body, effect=effect, lookup=lookup)

    def patch_user(self, idp: str, phase: str, ext: str, body: Any, effect: Effect, **kw: Any) -> int:
        chain = f"U:{ext}"
        return self.send(chain, idp, phase, "PATCH", Ref(chain, "/Users/{}"), body, effect=effect, **kw)

    def patch_group(self, idp: str, phase: str, key: str, body: Any, effect: Effect) -> int:
        return self.send(key, idp, phase, "PATCH", Ref(key, "/Groups/{}"), body, effect=effect)


def entra_user(i: int) -> tuple[str, Attrs]:
    ext = f"ent-{i:03d}"
    given, family = GIVEN[i % len(GIVEN)], FAMILY[i % len(FAMILY)]
    login = f"{LOGIN[i % len(LOGIN)]}.{i}" if i % 2 == 0 else f"user.{i}"
    return ext, {
        "user_name": f"{login}@contoso.example",
        "given": given,
        "family": family,
        "display": f"{given} {family}",
        "email": f"user{i}@contoso.example",
        "department": DEPARTMENTS[i % len(DEPARTMENTS)],
        "title": TITLES[i % len(TITLES)],
        "employee_number": f"{100000 + i}",
        "manager": None if i < MANAGERS or i % 7 == 0 else f"ent-{i % MANAGERS:03d}",
    }


def okta_user(i: int) -> tuple[str, Attrs]:
    ext = f"00u{i:04d}okta7xQ"
    given, family = GIVEN[(i + 4) % len(GIVEN)], FAMILY[(i + 5) % len(FAMILY)]
    login = f"{LOGIN[(i + 3) % len(LOGIN)]}.okta{i}" if i % 2 else f"okta.user{i}"
    return ext, {
        "user_name": f"{login}@okta.example",
        "given": given,
        "family": family,
        "display": f"{given} {family}",
        "email": f"okta{i}@okta.example",
        "department": None,
        "title": None,
        "employee_number": None,
        "manager": None,
    }


def entra_create(ext: str, attrs: Attrs, manager: str | None) -> dict[str, Any]:
    """A user as Entra creates it (the SCIM endpoint tutorial's request), with the enterprise extension;
    the manager, when there is one, as RFC 7643's complex value."""
    enterprise: dict[str, Any] = {
        "employeeNumber": attrs["employee_number"],
        "department": attrs["department"],
    }
    if manager is not None:
        enterprise["manager"] = {"value": user_ref(manager)}
    return {
        "schemas": [USER_SCHEMA, ENT],
        "externalId": ext,
        "userName": attrs["user_name"],
        "active": True,
        "displayName": attrs["display"],
        "title": attrs["title"],
        "emails": [{"primary": True, "type": "work", "value": attrs["email"]}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": attrs["display"], "familyName": attrs["family"], "givenName": attrs["given"]},
        "roles": [],
        ENT: enterprise,
    }


def okta_user_body(ext: str, attrs: Attrs, *, active: bool = True, put: bool = False) -> dict[str, Any]:
    """A user as Okta sends it ("Okta and SCIM Version 2.0"): its POST, or with `put` its PUT, which
    repeats the id and meta."""
    body: dict[str, Any] = {
        "schemas": [USER_SCHEMA],
        "userName": attrs["user_name"],
        "name": {"givenName": attrs["given"], "middleName": "", "familyName": attrs["family"]},
        "emails": [{"primary": True, "value": attrs["email"], "type": "work", "display": attrs["email"]}],
        "displayName": attrs["display"],
        "locale": "en-US",
        "externalId": ext,
        "groups": [],
        "password": "1mz050nq",
        "active": active,
    }
    if put:
        body |= {"id": user_ref(ext), "meta": {"resourceType": "User", "created": "2026-11-02T10:11:12.000Z"}}
    return body


def script() -> list[Step]:
    """The whole script, in the order the providers send it: phase `initial`, then `later`."""
    s = _Script()
    entra = dict(entra_user(i) for i in range(ENTRA_USERS))
    okta = dict(okta_user(i) for i in range(OKTA_USERS))
    _entra_initial(s, entra)
    _okta_initial(s, okta)
    _entra_later(s)
    _okta_later(s, okta)
    return s.steps


def _entra_initial(s: _Script, people: dict[str, Attrs]) -> None:
    at = "initial"
    # Each user looked up by userName, then created; managers first, so a report can name its manager.
    # Even-numbered reports get the manager in the create, odd-numbered in a PATCH afterwards.
    for i, (ext, attrs) in enumerate(people.items()):
        manager = attrs["manager"] if i % 2 == 0 else None
        s.create(
            f"U:{ext}",
            "entra",
            at,
            "Users",
            by_filter("Users", "userName", str(attrs["user_name"])),
            entra_create(ext, attrs, manager),
            created(ext, {**attrs, "manager": manager}),
        )
    for i, (ext, attrs) in enumerate(people.items()):
        if attrs["manager"] and i % 2:  # the manager as Entra sends it without the flag: a plain id
            add = {"op": "Add", "path": f"{ENT}:manager", "value": user_ref(str(attrs["manager"]))}
            s.patch_user("entra", at, ext, patch(add), changed(ext, manager=attrs["manager"]))
        if i >= MANAGERS and i % 5 == 0:  # without the flag: a capital Replace per attribute
            given, family = GIVEN[(i + 4) % len(GIVEN)], FAMILY[(i + 5) % len(FAMILY)]
            email = f"renamed{i}@contoso.example"
            body = patch(
                {"op": "Replace", "path": "displayName", "value": f"{given} {family}"},
                {"op": "Replace", "path": 'emails[type eq "work"].value', "value": email},
                {"op": "Replace", "path": "name.givenName", "value": given},
                {"op": "Replace", "path": "name.familyName", "value": family},
            )
            effect = changed(ext, display=f"{given} {family}", email=email, given=given, family=family)
            s.patch_user("entra", at, ext, body, effect)
        if i >= MANAGERS and i % 5 == 1:  # with the flag: no path, a value object keyed by paths
            family, department = FAMILY[(i + 7) % len(FAMILY)], DEPARTMENTS[(i + 1) % len(DEPARTMENTS)]
            display, title = f"{attrs['given']} {family}", f"Senior {attrs['title']}"
            value = {"name.familyName": family, "displayName": display, f"{ENT}:department": department}
            body = patch({"op": "replace", "value": {**value, "title": title}})
            effect = changed(ext, family=family, display=display, department=department, title=title)
            s.patch_user("entra", at, ext, body, effect)
        if i in (6, 13):  # a new userName: the entry's DN changes
            name = f"renamed.{LOGIN[(i + 2) % len(LOGIN)]}.{i}@contoso.example"
            body = patch({"op": "Replace", "path": "userName", "value": name})
            s.patch_user("entra", at, ext, body, changed(ext, user_name=name))
        if attrs["manager"] and i % 9 == 4:  # another manager, as a complex value
            other = f"ent-{(i + 1) % MANAGERS:03d}"
            body = patch({"op": "Replace", "path": f"{ENT}:manager", "value": {"value": user_ref(other)}})
            s.patch_user("entra", at, ext, body, changed(ext, manager=other))
        if i == ENTRA_USERS - 1:  # the manager removed
            body = patch({"op": "Remove", "path": f"{ENT}:manager"})
            s.patch_user("entra", at, ext, body, changed(ext, manager=None))
    # Groups: looked up by name without their members, created empty, then given members.
    for g, name in enumerate(ENTRA_GROUPS):
        key = f"G:entra-{g}"
        body = {
            "schemas": [GROUP_SCHEMA],
            "externalId": f"8aa1a0c0-c4c3-4bc0-b4a5-2ef67690015{g}",
            "displayName": name,
            "meta": {"resourceType": "Group"},
        }
        lookup = by_filter("Groups", "displayName", name, "excludedAttributes=members&")
        s.create(key, "entra", at, "Groups", lookup, body, team(key, name=name))
        members = [ext for i, ext in enumerate(people) if i % len(ENTRA_GROUPS) == g]
        many, alone = members[:-2], members[-2:]
        add = {"op": "Add", "path": "members", "value": [{"value": user_ref(m)} for m in many]}
        s.patch_group("entra", at, key, patch(add), team(key, add=tuple(many)))
        for member in alone:  # the tutorial's shape: one member, a null $ref
            add = {"op": "Add", "path": "members", "value": [{"$ref": None, "value": user_ref(member)}]}
            s.patch_group("entra", at, key, patch(add), team(key, add=(member,)))


def _okta_initial(s: _Script, people: dict[str, Attrs]) -> None:
    at = "initial"
    paging = "startIndex=1&count=100&"
    for ext, attrs in people.items():
        lookup = by_filter("Users", "userName", str(attrs["user_name"]), paging)
        s.create(f"U:{ext}", "okta", at, "Users", lookup, okta_user_body(ext, attrs), created(ext, attrs))
    for i, (ext, attrs) in enumerate(people.items()):  # a profile update: a PUT of the whole user
        if i % 3 == 0:
            family = FAMILY[(i + 9) % len(FAMILY)]
            new = {**attrs, "family": family, "display": f"{attrs['given']} {family}"}
            new["email"] = f"okta{i}.new@okta.example"
            s.send(
                f"U:{ext}",
                "okta",
                at,
                "PUT",
                Ref(f"U:{ext}", "/Users/{}"),
                okta_user_body(ext, new, put=True),
                effect=changed(ext, **new),
            )
    for h, name in enumerate(OKTA_GROUPS):
        key = f"G:okta-{h}"
        members = [(ext, attrs) for i, (ext, attrs) in enumerate(people.items()) if i % len(OKTA_GROUPS) == h]
        first = members[:2] if h else []  # the first group is created empty, the others with two members
        listed = [{"value": user_ref(ext), "display": attrs["user_name"]} for ext, attrs in first]
        body = {"schemas": [GROUP_SCHEMA], "displayName": name, "members": listed}
        lookup = by_filter("Groups", "displayName", name, paging)
        s.create(
            key, "okta", at, "Groups", lookup, body, team(key, name=name, add=tuple(e for e, _ in first))
        )
        for ext, attrs in members[len(first) :]:
            add = {
                "op": "add",
                "path": "members",
                "value": [{"value": user_ref(ext), "display": attrs["user_name"]}],
            }
            s.patch_group("okta", at, key, patch(add), team(key, add=(ext,)))


def _entra_later(s: _Script) -> None:
    at = "later"
    for i in (8, 14, 20, 26, 32):  # out of the application's scope: "False" in a capital Replace
        ext = f"ent-{i:03d}"
        body = patch({"op": "Replace", "path": "active", "value": "False"})
        s.patch_user("entra", at, ext, body, changed(ext, active=False))
    body = patch({"op": "Replace", "path": "active", "value": "True"})  # and one of them back
    s.patch_user("entra", at, "ent-014", body, changed("ent-014", active=True))
    # disabled and renamed in one request: the targets keep the name they had
    body = patch({"op": "Replace", "value": {"active": False, "name.familyName": "Gone-Before"}})
    s.patch_user("entra", at, "ent-011", body, changed("ent-011", active=False, family="Gone-Before"))
    removed: dict[str, int] = {}
    for g, (one, other) in enumerate([(12, 16), (9, 33), (10, 34), (15, 31)]):
        key = f"G:entra-{g}"
        first, second = f"ent-{one:03d}", f"ent-{other:03d}"
        by_path = {"op": "remove", "path": Ref(f"U:{first}", 'members[value eq "{}"]')}  # with the flag
        removed[first] = s.patch_group("entra", at, key, patch(by_path), team(key, remove=(first,)))
        by_value = {"op": "Remove", "path": "members", "value": [{"value": user_ref(second)}]}  # without
        removed[second] = s.patch_group("entra", at, key, patch(by_value), team(key, remove=(second,)))
    for g, name in [(1, "Sales, EMEA + APAC"), (3, 'Zoë\'s "Crew" (old)')]:
        key = f"G:entra-{g}"
        body = patch({"op": "Replace", "path": "displayName", "value": name})
        s.patch_group("entra", at, key, body, team(key, name=name))
    for ext in ("ent-033", "ent-034"):  # deleted, once the provider took them out of their groups
        chain = f"U:{ext}"
        s.send(
            chain,
            "entra",
            at,
            "DELETE",
            Ref(chain, "/Users/{}"),
            effect=changed(ext, deleted=True),
            after=(removed[ext],),
        )


def _okta_later(s: _Script, people: dict[str, Attrs]) -> None:
    at = "later"

    def ext(i: int) -> str:
        return f"00u{i:04d}okta7xQ"

    deactivate = patch({"op": "replace", "value": {"active": False}})
    for i in (1, 5, 9, 13, 17):
        s.patch_user("okta", at, ext(i), deactivate, changed(ext(i), active=False))
    reactivate = patch({"op": "replace", "value": {"active": True}})
    s.patch_user("okta", at, ext(9), reactivate, changed(ext(9), active=True))
    # a profile update of a deactivated user (kept out of the targets), and a PUT that reactivates
    for i, active in ((5, False), (13, True)):
        family = f"Reprofiled {FAMILY[i % len(FAMILY)]}"
        new = {**people[ext(i)], "family": family, "display": f"{people[ext(i)]['given']} {family}"}
        body = okta_user_body(ext(i), new, active=active, put=True)
        effect = changed(ext(i), active=active, family=family, display=new["display"])
        s.send(f"U:{ext(i)}", "okta", at, "PUT", Ref(f"U:{ext(i)}", "/Users/{}"), body, effect=effect)
    key = "G:okta-0"  # renamed, repeating its id; a member removed by a filter path, another added
    rename = {"op": "replace", "value": {"id": Ref(key), "displayName": "Okta Engineering (all)"}}
    s.patch_group("okta", at, key, patch(rename), team(key, name="Okta Engineering (all)"))
    remove = {"op": "remove", "path": Ref(f"U:{ext(3)}", 'members[value eq "{}"]')}
    s.patch_group("okta", at, key, patch(remove), team(key, remove=(ext(3),)))
    joiner = {"value": user_ref(ext(4)), "display": people[ext(4)]["user_name"]}
    s.patch_group(
        "okta", at, key, patch({"op": "add", "path": "members", "value": [joiner]}), team(key, add=(ext(4),))
    )
    key = "G:okta-2"  # the push group unlinked, "delete the group in the target app"
    s.send(key, "okta", at, "DELETE", Ref(key, "/Groups/{}"), effect=team(key, deleted=True))


def chains(steps: list[Step]) -> list[list[Step]]:
    """The steps of each object, in order."""
    by_chain: dict[str, list[Step]] = {}
    for step in steps:
        by_chain.setdefault(step.chain, []).append(step)
    return list(by_chain.values())
