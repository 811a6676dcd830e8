"""Where the admin API listens and which token it wants: from the environment, a file, or one it makes."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import pytest

from common.errors import ConfigError
from engine.api.admin import Admin
from engine.api.server import ApiServer, ApiSettings, api_settings, default_token_file

SQLITE = "sqlite+aiosqlite:///{}"


def _settings(tmp_path: Path, listen: str = "127.0.0.1:8477", **kw: object) -> ApiSettings:
    kw.setdefault("token", None)
    kw.setdefault("token_file", None)
    state = SQLITE.format(tmp_path / ".roster" / "state.db")
    return api_settings(listen, state_location=state, base_dir=tmp_path, **kw)  # type: ignore[arg-type]


def test_a_token_is_generated_once_readable_by_its_owner_only_and_kept(tmp_path: Path) -> None:
    first = _settings(tmp_path)
    assert first.token_file == tmp_path / ".roster" / "api-token"
    assert stat.S_IMODE(first.token_file.stat().st_mode) == 0o600
    assert len(first.token) >= 40 and first.token not in repr(first)
    assert _settings(tmp_path).token == first.token  # the commands keep working across restarts
    first.token_file.chmod(0o644)
    assert _settings(tmp_path).token == first.token
    assert stat.S_IMODE(first.token_file.stat().st_mode) == 0o600


def test_the_environment_and_a_token_file_come_before_a_generated_token(tmp_path: Path) -> None:
    from_env = _settings(tmp_path, token=" from-env\n")
    assert (from_env.token, from_env.token_file) == ("from-env", None)
    given = tmp_path / "token.txt"
    given.write_text("from-file\n")
    assert _settings(tmp_path, token_file=given).token == "from-file"
    assert not (tmp_path / ".roster" / "api-token").exists()


def test_a_bad_token_file_or_listen_address_is_a_config_error_that_says_so(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match=r"--api-token-file: .*empty is empty"):
        _settings(tmp_path, token_file=empty)
    with pytest.raises(ConfigError, match=r"--api-token-file: cannot read .*missing"):
        _settings(tmp_path, token_file=tmp_path / "missing")
    with pytest.raises(ConfigError, match=r"--api-listen: expected HOST:PORT, got 'localhost'"):
        _settings(tmp_path, listen="localhost")


def test_the_token_file_sits_beside_a_sqlite_state_and_under_the_jobs_file_otherwise(tmp_path: Path) -> None:
    assert default_token_file(SQLITE.format("/var/lib/roster/state.db"), tmp_path) == Path(
        "/var/lib/roster/api-token"
    )
    assert default_token_file("postgresql+asyncpg://db/roster", tmp_path) == tmp_path / ".roster/api-token"


async def test_a_port_in_use_is_a_config_error_naming_the_address() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ApiServer(Admin(None), ApiSettings(port=port, token="t"))  # type: ignore[arg-type]
        with pytest.raises(
            ConfigError,
            match=rf"ROSTER_API_LISTEN: cannot serve the admin API on 127.0.0.1:{port}: address already",
        ):
            await server.start()
        await server.aclose()


@pytest.mark.parametrize("listen", ["0.0.0.0:8477", "[::]:8477", "10.1.2.3:8477", "engine.example.org:8477"])
def test_an_api_other_machines_reach_is_refused_without_a_token_of_its_own(
    tmp_path: Path, listen: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        _settings(tmp_path, listen)
    message = str(refused.value)
    assert message.startswith("ROSTER_API_TOKEN / --api-token-file: the admin API on")
    assert "reachable from other machines and has no token of its own" in message
    assert "listen on 127.0.0.1" in message and "openssl rand -hex 32" in message
    assert not (tmp_path / ".roster" / "api-token").exists()  # no token made for it silently


@pytest.mark.parametrize("token", ["change-me", "CHANGEME", "short-token"])
def test_an_api_other_machines_reach_is_refused_with_a_placeholder_or_short_token(
    tmp_path: Path, token: str
) -> None:
    for given in ({"token": token}, {"token_file": tmp_path / "token"}):
        (tmp_path / "token").write_text(token + "\n")
        with pytest.raises(ConfigError, match="has a placeholder token or one shorter than 16") as refused:
            _settings(tmp_path, "0.0.0.0:8477", **given)
        assert token not in str(refused.value)


def test_a_long_token_serves_any_address_and_the_loopback_takes_any_token(tmp_path: Path) -> None:
    token = "x" * 16
    assert _settings(tmp_path, "0.0.0.0:8477", token=token).host == "0.0.0.0"
    assert _settings(tmp_path, "[::1]:8477", token="t").token == "t"
    assert _settings(tmp_path, "localhost:8477", token="change-me").token == "change-me"
