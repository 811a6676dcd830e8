"""`roster worker --check` and `roster engine --check`, run as processes against the real peers: each
broker refusal, target refusal and missing piece is one FAILED line with its fix and a non-zero exit;
a clean configuration passes with exit 0; nothing is written. And the worker-wide `proxy:`, through a
forward proxy written here that counts what it carries, in front of the real scim2-server.

The bad-CA case is checked twice, honestly apart: a CA file that is no certificate is refused before
any connection, and a TLS listener (made here with an `openssl` certificate: RabbitMQ here has no TLS
port) whose certificate the given CA did not sign fails the handshake, as a broker's would.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from yarl import URL

from tests.conftest import SCIM_TOKEN
from tests.integration.processes import REPO, free_port
from tests.rabbit import vhost_of
from tests.scim_server import ScimServer
from tests.slapd import ROOT_DN, SUFFIX, Slapd

ROSTER = [sys.executable, "-m", "common.process.launcher"]
_PROXY_ENV = ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy", "ALL_PROXY")


async def _roster(*args: str, env: dict[str, str] | None = None) -> tuple[int, list[str]]:
    """Run `roster ARGS`; its exit code and the lines it printed (libraries' log lines aside)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ROSTER_") and k not in _PROXY_ENV}
    process = await asyncio.create_subprocess_exec(
        *ROSTER,
        *args,
        cwd=REPO,
        env={**clean, "COLUMNS": "250", **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    text = out.decode() + err.decode()
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if "level=" not in line]
    assert process.returncode is not None
    return process.returncode, lines


def _failed(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("FAILED")]


def _scim_target(server: ScimServer, token: str = SCIM_TOKEN, **more: Any) -> dict[str, Any]:
    return {
        "name": "app",
        "type": "scim",
        "url": server.url,
        "auth": {"type": "bearer", "token": token},
        **more,
    }


def _ldap_target(server: Slapd, **more: Any) -> dict[str, Any]:
    return {
        "name": "directory",
        "type": "ldap",
        "url": server.url,
        "bind_dn": ROOT_DN,
        "bind_password": server.password,
        "base_dn": SUFFIX,
        "connect_timeout_s": 2,
        "users": {"dn": f"uid={{userName}},ou=people,{SUFFIX}"},
        **more,
    }


def _write(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


@pytest.mark.rabbitmq
async def test_a_clean_worker_config_passes_every_check_with_exit_0(
    tmp_path: Path, rabbitmq_url: str, scim_auth_server: ScimServer, slapd: Slapd
) -> None:
    file = _write(
        tmp_path / "workers.yaml", {"targets": [_scim_target(scim_auth_server), _ldap_target(slapd)]}
    )
    code, lines = await _roster("worker", str(file), "--check", "--broker", rabbitmq_url)
    assert code == 0, lines
    assert not _failed(lines)
    assert any(line.startswith("ok     broker") and "connected" in line for line in lines), lines
    assert any("may declare queues" in line for line in lines)
    assert any("target 'app' (scim): reached, credentials accepted" in line for line in lines)
    assert any("target 'directory' (ldap): reached, credentials accepted" in line for line in lines)
    assert lines[-1].startswith("all ") and "passed" in lines[-1]


@pytest.mark.rabbitmq
async def test_a_rejected_target_credential_and_a_missing_base_dn_each_fail_with_their_fix(
    tmp_path: Path, rabbitmq_url: str, scim_auth_server: ScimServer, slapd: Slapd
) -> None:
    wrong_token = "not-the-token-0123456789"
    missing = f"ou=nowhere,{SUFFIX}"
    targets = [_scim_target(scim_auth_server, wrong_token), _ldap_target(slapd, base_dn=missing)]
    file = _write(tmp_path / "workers.yaml", {"targets": targets})
    code, lines = await _roster("worker", str(file), "--check", "--broker", rabbitmq_url)
    assert code == 1, lines
    failed = _failed(lines)
    scim = next(line for line in failed if "target 'app'" in line)
    assert "refused the credentials" in scim and "check `auth:`" in scim, scim
    assert wrong_token not in "\n".join(lines)
    ldap = next(line for line in failed if "target 'directory'" in line)
    assert missing in ldap and "base_dn" in ldap, ldap
    assert slapd.password not in "\n".join(lines)
    assert lines[-1].endswith("check(s) FAILED")


@pytest.fixture
def tls_files(tmp_path: Path) -> Iterator[tuple[Path, Path, Path]]:
    """A certificate and key for 127.0.0.1 made with openssl, and another, unrelated CA certificate."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is missing (apt-get install openssl)")

    def make(name: str, subject: str) -> tuple[Path, Path]:
        cert, key = tmp_path / f"{name}.pem", tmp_path / f"{name}-key.pem"
        subprocess.run(
            [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
             "-days", "1", "-subj", f"/CN={subject}", "-addext", "subjectAltName=IP:127.0.0.1"],
            check=True,
            capture_output=True,
        )  # fmt: skip
        return cert, key

    cert, key = make("server", "127.0.0.1")
    other, _ = make("other-ca", "Other CA")
    yield cert, key, other


@asynccontextmanager
async def tls_listener(cert: Path, key: Path) -> AsyncIterator[int]:
    """A TLS port that closes each connection after the handshake; yields its port."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.rabbitmq
@pytest.mark.parametrize(
    "case", ["wrong vhost", "wrong password", "unreachable host", "CA file no certificate", "untrusted TLS"]
)
async def test_each_broker_refusal_is_one_failed_line_with_its_fix_and_no_password(
    tmp_path: Path, rabbitmq_url: str, tls_files: tuple[Path, Path, Path], case: str
) -> None:
    secret = "pw-never-printed-42"
    vhost = vhost_of(rabbitmq_url)
    file = _write(tmp_path / "workers.yaml", {"targets": [{"name": "t1", "type": "noop"}]})
    cert, key, other_ca = tls_files
    extra: list[str] = []
    async with tls_listener(cert, key) as tls_port:
        if case == "wrong vhost":
            url, expect = (
                f"amqp://guest:guest@127.0.0.1:5672/{vhost}-nope",
                f"rabbitmqctl add_vhost {vhost}-nope",
            )
        elif case == "wrong password":
            url, expect = (
                f"amqp://guest:{secret}@127.0.0.1:5672/{vhost}",
                "check the user, password and vhost",
            )
        elif case == "unreachable host":
            url, expect = f"amqp://guest:guest@127.0.0.1:{free_port()}/{vhost}", "connection refused"
        elif case == "CA file no certificate":
            bad = tmp_path / "ca.pem"
            bad.write_text("this is no certificate\n")
            url, expect = f"amqps://guest:guest@127.0.0.1:{tls_port}/{vhost}", "holds no PEM certificate"
            extra = ["--broker-ca-file", str(bad)]
        else:
            url, expect = (
                f"amqps://guest:guest@127.0.0.1:{tls_port}/{vhost}",
                "its certificate is not trusted",
            )
            extra = ["--broker-ca-file", str(other_ca)]
        code, lines = await _roster("worker", str(file), "--check", "--broker", url, *extra)
    assert code == 1, lines
    failed = _failed(lines)
    assert len(failed) == 1, lines
    assert "broker" in failed[0] and expect in failed[0], failed[0]
    assert secret not in "\n".join(lines)


@pytest.mark.rabbitmq
async def test_engine_check_reports_an_unreachable_postgres_state_and_a_missing_ldap_base_dn(
    tmp_path: Path, rabbitmq_url: str, slapd: Slapd
) -> None:
    missing = f"ou=nowhere,{SUFFIX}"
    source = {
        "type": "ldap",
        "url": slapd.url,
        "bind_dn": ROOT_DN,
        "bind_password": slapd.password,
        "base_dn": missing,
        "connect_timeout_s": 2,
    }
    jobs = {"jobs": [{"name": "people", "source": source, "target": "app", "mappings": [
        {"target": "userName", "source": "uid", "match": True}]}]}  # fmt: skip
    file = _write(tmp_path / "jobs.yaml", jobs)
    state = f"postgresql://roster:pw-state-secret@127.0.0.1:{free_port()}/roster"
    code, lines = await _roster("engine", str(file), "--check", "--broker", rabbitmq_url, "--state", state)
    assert code == 1, lines
    failed = _failed(lines)
    store = next(line for line in failed if "state store" in line)
    assert "cannot reach PostgreSQL" in store and "connection refused" in store, store
    assert "pw-state-secret" not in "\n".join(lines)
    ldap = next(line for line in failed if "job 'people'" in line)
    assert missing in ldap and "base_dn" in ldap, ldap
    assert any(line.startswith("ok     broker") for line in lines), lines


@pytest.mark.rabbitmq
async def test_engine_check_passes_with_a_sqlite_state_and_a_reachable_source(
    tmp_path: Path, rabbitmq_url: str, slapd: Slapd
) -> None:
    source = {"type": "ldap", "url": slapd.url, "bind_dn": ROOT_DN, "bind_password": slapd.password,
              "base_dn": SUFFIX}  # fmt: skip
    jobs = {"jobs": [{"name": "people", "source": source, "target": "app", "mappings": [
        {"target": "userName", "source": "uid", "match": True}]}]}  # fmt: skip
    file = _write(tmp_path / "jobs.yaml", jobs)
    state = tmp_path / "state" / "state.db"
    code, lines = await _roster(
        "engine", str(file), "--check", "--broker", rabbitmq_url, "--state", str(state)
    )
    assert code == 0, lines
    assert any("state store" in line and "creates it at start" in line for line in lines), lines
    assert not state.exists()  # changed nothing


class CountingProxy:
    """A forward HTTP proxy: absolute-URI requests and CONNECT, each counted, piped to the origin."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> CountingProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            first, _, rest = head.partition(b"\r\n")
            method, target, version = first.decode().split(" ")
            self.requests.append(f"{method} {target}")
            if method == "CONNECT":
                host, port = target.rsplit(":", 1)
                upstream_reader, upstream = await asyncio.open_connection(host, int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                url = URL(target)
                upstream_reader, upstream = await asyncio.open_connection(url.host, url.port)
                kept = b"\r\n".join(
                    line for line in rest.split(b"\r\n") if not line.lower().startswith(b"proxy-")
                )
                upstream.write(f"{method} {url.raw_path_qs} {version}\r\n".encode() + kept)
            await asyncio.gather(_pipe(reader, upstream), _pipe(upstream_reader, writer))
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


@pytest.mark.rabbitmq
async def test_the_worker_wide_proxy_carries_every_http_target_unless_no_proxy_lists_its_host(
    tmp_path: Path, rabbitmq_url: str, scim_auth_server: ScimServer
) -> None:
    async with CountingProxy() as proxy:
        file = _write(
            tmp_path / "workers.yaml", {"proxy": proxy.url, "targets": [_scim_target(scim_auth_server)]}
        )
        code, lines = await _roster("worker", str(file), "--check", "--broker", rabbitmq_url)
        assert code == 0, lines
        assert any(f"{scim_auth_server.url}/Users" in request for request in proxy.requests), proxy.requests

        proxy.requests.clear()
        code, lines = await _roster(
            "worker", str(file), "--check", "--broker", rabbitmq_url, env={"NO_PROXY": "127.0.0.1"}
        )
        assert code == 0, lines
        assert proxy.requests == []

        # The standard environment, without `proxy:` in the file.
        _write(file, {"targets": [_scim_target(scim_auth_server)]})
        code, lines = await _roster(
            "worker", str(file), "--check", "--broker", rabbitmq_url, env={"HTTP_PROXY": proxy.url}
        )
        assert code == 0, lines
        assert proxy.requests, "HTTP_PROXY was not followed"
