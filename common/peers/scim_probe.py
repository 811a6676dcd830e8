"""Whether a SCIM service answers with its credentials: one `GET <endpoint>?count=1`, which reads at
most one resource and writes nothing. `roster validate --connect` asks it of SCIM sources and targets."""

from __future__ import annotations

from collections.abc import Iterable

from common.config.validation import join
from common.errors import AuthError, ConfigError
from common.peers.http_settings import HttpSettings
from common.peers.scim_transport import ScimTransport, Unanswered, refusal_text


async def probe_scim(http: HttpSettings, endpoint: str) -> tuple[str, str] | None:
    """None when `endpoint` (`/Users`) answers a listing; else what is wrong and the fix. No text holds a
    secret: every one passes through the transport's `redact`."""
    async with ScimTransport(http, max_connections=1) as transport:
        try:
            answer = await transport.send("GET", endpoint, query="count=1")
        except Unanswered as exc:
            problem = f"{http.url} cannot be reached: {transport.redact(exc.detail)}"
            return problem, "check the URL, the network and the TLS settings"
        except AuthError as exc:
            return f"no token for {http.url}: {transport.redact(exc.message)}", "check `auth:`"
        said = transport.redact(refusal_text(answer.status, answer.body, detail_max=200))
        if answer.status in (401, 403):
            return f"GET {endpoint} on {http.url} refused the credentials: {said}", "check `auth:`"
        if answer.status >= 400:
            return f"GET {endpoint} on {http.url} answered {said}", "check the URL: it is the SCIM base"
        if answer.malformed or not isinstance(answer.body, dict) or "Resources" not in answer.body:
            if not (isinstance(answer.body, dict) and answer.body.get("totalResults") == 0):
                problem = f"GET {endpoint} on {http.url} answered no SCIM listing"
                return problem, "check the URL: it is the SCIM base, such as https://app.example.org/scim/v2"
    return None


async def check_scim(path: str, http: HttpSettings, endpoints: Iterable[str]) -> list[ConfigError]:
    """`probe_scim` of each endpoint, as a problem of the settings at `path` (named at its `url`)."""
    for endpoint in endpoints:
        found = await probe_scim(http, endpoint)
        if found is not None:  # one is enough: the next endpoint would most likely say the same
            return [ConfigError(join(path, "url"), *found)]
    return []
