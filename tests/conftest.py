"""Fixtures shared by every test package: the real services. One that is missing skips its tests with
the reason, and fails them under ROSTER_TEST_STRICT=1 (tests/needs.py, whose hook is registered here).

The SCIM ones: a real SCIM server (two: without and with authentication) and a fault-injecting proxy in
front of it, for the connector's tests and the SCIM source's."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests import needs, rabbit
from tests.fault_proxy import FaultProxy, Faults
from tests.needs import pytest_runtest_makereport  # noqa: F401  (a hook: strict mode)
from tests.samba import (
    BULK_OU,
    SYSTEM_PYTHON,
    SambaDC,
    SambaError,
    copy_of,
    new_password,
    provision,
    with_users,
)
from tests.scim_server import Credentials, ScimServer, ScimServerError, start_scim_server
from tests.slapd import Slapd, SlapdError, make_slapd

# The connector conformance kit (roster.testing), for tests/conformance; pytest takes plugins from the
# top-level conftest only.
pytest_plugins = ["roster.testing.plugin"]

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def rabbitmq_url() -> Iterator[str]:
    """The test run's own RabbitMQ vhost (amqp:// URL), for tests that need no server-wide name to
    themselves; deleted with all in it at the end of the run, and checked gone."""
    with rabbit.vhost("roster-tests") as url:
        yield url
    assert rabbit.vhost_of(url) not in rabbit.vhosts(), "the test run's vhost outlived the run"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    needs.postgres()
    return POSTGRES_URL


@pytest.fixture
def slapd_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Slapd]]:
    """Start private slapd instances with `slapd_factory(refint=False)`; all stop after the test. A missing
    slapd skips the test, naming the packages to install; one that does not start fails it."""
    for program in ("slapd", "slapadd", "openssl"):  # what tests/slapd.py runs
        needs.program(program)
    started: list[Slapd] = []

    def start(*, refint: bool = False) -> Slapd:
        try:
            server = make_slapd(tmp_path_factory.mktemp("slapd"), refint=refint)
        except SlapdError as exc:
            pytest.fail(str(exc), pytrace=False)
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def slapd(slapd_factory: Callable[..., Slapd]) -> Slapd:
    """A fresh private slapd holding the base entries: ou=people, ou=groups and ou=disabled under SUFFIX."""
    return slapd_factory()


SCIM_TOKEN = "tok-" + secrets.token_hex(12)
SCIM_BASIC = ("roster", "pw-" + secrets.token_hex(12))
SCIM_OAUTH_CLIENT = ("roster-client", "cs-" + secrets.token_hex(12))
SCIM_OAUTH_TTL_S = 2


@contextmanager
def running_scim_server(directory: Path, credentials: Credentials | None = None) -> Iterator[ScimServer]:
    """scim2-server started in `directory` for the `with` block; a server that cannot start fails the
    test with its reason (never a skip)."""
    try:
        server = start_scim_server(directory, credentials or Credentials())
    except ScimServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


def _serve(tmp_path_factory: pytest.TempPathFactory, credentials: Credentials) -> Iterator[ScimServer]:
    with running_scim_server(tmp_path_factory.mktemp("scim"), credentials) as server:
        yield server


@pytest.fixture(scope="session")
def scim_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScimServer]:
    """scim2-server with Users (enterprise extension) and Groups, accepting every request."""
    yield from _serve(tmp_path_factory, Credentials())


@pytest.fixture(scope="session")
def scim_auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScimServer]:
    """scim2-server accepting `SCIM_TOKEN`, basic `SCIM_BASIC`, or a token from its OAuth endpoint
    issued to `SCIM_OAUTH_CLIENT`, which expires after `SCIM_OAUTH_TTL_S` seconds."""
    credentials = Credentials(
        bearer_tokens=(SCIM_TOKEN,),
        basic=SCIM_BASIC,
        oauth_client=SCIM_OAUTH_CLIENT,
        oauth_ttl_s=SCIM_OAUTH_TTL_S,
    )
    yield from _serve(tmp_path_factory, credentials)


@pytest.fixture
async def fault_proxy() -> AsyncIterator[Callable[..., Awaitable[FaultProxy]]]:
    """Start proxies with `await fault_proxy(upstream_root, seed=..., faults=Faults(...))`; all stop after."""
    started: list[FaultProxy] = []

    async def start(upstream: str, *, seed: int = 0, faults: Faults | None = None) -> FaultProxy:
        proxy = FaultProxy(upstream, seed=seed, faults=faults or Faults())
        started.append(proxy)
        return await proxy.start()

    yield start
    for proxy in reversed(started):
        await proxy.aclose()


@pytest.fixture(scope="session")
def samba_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One provisioned Active Directory domain per session (a directory and its administrator's
    password), copied for each DC a test starts."""
    needs.program("samba-tool")
    needs.program("samba")
    directory, password = tmp_path_factory.mktemp("samba-template"), new_password()
    try:
        provision(directory, password)
    except SambaError as error:
        if "samba-ad-provision" in str(error):
            needs.missing(str(error))
        raise
    return directory, password


@pytest.fixture(scope="session")
def samba_user_templates(
    samba_template: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[int], Path]:
    """Copies of the session's domain with N users added offline under OU=bulk, made once per N."""
    made: dict[int, Path] = {}

    def template(count: int) -> Path:
        if count not in made:
            needs.program(SYSTEM_PYTHON)
            directory = tmp_path_factory.mktemp("samba-users")
            made[count] = with_users(samba_template[0], directory, BULK_OU, count)
        return made[count]

    return template


@pytest.fixture
def samba_dc(
    samba_template: tuple[Path, str], tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[SambaDC]:
    """A private Samba AD DC of this test's own, on a loopback address of its own, stopped after it.
    A test marked `samba_users(N)` gets one whose domain holds N users already (`bulk_user_dn`)."""
    template, password = samba_template
    if marker := request.node.get_closest_marker("samba_users"):
        template = request.getfixturevalue("samba_user_templates")(marker.args[0])
    directory = tmp_path / "samba"
    directory.mkdir()
    dc = copy_of(template, directory, password).start()
    try:
        yield dc
    finally:
        dc.stop()
