"""A private OpenLDAP for the tests and benchmarks: Debian's slapd with a throwaway config and database.

We did not write the server, so the LDAP connector and source are tested against a real directory. Each
instance lives in its own directory (config, database, TLS files, log) and listens on 127.0.0.1 only, on
LDAP and LDAPS ports of its own (StartTLS on the LDAP port); the system's slapd is never touched. It runs
in the foreground as our child, so `stop()` ends exactly it, and `start()` brings it back on the same ports
with the same data. A missing slapd raises `SlapdError` naming the package to install; the test fixtures
skip their test then (tests/needs.py), and fail it when slapd is there but does not start.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SUFFIX = "dc=example,dc=org"
ROOT_DN = f"cn=admin,{SUFFIX}"
READER_DN = f"cn=reader,{SUFFIX}"
START_TIMEOUT_S = 20.0
INSTALL_HINT = "install it with `DEBIAN_FRONTEND=noninteractive apt-get install -y slapd ldap-utils`"
_SCHEMAS = ("core", "cosine", "inetorgperson", "nis")
_SEARCH_PATH = ("/usr/sbin", "/usr/local/sbin", "/usr/bin")


class SlapdError(RuntimeError):
    """slapd is missing, or did not start."""


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(_SEARCH_PATH))
    if found is None:
        raise SlapdError(f"{name} is not installed: the LDAP tests need a real OpenLDAP; {INSTALL_HINT}")
    return found


def _ssha(password: str) -> str:
    salt = secrets.token_bytes(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(slots=True)
class Slapd:
    """One private slapd. `url` is plain LDAP (StartTLS works on it), `ldaps_url` is LDAP over TLS."""

    root: Path
    port: int
    tls_port: int
    password: str = field(repr=False)
    reader_password: str = field(repr=False)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    @property
    def ca_file(self) -> Path:
        return self.root / "ca.pem"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> Slapd:
        """Start (or start again) on the same ports and data; wait until it answers."""
        if self.running:
            return self
        log = (self.root / "slapd.log").open("ab")
        try:
            self.process = subprocess.Popen(
                [
                    _tool("slapd"),
                    "-f",
                    str(self.root / "slapd.conf"),
                    "-h",
                    f"{self.url}/ {self.ldaps_url}/",
                    "-d",
                    "0",
                ],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        finally:
            log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SlapdError(f"slapd exited with {self.process.returncode}: {self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise SlapdError(f"slapd did not answer on {self.url} within {START_TIMEOUT_S:g} s: {self.output()}")

    def stop(self) -> None:
        """Stop this slapd by its own pid (it flushes its database first); safe to call twice."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def entries(
        self, base: str = SUFFIX, search_filter: str = "(objectClass=*)", attributes: list[str] | None = None
    ) -> dict[str, dict[str, list[str]]]:
        """Every entry under `base` as the server holds it: DN to attributes (lowercased names, text values),
        read with a connection of our own as the root DN."""
        import ldap3

        conn = ldap3.Connection(ldap3.Server(self.url, get_info=ldap3.NONE), ROOT_DN, self.password)
        try:
            conn.bind()
            found = conn.extend.standard.paged_search(
                base, search_filter, attributes=attributes or ["*"], paged_size=1000, generator=False
            )
            return {
                item["dn"]: {
                    name.lower(): sorted(v.decode() for v in values)
                    for name, values in item["raw_attributes"].items()
                }
                for item in found
                if item.get("type") == "searchResEntry"
            }
        finally:
            conn.unbind()

    def output(self) -> str:
        path = self.root / "slapd.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def target_settings(server: Slapd, **overrides: Any) -> dict[str, Any]:
    """An LDAP target's settings for `server` as the tests use them: users as inetOrgPerson under ou=people
    (disabled by employeeType), groups as groupOfNames under ou=groups; `users`/`groups` extend those."""
    users = {
        "dn": f"uid={{userName}},ou=people,{SUFFIX}",
        "attributes": {
            "userName": "uid",
            "givenName": "givenName",
            "familyName": "sn",
            "displayName": "cn",
            "email": "mail",
        },
        "disable": {"attribute": "employeeType", "value": "disabled"},
        **overrides.pop("users", {}),
    }
    groups = {
        "dn": f"cn={{displayName}},ou=groups,{SUFFIX}",
        "attributes": {"displayName": "cn"},
        **overrides.pop("groups", {}),
    }
    return {
        "url": server.url,
        "bind_dn": ROOT_DN,
        "bind_password": server.password,
        "base_dn": SUFFIX,
        "pool_size": 4,
        "timeout_s": 5,
        "connect_timeout_s": 2,
        "users": users,
        "groups": groups,
        **overrides,
    }


def make_slapd(root: Path, *, refint: bool = False) -> Slapd:
    """Write a fresh config and database under `root` (the suffix, ou=people, ou=groups, ou=disabled and a
    read-only account `READER_DN`) and start slapd on free ports."""
    slapadd = _tool("slapadd")
    _tool("slapd")
    root.mkdir(parents=True, exist_ok=True)
    (root / "db").mkdir(exist_ok=True)
    password, reader_password = "pw-" + secrets.token_hex(8), "rd-" + secrets.token_hex(8)
    server = Slapd(root, _free_port(), _free_port(), password, reader_password)
    _make_tls(root)
    lines = [f"include /etc/ldap/schema/{name}.schema" for name in _SCHEMAS]
    lines += [
        "modulepath /usr/lib/ldap",
        "moduleload back_mdb",
        *(["moduleload refint"] if refint else []),
        f"pidfile {root / 'slapd.pid'}",
        f"argsfile {root / 'slapd.args'}",
        f"TLSCACertificateFile {root / 'ca.pem'}",
        f"TLSCertificateFile {root / 'server.pem'}",
        f"TLSCertificateKeyFile {root / 'server.key'}",
        "database mdb",
        f'suffix "{SUFFIX}"',
        f'rootdn "{ROOT_DN}"',
        f"rootpw {_ssha(password)}",
        f"directory {root / 'db'}",
        "maxsize 2147483648",
        "dbnosync",
        "index objectClass eq",
        "index uid,cn,mail,employeeNumber,entryUUID eq",
        "index member,uniqueMember eq",
        f'limits dn.exact="{READER_DN}" size=unlimited',
        "access to attrs=userPassword by self write by anonymous auth by * none",
        f'access to * by dn.exact="{READER_DN}" read by * none',
    ]
    if refint:
        lines += ["overlay refint", "refint_attributes member uniqueMember", f'refint_nothing "{ROOT_DN}"']
    (root / "slapd.conf").write_text("\n".join(lines) + "\n")
    base = f"""dn: {SUFFIX}
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,{SUFFIX}
objectClass: organizationalUnit
ou: people

dn: ou=groups,{SUFFIX}
objectClass: organizationalUnit
ou: groups

dn: ou=disabled,{SUFFIX}
objectClass: organizationalUnit
ou: disabled

dn: {READER_DN}
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: reader
userPassword: {reader_password}
"""
    (root / "base.ldif").write_text(base)
    done = subprocess.run(
        [slapadd, "-f", str(root / "slapd.conf"), "-l", str(root / "base.ldif")],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SlapdError(f"slapadd failed ({done.returncode}): {done.stderr[-2000:]}")
    return server.start()


def _make_tls(root: Path) -> None:
    """A throwaway CA and a server certificate for 127.0.0.1 (openssl comes with every Debian)."""
    openssl = _tool("openssl")

    def run(*args: str) -> None:
        done = subprocess.run([openssl, *args], cwd=root, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SlapdError(f"openssl {args[0]} failed: {done.stderr[-1000:]}")

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")  # EC keys: made at once
    run(
        "req",
        "-x509",
        *ec,
        "-days",
        "2",
        "-subj",
        "/CN=roster test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    )
    run("req", *ec, "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr")
    (root / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", "san.ext", "-out", "server.pem")  # fmt: skip
    (root / "server.key").chmod(0o600)
