"""The import arrows of DESIGN.md hold: `queues` below both, `engine` and `workers` beside each other.

`engine` and `workers` use `queues`; `queues` imports neither; `workers` import nothing from `engine`;
the engine's core never imports `workers`, only `engine/cli/main.py`, which composes both for embedded mode.
Every import counts, at the top of a module or inside a function, under `TYPE_CHECKING` or not.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "common": {"engine", "queues", "workers"},
    "engine": {"workers"},
    "queues": {"engine", "workers"},
    "workers": {"engine"},
}
ALLOWED = {"engine/cli/main.py"}  # embedded mode: the one place that holds both sides


def imported_packages(path: Path) -> set[tuple[int, str]]:
    """(line, top-level package) of every absolute import in the module at `path`."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {(node.lineno, alias.name.split(".")[0]) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.lineno, node.module.split(".")[0]))
    return found


def modules() -> list[Path]:
    return sorted(path for package in FORBIDDEN for path in (ROOT / package).rglob("*.py"))


def test_every_package_has_modules_to_check() -> None:
    assert {path.relative_to(ROOT).parts[0] for path in modules()} == set(FORBIDDEN)


@pytest.mark.parametrize("path", modules(), ids=lambda path: str(path.relative_to(ROOT)))
def test_no_module_imports_against_the_arrows(path: Path) -> None:
    name = path.relative_to(ROOT).as_posix()
    if name in ALLOWED:
        return
    forbidden = FORBIDDEN[name.split("/")[0]]
    imports = imported_packages(path)
    wrong = sorted(f"line {line}: imports {package}" for line, package in imports if package in forbidden)
    assert not wrong, f"{name} breaks the import arrows of DESIGN.md: {'; '.join(wrong)}"


def test_a_forbidden_import_is_seen_wherever_it_stands(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from workers.errors import PermanentError\n"
        "def f():\n    import engine.cli\n    from . import sibling\n"
    )
    assert imported_packages(module) == {(1, "typing"), (3, "workers"), (5, "engine")}
