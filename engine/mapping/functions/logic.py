"""The functions of conditions and truth: IIF, Switch, Coalesce, Not, BitAnd and
IgnoreFlowIfNullOrEmpty (CBool is `values.truth`). IIF, Switch and Coalesce are built: they evaluate
only the arguments they need."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.mapping.functions.errors import ArgumentError, OmitFlow
from engine.mapping.functions.values import DYNAMIC, Evaluator, empty, integer, text, truth


def bit_and(a: Any, b: Any) -> int | None:
    x, y = integer(a, "value1"), integer(b, "value2")
    return None if x is None or y is None else x & y


def build_coalesce(args: tuple[Evaluator, ...], consts: tuple[Any, ...]) -> Evaluator:
    def run(source: Mapping[str, Any]) -> Any:
        for arg in args:
            value = arg(source)
            if value is not None and (value.__class__ is not list or value):
                return value
        return None

    return run


def ignore_flow(value: Any) -> Any:
    if empty(value):
        raise OmitFlow
    return value


def build_iif(args: tuple[Evaluator, ...], consts: tuple[Any, ...]) -> Evaluator:
    condition, if_true, if_false = args

    def run(source: Mapping[str, Any]) -> Any:
        return if_true(source) if truth(condition(source)) else if_false(source)

    return run


def not_(value: Any) -> bool:
    """Not: True only when the source is True (or "True"); anything else, null included, gives True."""
    if value.__class__ is str:
        return value.strip().lower() != "true"
    return value is not True


def build_switch(args: tuple[Evaluator, ...], consts: tuple[Any, ...]) -> Evaluator:
    """Switch compares text, case-sensitively; a null source matches the key ""."""
    source_arg, default = args[0], args[1]
    keys, values = consts[2::2], args[3::2]
    if all(k is not DYNAMIC for k in keys):
        table: dict[str, Evaluator] = {}
        for key, value in zip(keys, values, strict=True):
            table.setdefault(text(key) or "", value)
        get = table.get

        def lookup(source: Mapping[str, Any]) -> Any:
            return get(text(source_arg(source)) or "", default)(source)

        return lookup
    key_args = args[2::2]

    def scan(source: Mapping[str, Any]) -> Any:
        s = text(source_arg(source)) or ""
        for key, value in zip(key_args, values, strict=True):
            if (text(key(source)) or "") == s:
                return value(source)
        return default(source)

    return scan


def check_switch(consts: tuple[Any, ...]) -> None:
    if len(consts) % 2:
        raise ArgumentError(None, f"takes keys and values in pairs, got {len(consts)} arguments")
