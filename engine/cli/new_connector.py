"""`roster new-connector NAME [--into FOLDER]`: write a ready package for a new connector type."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from common.errors import ConfigError
from roster.scaffold import NAME, default_folder, write_package
from workers.connectors.plugin import connector_types

INSTALL = escape("pip install -e '.[test]'")


def new_connector_command(args: argparse.Namespace, console: Console) -> int:
    name: str = args.name
    folder: Path = args.into or Path(default_folder(name) if NAME.fullmatch(name) else name)
    if name in connector_types().loaded:
        raise ConfigError("NAME", f"{name!r} is a connector type already installed", "choose another name")
    if folder.exists():
        fix = "give another folder with --into"
        raise ConfigError(str(folder), "exists already; nothing was written", fix)
    try:
        written = write_package(name, folder)
    except ValueError as error:
        raise ConfigError("NAME", str(error)) from None
    console.print(f"wrote {len(written)} files into {escape(str(folder))}/:", highlight=False, soft_wrap=True)
    for path in written:
        console.print(f"  {escape(str(path.relative_to(folder)))}", highlight=False, soft_wrap=True)
    console.print(
        f"\nnext: cd {escape(str(folder))} && {INSTALL} && pytest\n"
        f"then `roster plugins` lists `{name}`, and a target with `type: {name}` uses it "
        "(docs/connectors.md says what a connector must do).",
        highlight=False,
        soft_wrap=True,
    )
    return 0
