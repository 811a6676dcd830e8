"""The generated pages of docs/ are what the code gives now, and README links them."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from engine.cli.docs import PAGES, ROOT, stale

README = ROOT / "README.md"


def test_the_generated_docs_are_not_stale() -> None:
    assert stale() == [], "run `make docs` and commit the pages"


def test_a_stale_page_fails_the_check(tmp_path: Path) -> None:
    for page, render in PAGES.items():
        (tmp_path / page).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / page).write_text(render(), encoding="utf-8")
    assert stale(tmp_path) == []
    first = tmp_path / next(iter(PAGES))
    first.write_text(first.read_text(encoding="utf-8").replace("| `batch_size` |", "| `batchsize` |"))
    assert stale(tmp_path) == [next(iter(PAGES))]


def test_the_check_command_fails_on_a_stale_page_and_says_how_to_fix_it() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "engine.cli.docs", "--check"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def test_every_key_the_configuration_page_shows_is_one_the_parsers_accept() -> None:
    page = (ROOT / "docs/configuration.md").read_text(encoding="utf-8")
    assert "| `batch_size` | integer | 500 |" in page  # the default read from PublishSettings
    assert "| `id_column` | string | **required** |" in page  # required, as the file source checks it
    for link in ("docs/configuration.md", "docs/functions.md", "docs/benchmarks.md"):
        assert f"]({link})" in README.read_text(encoding="utf-8"), link


def test_the_readme_names_every_flag_of_every_command() -> None:
    from engine.cli.main import _parser

    readme = README.read_text(encoding="utf-8")
    parser = _parser()
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    missing = []
    for name, command in {"roster": parser, **commands.choices}.items():
        for action in command._actions:
            for flag in action.option_strings:
                if flag.startswith("--") and flag != "--help" and not re.search(rf"{flag}\b", readme):
                    missing.append(f"roster {name} {flag}")
    assert missing == [], "README.md's Commands and Operating sections should name these"
