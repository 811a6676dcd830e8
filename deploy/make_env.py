"""Write the `.env` that docker-compose.yml reads its secrets from: `python3 deploy/make_env.py .env`.

A missing file is created mode 0600 with a random value for each secret; an existing one keeps its
values, gains only the variables it lacks, and is made 0600. Standard library only: it runs before any
venv exists (`make env`, which `make quickstart` calls).
"""

from __future__ import annotations

import os
import secrets
import stat
import sys
from pathlib import Path

# Each variable of docker-compose.yml that `make env` provides, with how its value is made.
SECRETS = ("RABBITMQ_PASSWORD", "POSTGRES_PASSWORD", "ROSTER_API_TOKEN", "GRAFANA_ADMIN_PASSWORD")
SETTINGS = {
    # Where Alertmanager POSTs the alerts of deploy/prometheus/alerts.yml (its webhook JSON format).
    # Point it at your receiver (chat bridge, pager, ticketing); this default is the host's port 5001.
    "ALERT_WEBHOOK_URL": "http://host.docker.internal:5001/",
}


def values() -> dict[str, str]:
    return {**{name: secrets.token_urlsafe(24) for name in SECRETS}, **SETTINGS}


def existing_names(text: str) -> set[str]:
    return {
        line.split("=", 1)[0].strip()
        for line in text.splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    }


def write(path: Path) -> list[str]:
    """Create or complete `path`; returns the names it added."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "r+", encoding="utf-8") as env:
        os.fchmod(env.fileno(), stat.S_IRUSR | stat.S_IWUSR)
        env.seek(0)
        text = env.read()
        have = existing_names(text)
        added = {name: value for name, value in values().items() if name not in have}
        if added and text and not text.endswith("\n"):
            env.write("\n")
        if not text:
            env.write("# docker-compose.yml's secrets and settings, by `make env`; keep this file private.\n")
        env.writelines(f"{name}={value}\n" for name, value in added.items())
    return list(added)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: make_env.py PATH  (e.g. .env)", file=sys.stderr)
        return 2
    path = Path(argv[1])
    added = write(path)
    print(f"{path}: {'added ' + ', '.join(added) if added else 'up to date'} (mode 0600)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
