"""The import arrows of DESIGN.md hold over the whole import graph.

* `common` (the kernel) imports nothing else of Roster;
* `queues` imports only `common.errors` of the kernel, and nothing of `engine` or `workers`;
* `workers` import nothing of `engine`; `engine` imports `workers` only in `engine/cli/`, which composes
  both for embedded mode;
* `roster` (the public API for plugin authors) re-exports `common`, `queues` and `workers`; only its
  `roster.source` reaches into `engine` (a worker with a plugin loads no engine module); nothing of
  Roster's kernel or queues imports it, and `engine` only in `engine/cli/` (the conformance kit's command);
* no module reaches itself again through its imports: no import circle.

Every import counts: at the top of a module or inside a function, under `TYPE_CHECKING` or not. That a
worker process loads no engine module is checked on a running worker (tests/integration/test_scaled.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("common", "engine", "queues", "roster", "workers")
FORBIDDEN = {
    "common": {"engine", "queues", "roster", "workers"},
    "engine": {"roster", "workers"},
    "queues": {"engine", "roster", "workers"},
    "roster": {"engine"},
    "workers": {"engine"},
}
MAY_COMPOSE = "engine/cli/"  # embedded mode: the one room that holds both sides
MAY_REACH_ENGINE = "roster/source"  # the public source API re-exports the engine's source types
QUEUES_MAY_USE = {"common.errors"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


def imports_of(path: Path) -> set[tuple[int, str]]:
    """(line, dotted name) of every absolute import in the module at `path`; `from a import b` gives
    `a.b` where that is a module of Roster, else `a`."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {(node.lineno, alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                found.add((node.lineno, name if name in MODULES else node.module))
    return found


def roster_module(name: str) -> str | None:
    """The module of Roster that importing `name` loads (its longest known prefix), if any."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        targets = {roster_module(imported) for _, imported in imports_of(path)}
        edges[name] = {t for t in targets if t is not None and t != name}
    return edges


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_every_package_has_modules_to_check() -> None:
    assert {name.split(".")[0] for name in MODULES} == set(PACKAGES)


@pytest.mark.parametrize("name", sorted(MODULES), ids=lambda name: name)
def test_no_module_imports_against_the_arrows(name: str) -> None:
    path = MODULES[name]
    package = name.split(".")[0]
    relative = path.relative_to(ROOT).as_posix()
    wrong = []
    for line, imported in sorted(imports_of(path)):
        top = imported.split(".")[0]
        composes = top in ("workers", "roster") and relative.startswith(MAY_COMPOSE)
        if top in FORBIDDEN[package] and not composes and not relative.startswith(MAY_REACH_ENGINE):
            wrong.append(f"line {line}: imports {imported}")
        elif package == "queues" and top == "common" and roster_module(imported) not in QUEUES_MAY_USE:
            wrong.append(f"line {line}: imports {imported} (queues/ may use only common.errors)")
    assert not wrong, f"{relative} breaks the import arrows of DESIGN.md: {'; '.join(wrong)}"


def test_no_import_circle() -> None:
    assert circles(graph()) == []


def test_a_circle_is_found_through_type_checking_and_function_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from common.errors import PermanentError\n"
        "def f():\n    import engine.cli.main\n    from . import sibling\n"
    )
    assert imports_of(module) == {(1, "typing"), (3, "common.errors"), (5, "engine.cli.main")}
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []
