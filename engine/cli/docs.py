"""`python -m engine.cli.docs` (`make docs`): write the generated pages of docs/ from the code;
with `--check`, write nothing and fail when a committed page differs from what the code gives."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from engine.cli import configdocs, functiondocs

ROOT = Path(__file__).resolve().parents[2]
PAGES: dict[str, Callable[[], str]] = {
    "docs/configuration.md": configdocs.render,
    "docs/functions.md": functiondocs.render,
}


def stale(root: Path = ROOT) -> list[str]:
    """The generated pages whose committed text differs from what the code gives now."""
    return [
        page
        for page, render in PAGES.items()
        if not (root / page).is_file() or (root / page).read_text(encoding="utf-8") != render()
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.cli.docs", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if a page is stale; write nothing")
    args = parser.parse_args(argv)
    if args.check:
        old = stale()
        for page in old:
            print(f"{page} is stale: run `make docs` and commit it", file=sys.stderr)
        return 1 if old else 0
    for page, render in PAGES.items():
        (ROOT / page).write_text(render(), encoding="utf-8")
        print(f"wrote {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
