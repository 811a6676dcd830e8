"""The SCIM transport against a real SCIM server (scim2-server): what it sends, answers and hides."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from common.peers.http_auth import BearerAuth, OAuth2Auth
from common.peers.http_settings import HttpSettings
from common.peers.http_transport import parse_json as _json
from common.peers.scim_transport import ScimTransport, Unanswered, refusal_text
from tests.conftest import SCIM_OAUTH_CLIENT, SCIM_TOKEN
from tests.scim_server import ScimServer


def oauth(server: ScimServer) -> OAuth2Auth:
    client_id, client_secret = SCIM_OAUTH_CLIENT
    return OAuth2Auth(token_url=server.token_url, client_id=client_id, client_secret=client_secret)


@pytest.fixture
def revoked(scim_auth_server: ScimServer) -> Iterator[ScimServer]:
    """The server refusing every credential for the test."""
    scim_auth_server.revoke(True)
    try:
        yield scim_auth_server
    finally:
        scim_auth_server.revoke(False)


async def test_an_answer_holds_the_status_the_json_body_and_names_the_call(
    scim_auth_server: ScimServer,
) -> None:
    http = HttpSettings(url=scim_auth_server.url, auth=BearerAuth(SCIM_TOKEN))
    async with ScimTransport(http, max_connections=1) as transport:
        answer = await transport.send("GET", "/Users", query="count=1")
        missing = await transport.send("GET", "/Users/no-such-id")
    assert (answer.status, answer.what, answer.malformed) == (200, "GET /Users", False)
    assert isinstance(answer.body, dict) and "totalResults" in answer.body
    assert missing.status == 404 and isinstance(missing.body, dict)
    assert transport.requests_sent == 2 and not transport.is_open


async def test_a_401_under_oauth_is_sent_once_more_with_a_fresh_token(revoked: ScimServer) -> None:
    async with ScimTransport(HttpSettings(url=revoked.url, auth=oauth(revoked)), max_connections=1) as oauth2:
        assert (await oauth2.send("GET", "/Users")).status == 401
    async with ScimTransport(
        HttpSettings(url=revoked.url, auth=BearerAuth(SCIM_TOKEN)), max_connections=1
    ) as bearer:
        assert (await bearer.send("GET", "/Users")).status == 401
    assert (oauth2.requests_sent, oauth2.credentials.tokens_fetched) == (2, 2)
    assert bearer.requests_sent == 1


async def test_no_answer_is_a_transient_network_failure() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends: nothing listens there
    async with ScimTransport(HttpSettings(url=f"http://127.0.0.1:{port}"), max_connections=1) as transport:
        with pytest.raises(Unanswered) as failure:
            await transport.send("GET", "/Users")
    assert (failure.value.transient, failure.value.code) == (True, "network")


async def test_sending_before_open_is_refused() -> None:
    transport = ScimTransport(HttpSettings(url="http://127.0.0.1:9"), max_connections=1)
    with pytest.raises(RuntimeError):
        await transport.send("GET", "/Users")


def test_redact_hides_the_credentials_and_the_proxy_password() -> None:
    http = HttpSettings(url="http://h", auth=BearerAuth("tok-s3cret"), proxy="http://u:pw-s3cret@proxy:3128")
    transport = ScimTransport(http, max_connections=1)
    assert transport.redact("token tok-s3cret via u:pw-s3cret@proxy") == "token *** via u:***@proxy"


def test_refusal_text_holds_the_servers_words_cut_to_length() -> None:
    document = {"scimType": "invalidFilter", "detail": "x" * 20}
    assert refusal_text(400, document, detail_max=5) == "HTTP 400 invalidFilter: xxxxx"
    assert refusal_text(503, None, detail_max=5) == "HTTP 503"
    assert refusal_text(409, {"detail": "taken"}, detail_max=50) == "HTTP 409: taken"


def test_a_body_refused_by_orjson_only_for_a_lone_surrogate_is_read_with_it() -> None:
    # The value reaches the engine, which refuses that one object naming the attribute; a page of a
    # SCIM source is no longer lost whole for one resource's value.
    assert _json(b'{"Resources": [{"id": "1", "displayName": "A\\ud800"}]}') == (
        {"Resources": [{"id": "1", "displayName": "A\ud800"}]},
        False,
    )
    assert _json(b'{"a": NaN}') == (None, True)  # anything else that is not JSON stays not JSON
    assert _json(b'{"a": "\\ud800",') == (None, True)
