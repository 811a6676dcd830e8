"""A parsed and compiled expression of the mapping language (`syntax.py` parses, `compiler.py` compiles).

The syntax is the cloud product's: `Join(" ", [givenName], [sn])`, with `[attribute]` references, string
literals with backslash escapes (`\\"` and `\\\\`; any other backslash stays as written, so regular
expressions read naturally), numbers (also VB's `&HF7`), True/False, vbBinaryCompare/vbTextCompare,
omitted arguments (`Replace([mail], , "@.*", , "", , )`) and one comparison (`=`, `<>`, `<`, `<=`, `>`,
`>=`) inside IIF or CBool. An expression is parsed once per job and compiled to nested closures, so
evaluating it per object is a few function calls: no `eval`, no `exec`, no tree walk. Every evaluation,
at parse time and per object, is bounded in size, regular-expression time and number range
(`engine.mapping.limits`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.mapping.compiler import Compiler, finish
from engine.mapping.functions.values import Evaluator
from engine.mapping.syntax import Call, Node, parse_tree


@dataclass(frozen=True, slots=True, eq=False)
class Expression:
    """A parsed and compiled expression.

    `evaluate(attributes)` is the compiled closure itself (no method call in between): it returns the
    value, `OMIT` when IgnoreFlowIfNullOrEmpty drops the attribute, and raises `MappingError` when this
    object cannot be mapped. `volatile` says the value can change at every evaluation (Guid, Now,
    RandomString), so it belongs on a create-only mapping; `unique` says it is a SelectUniqueValue,
    which the target resolves; `redacted` says it uses Redact, so logs and previews must hide it.
    """

    text: str
    tree: Node
    evaluate: Callable[[Mapping[str, Any]], Any] = field(repr=False)
    root: Evaluator = field(repr=False)
    """The compiled tree before `finish`: for callers that add their own default (`ExpressionMapping`)."""
    references: frozenset[str]
    volatile: bool
    unique: bool
    redacted: bool

    def __str__(self) -> str:
        return str(self.tree)


def parse_expression(text: str) -> Expression:
    """Parse and compile `text`; raises `ExpressionSyntaxError` naming the column and what was expected."""
    tree = parse_tree(text)
    compiler = Compiler()
    run, _const, kinds = compiler.compile(tree, top=True)
    return Expression(
        text=text,
        tree=tree,
        evaluate=finish(run),
        root=run,
        references=frozenset(compiler.references),
        volatile=bool(kinds),
        unique=isinstance(tree, Call) and tree.name == "SelectUniqueValue",
        redacted=compiler.redacted,
    )
