"""A private Active Directory domain controller for the tests and benchmarks: Debian's Samba, provisioned
by `samba-tool domain provision` into a temporary directory.

Samba is a real AD DC: `userAccountControl`, `unicodePwd` over LDAPS, ranged `member` reads, `uSNChanged`,
tombstones. Its LDAP ports are fixed (389, 636), so each instance listens on a loopback address of its own
(127.0.0.N, which Linux routes to `lo` whole) with `bind interfaces only`; only the LDAP service runs
(`server services = ldap`, no DNS, no KDC, no SMB), in one process (`-M single`), in the foreground as our
child, so `stop()` ends exactly it. Provisioning takes about five seconds; `provisioned()` does it once
per test session and each instance starts from a copy. Everything lives under the instance's directory,
removed with it. A missing samba raises `SambaError` naming the packages; the fixtures skip their test
then (tests/needs.py), and fail it when samba is there but does not start.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.children import end_group

REALM = "ROSTER.TEST"
DOMAIN = "ROSTER"
BASE_DN = "DC=roster,DC=test"
ADMIN = "Administrator@roster.test"
START_TIMEOUT_S = 60.0
INSTALL_HINT = (
    "install it with `DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "
    "samba-ad-dc samba-ad-provision`"
)
SYSTEM_PYTHON = "/usr/bin/python3"
"""The Python that has Samba's bindings (Debian's python3-samba), which the venv has not."""
BULK = Path(__file__).with_name("samba_bulk.py")
BULK_PER_OU = 1000
BULK_OU = "bulk"
"""The OU under which `with_users` adds users for the tests."""
_SEARCH_PATH = ("/usr/sbin", "/usr/local/sbin", "/usr/bin")
_PROVISION_HOST = "127.0.0.2"  # the address the template is provisioned for; each copy gets its own
_addresses = itertools.count(3 + os.getpid() % 200)  # another process's DCs start elsewhere


class SambaError(RuntimeError):
    """Samba is missing, or did not provision or start."""


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(_SEARCH_PATH))
    if found is None:
        raise SambaError(
            f"{name} is not installed: the Active Directory tests need a real Samba DC; {INSTALL_HINT}"
        )
    return found


def provision(directory: Path, password: str) -> Path:
    """A freshly provisioned domain in `directory` (its smb.conf's path)."""
    target = directory / "dc"
    done = subprocess.run(
        [
            tool("samba-tool"),
            "domain",
            "provision",
            f"--realm={REALM}",
            f"--domain={DOMAIN}",
            "--server-role=dc",
            "--dns-backend=NONE",
            f"--adminpass={password}",
            f"--targetdir={target}",
            f"--host-ip={_PROVISION_HOST}",
            f"--option=interfaces={_PROVISION_HOST}/8",
            "--option=bind interfaces only=yes",
            "--option=server services=ldap",
            # LMDB, not the default TDB: its ordered indexes answer `uSNChanged>=N` (an incremental
            # read) from the index, as AD's own database does, instead of scanning every object.
            "--backend-store=mdb",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        hint = f" ({INSTALL_HINT})" if "samba-ad-provision" in tail else ""
        raise SambaError(f"samba-tool domain provision failed{hint}:\n{tail}")
    return target / "etc" / "smb.conf"


@dataclass(slots=True)
class SambaDC:
    """One private Samba AD DC. `ldaps_url` for writes of passwords; `url` is plain LDAP (StartTLS works)."""

    root: Path
    address: str
    password: str = field(repr=False)
    process: subprocess.Popen[bytes] | None = None

    base_dn: str = BASE_DN
    admin: str = ADMIN
    realm: str = REALM

    @property
    def url(self) -> str:
        return f"ldap://{self.address}:389"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://{self.address}:636"

    @property
    def conf(self) -> Path:
        return self.root / "dc" / "etc" / "smb.conf"

    @property
    def ca_file(self) -> Path:
        """The CA of this DC's LDAPS certificate, which names its address (`tls_for`)."""
        return self.root / "tls" / "ca.pem"

    @property
    def log_path(self) -> Path:
        return self.root / "samba.log"

    def start(self) -> SambaDC:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [tool("samba"), "-s", str(self.conf), "-i", "-M", "single"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(self.address, 636):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SambaError(f"samba did not start on {self.address}:\n{self.log()[-2000:]}")
            time.sleep(0.2)
        return self

    def stop(self) -> None:
        process, self.process = self.process, None
        end_group(process, 15)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def copy_of(template: Path, directory: Path, password: str) -> SambaDC:
    """A DC from the provisioned `template` (a directory holding `dc/`), moved to an address of its own."""
    address = _free_address()
    shutil.copytree(template / "dc", directory / "dc", symlinks=True)
    conf = directory / "dc" / "etc" / "smb.conf"
    text = conf.read_text().replace(str(template / "dc"), str(directory / "dc"))
    text = re.sub(r"interfaces = \S+", f"interfaces = {address}/8", text)
    # Samba's pid file is /run/samba/samba.pid unless told otherwise: a second DC would refuse to start.
    tls = tls_for(directory / "tls", address)
    own = [
        f"pid directory = {directory / 'dc'}",
        f"tls certfile = {tls / 'server.pem'}",
        f"tls keyfile = {tls / 'server.key'}",
        f"tls cafile = {tls / 'ca.pem'}",
        "ldb:nosync = true",  # a throwaway domain needs no fsync per write (Samba's own selftest does so)
    ]
    text = text.replace("[global]\n", "[global]\n" + "".join(f"\t{line}\n" for line in own), 1)
    conf.write_text(text)
    return SambaDC(root=directory, address=address, password=password)


def with_users(template: Path, directory: Path, ou: str, count: int) -> Path:
    """A copy of the provisioned `template` in `directory` (a template in turn, for `copy_of`) with `count`
    users `user000000`... added offline under `OU=ou` in OUs of 1,000 (tests/samba_bulk.py, through
    Samba's own bindings: ~10x faster than adds over LDAP, which matters from a few thousand)."""
    shutil.copytree(template / "dc", directory / "dc", symlinks=True)
    conf = directory / "dc" / "etc" / "smb.conf"
    conf.write_text(conf.read_text().replace(str(template / "dc"), str(directory / "dc")))
    done = subprocess.run(
        bulk_command(conf, ou, count),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise SambaError(f"adding {count} users offline failed:\n{done.stderr[-2000:]}")
    return directory


def bulk_command(conf: Path, ou: str, count: int) -> list[str]:
    """The command that adds `count` users under `OU=ou` to the stopped DC of `conf` (isolated, `-I`:
    the script's own directory holds this module, whose name would hide Samba's package)."""
    return [SYSTEM_PYTHON, "-I", str(BULK), str(conf), BASE_DN, ou, str(count)]


def bulk_user_dn(number: int, ou: str = BULK_OU) -> str:
    """The DN `with_users` gives user `number` under `OU=ou`."""
    return f"CN=user{number:06d},OU=b{number // BULK_PER_OU:03d},OU={ou},{BASE_DN}"


def tls_for(root: Path, address: str) -> Path:
    """A throwaway CA (`ca.pem`) and a server certificate for `address` in `root`: Samba's own
    certificate names its host, not the loopback address clients dial."""
    root.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        done = subprocess.run([tool("openssl"), *args], cwd=root, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SambaError(f"openssl {args[0]} failed: {done.stderr[-1000:]}")

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    run(
        "req",
        "-x509",
        *ec,
        "-days",
        "2",
        "-subj",
        "/CN=roster AD test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    )
    run("req", *ec, "-subj", f"/CN={address}", "-keyout", "server.key", "-out", "server.csr")
    (root / "san.ext").write_text(f"subjectAltName=IP:{address},DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", "san.ext", "-out", "server.pem")  # fmt: skip
    (root / "server.key").chmod(0o600)
    return root


def _free_address() -> str:
    """The next loopback address on which nothing answers LDAP (another test process's DC may)."""
    while True:
        address = f"127.0.0.{3 + (next(_addresses) - 3) % 250}"
        if not _answers(address, 389) and not _answers(address, 636):
            return address


def new_password() -> str:
    """An administrator password that meets the domain's default complexity policy."""
    return f"Rt-{secrets.token_hex(8)}-Aa1!"


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
