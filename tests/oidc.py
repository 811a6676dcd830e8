"""A private OpenID Connect provider for the console's tests: Debian's glewlwyd, as a child process on
127.0.0.1, with everything in one temporary directory (its config file, a SQLite database made from the
package's own schema, an RS256 signing key, its log).

The database is seeded before the start, so the provider comes up ready in one step: the OIDC plugin
(discovery, JWKS, authorization code with PKCE required), the users (glewlwyd's own password check,
PBKDF2 as its database module stores it), their `groups` as a claim of every ID token, a confidential
client with the redirect URIs the test names, and the users' consent to that client already given. Each
user's `sub` is fixed here too (glewlwyd would otherwise make a random one), so a test can assert it.
Nothing is written outside the directory; `stop()` ends the process group, and the caller removes it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import shutil
import socket
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from joserfc.jwk import RSAKey

from tests.children import end_group

if TYPE_CHECKING:
    from playwright.sync_api import Page, Response

INSTALL_HINT = (
    "install it with `DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends glewlwyd`"
)
GLEWLWYD = Path("/usr/bin/glewlwyd")
SCHEMA = Path("/usr/share/dbconfig-common/data/glewlwyd/install/sqlite3")
WEBAPP = Path("/usr/share/glewlwyd/webapp")
MODULES = Path("/usr/lib/glewlwyd")
PLUGIN = "oidc"  # the plugin instance's name: its endpoints are under /api/oidc/
SCOPE = "roster"  # the scope a console asks for besides openid
START_TIMEOUT_S = 20.0
_PBKDF2_ITERATIONS = 1000  # glewlwyd's database user module's default


class ProviderError(RuntimeError):
    """glewlwyd is missing, or did not start."""


@dataclass(frozen=True, slots=True)
class User:
    """A user who signs in with `password`; `groups` reach the ID token as the `groups` claim."""

    username: str
    password: str = field(repr=False)
    name: str
    email: str
    groups: tuple[str, ...] = ()
    sub: str = ""

    def subject(self) -> str:
        return self.sub or f"sub-{self.username}"


@dataclass(frozen=True, slots=True)
class Client:
    """A confidential client (client_secret_basic or _post) allowed the authorization code flow."""

    client_id: str
    secret: str = field(repr=False)
    redirect_uris: tuple[str, ...]


@dataclass(slots=True)
class Provider:
    """One running glewlwyd. `issuer` is what its ID tokens say and where discovery is found."""

    root: Path
    port: int
    users: tuple[User, ...]
    client: Client
    admin_password: str = field(repr=False)
    process: subprocess.Popen[bytes] | None = None
    started_in_s: float = 0.0  # from make_provider's call to discovery answering

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.url}/api/{PLUGIN}"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    @property
    def log_path(self) -> Path:
        return self.root / "glewlwyd.log"

    def user(self, username: str) -> User:
        return next(user for user in self.users if user.username == username)

    def start(self) -> Provider:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(GLEWLWYD), f"--config-file={self.root / 'glewlwyd.conf'}"],
            cwd=self.root,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _serves(self.discovery_url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ProviderError(f"glewlwyd did not start on port {self.port}:\n{self.log()[-3000:]}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        process, self.process = self.process, None
        end_group(process, 10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def make_provider(directory: Path, *, users: Sequence[User], client: Client) -> Provider:
    """A provider configured in `directory` (which it fills) and started; raises ProviderError."""
    for path in (GLEWLWYD, SCHEMA, WEBAPP / "login.html"):
        if not path.exists():
            raise ProviderError(
                f"{path} is missing: the console tests sign in through glewlwyd; {INSTALL_HINT}"
            )
    began = time.monotonic()
    provider = Provider(
        root=directory,
        port=free_port(),
        users=tuple(users),
        client=client,
        admin_password=secrets.token_urlsafe(16),
    )
    key = RSAKey.generate_key(2048, parameters={"alg": "RS256", "use": "sig", "kid": "roster-test"})
    jwks = json.dumps({"keys": [key.as_dict(private=True)]})
    (directory / "jwks.json").write_text(jwks)
    (directory / "jwks.json").chmod(0o600)
    _seed(directory / "glewlwyd.db", provider, jwks)
    _webapp(directory / "webapp")
    (directory / "glewlwyd.conf").write_text(_config(provider))
    provider.start()
    provider.started_in_s = time.monotonic() - began
    return provider


def open_login(page: Page, url: str, username: str, password: str) -> Response:
    """Open `url` (a page that sends the browser to glewlwyd), type the credentials into glewlwyd's own
    login page and submit them; the answer of glewlwyd's POST /api/auth/ (200 signed in, 401 refused)."""
    page.goto(url)
    page.locator("#username").fill(username)
    page.locator("#password").fill(password)
    with page.expect_response(lambda r: "/api/auth/" in r.url and r.request.method == "POST") as answer:
        page.locator("#loginbut").click()
    return answer.value


def sign_in(page: Page, url: str, username: str, password: str) -> None:
    """The whole sign-in: login, then glewlwyd's "Continue" back to the client (consent is given)."""
    answer = open_login(page, url, username, password)
    if answer.status != 200:
        raise ProviderError(f"glewlwyd refused {username}'s password ({answer.status})")
    page.get_by_role("button", name="Continue").click()


def password_hash(password: str) -> str:
    """A password as glewlwyd's database user module stores it: base64(PBKDF2-SHA256 digest + salt)."""
    salt = secrets.token_urlsafe(12)[:16].encode()
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _PBKDF2_ITERATIONS)
    return base64.b64encode(digest + salt).decode()


def plugin_parameters(issuer: str, jwks: str) -> dict[str, object]:
    """The OIDC plugin's settings (docs/OIDC.md of glewlwyd): code flow only, PKCE required, RS256."""
    return {
        "iss": issuer,
        "jwks-private": jwks,
        "default-kid": "roster-test",
        "jwks-show": True,
        "subject-type": "public",
        "access-token-duration": 600,
        "refresh-token-duration": 3600,
        "code-duration": 120,
        "refresh-token-rolling": False,
        "allow-non-oidc": False,
        "auth-type-code-enabled": True,
        "auth-type-token-enabled": False,
        "auth-type-none-enabled": False,
        "auth-type-password-enabled": False,
        "auth-type-client-enabled": False,
        "auth-type-refresh-enabled": True,
        "pkce-allowed": True,
        "pkce-required": True,
        "pkce-method-plain-allowed": False,
        "allowed-scope": ["openid", SCOPE],
        "scope": [],
        "name-claim": "mandatory",
        "email-claim": "mandatory",
        "scope-claim": "no",
        "claims": [
            {"name": "groups", "user-property": "groups", "type": "string", "mandatory": True},
            {"name": "preferred_username", "user-property": "username", "type": "string", "mandatory": True},
        ],
    }


def _seed(path: Path, provider: Provider, jwks: str) -> None:
    db = sqlite3.connect(path)
    try:
        # One transaction: statement by statement, each with its own sync, takes seconds.
        db.executescript(f"BEGIN;\n{SCHEMA.read_text()}\nCOMMIT;")
        db.execute("BEGIN")
        _seed_settings(db, provider, jwks)
        for user in provider.users:
            _seed_user(db, user, provider.client.client_id)
        _seed_client(db, provider.client)
        db.commit()
    finally:
        db.close()


def _seed_settings(db: sqlite3.Connection, provider: Provider, jwks: str) -> None:
    # Every scope asks for the password: no sign-in by user name alone.
    db.execute("UPDATE g_scope SET gs_password_required = 1 WHERE gs_name = 'openid'")
    db.execute(
        "INSERT INTO g_scope (gs_name, gs_display_name, gs_description, gs_password_required) "
        "VALUES (?, ?, ?, 1)",
        (SCOPE, "Roster console", "Sign in to Roster's console"),
    )
    (raw,) = db.execute(
        "SELECT gumi_parameters FROM g_user_module_instance WHERE gumi_name = 'database'"
    ).fetchone()
    parameters = json.loads(raw)
    parameters["data-format"]["groups"] = {
        "multiple": True,
        "read": True,
        "write": True,
        "profile-read": True,
    }
    db.execute(
        "UPDATE g_user_module_instance SET gumi_parameters = ? WHERE gumi_name = 'database'",
        (json.dumps(parameters),),
    )
    # The package's admin has the well-known password "password": give it one of this run's own.
    db.execute(
        "UPDATE g_user_password SET guw_password = ? "
        "WHERE gu_id = (SELECT gu_id FROM g_user WHERE gu_username = 'admin')",
        (password_hash(provider.admin_password),),
    )
    db.execute(
        "INSERT INTO g_plugin_module_instance (gpmi_module, gpmi_name, gpmi_display_name, gpmi_parameters) "
        "VALUES ('oidc', ?, 'OpenID Connect', ?)",
        (PLUGIN, json.dumps(plugin_parameters(provider.issuer, jwks))),
    )
    db.executemany("INSERT OR IGNORE INTO g_user_scope (gus_name) VALUES (?)", [("openid",), (SCOPE,)])


def _seed_user(db: sqlite3.Connection, user: User, client_id: str) -> None:
    row = db.execute(
        "INSERT INTO g_user (gu_username, gu_name, gu_email, gu_enabled) VALUES (?, ?, ?, 1)",
        (user.username, user.name, user.email),
    )
    gu_id = row.lastrowid
    db.execute(
        "INSERT INTO g_user_password (gu_id, guw_password) VALUES (?, ?)",
        (gu_id, password_hash(user.password)),
    )
    for scope in ("openid", SCOPE):
        db.execute(
            "INSERT INTO g_user_scope_user (gu_id, gus_id) "
            "VALUES (?, (SELECT gus_id FROM g_user_scope WHERE gus_name = ?))",
            (gu_id, scope),
        )
        db.execute(
            "INSERT INTO g_client_user_scope (gs_id, gcus_username, gcus_client_id) "
            "VALUES ((SELECT gs_id FROM g_scope WHERE gs_name = ?), ?, ?)",
            (scope, user.username, client_id),
        )
    db.executemany(
        "INSERT INTO g_user_property (gu_id, gup_name, gup_value) VALUES (?, 'groups', ?)",
        [(gu_id, group) for group in user.groups],
    )
    db.execute(
        "INSERT INTO gpo_subject_identifier (gposi_plugin_name, gposi_username, gposi_sub) VALUES (?, ?, ?)",
        (PLUGIN, user.username, user.subject()),
    )


def _seed_client(db: sqlite3.Connection, client: Client) -> None:
    row = db.execute(
        "INSERT INTO g_client (gc_client_id, gc_name, gc_confidential, gc_enabled) VALUES (?, ?, 1, 1)",
        (client.client_id, client.client_id),
    )
    properties = [("redirect_uri", uri) for uri in client.redirect_uris]
    properties += [("authorization_type", "code"), ("authorization_type", "refresh_token")]
    properties += [("token_endpoint_auth_method", "client_secret_basic")]
    properties += [("token_endpoint_auth_method", "client_secret_post"), ("client_secret", client.secret)]
    db.executemany(
        "INSERT INTO g_client_property (gc_id, gcp_name, gcp_value) VALUES (?, ?, ?)",
        [(row.lastrowid, name, value) for name, value in properties],
    )


def _webapp(target: Path) -> None:
    """The package's login pages with a config.json of our own (Debian's is a dangling directory link).
    A copy, not links: glewlwyd serves no file whose real path is outside its static directory."""
    shutil.copytree(WEBAPP, target, ignore=shutil.ignore_patterns("config.json", "admin.js", "profile.js"))
    shipped = Path("/etc/glewlwyd/config-2.7.json/config.json")
    config = json.loads(shipped.read_text()) if shipped.is_file() else {}
    config.update(GlewlwydUrl="./", LoginUrl="login.html", lang=["en"], defaultScheme="", sessionSchemes=[])
    (target / "config.json").write_text(json.dumps(config))


def _config(provider: Provider) -> str:
    root = provider.root
    mime = {
        ".html": "text/html",
        ".css": "text/css",
        ".js": "application/javascript",
        ".json": "application/json",
        ".png": "image/png",
        ".ico": "image/x-icon",
        ".svg": "image/svg+xml",
        ".woff": "font/woff",
        ".woff2": "font/woff2",
        ".ttf": "font/ttf",
    }
    types = ",\n".join(f'  {{ extension = "{ext}"\n    mime_type = "{kind}" }}' for ext, kind in mime.items())
    return f"""\
port={provider.port}
bind_address="127.0.0.1"
external_url="{provider.url}"
login_url="login.html"
api_prefix="api"
static_files_path="{root / "webapp"}/"
log_mode="console"
log_level="INFO"
cookie_secure=0
cookie_same_site="lax"
session_key="GLEWLWYD2_SESSION_ID"
admin_session_authentication="cookie"
profile_session_authentication="cookie"
allow_multiple_user_per_session=false
login_api_enabled=true
admin_scope="g_admin"
profile_scope="g_profile"
user_module_path="{MODULES / "user"}"
client_module_path="{MODULES / "client"}"
user_auth_scheme_module_path="{MODULES / "scheme"}"
plugin_module_path="{MODULES / "plugin"}"
hash_algorithm="SHA512"
database = {{
  type = "sqlite3"
  path = "{root / "glewlwyd.db"}"
}};
static_files_mime_types = (
{types}
);
"""


# Never through a proxy named by the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _serves(url: str) -> bool:
    try:
        with _DIRECT.open(url, timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
