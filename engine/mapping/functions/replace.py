"""Replace, in the five forms the product describes: plain (oldValue), in a template, by regular
expression, in a named group, or from another attribute. Its form is chosen once, at parse time."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from engine.mapping.dotnet import compile_regex, replacement_template
from engine.mapping.functions.errors import ArgumentError
from engine.mapping.functions.values import DYNAMIC, Evaluator, empty, map_text, text


def build_replace(args: tuple[Evaluator, ...], consts: tuple[Any, ...]) -> Evaluator:
    """Replace chooses its form once, from which arguments are given (as the product describes)."""
    given = [i < len(consts) and consts[i] is not None for i in range(7)]
    src = args[0]
    arg = [args[i] if given[i] else (lambda source: None) for i in range(7)]
    if given[2]:
        pattern: re.Pattern[str] | None = None
        if consts[2] is not DYNAMIC:
            try:
                pattern = compile_regex(text(consts[2]) or "")
            except (re.error, RecursionError, OverflowError, ValueError) as exc:
                raise ArgumentError(2, f"invalid regular expression: {exc}") from None
        group = consts[3] if given[3] and consts[3] is not DYNAMIC else None
        if pattern is not None and group is not None and str(group) not in pattern.groupindex:
            raise ArgumentError(3, f"the regular expression has no group named {group!r}")
        regex_arg = arg[2]

        def regex(source: Mapping[str, Any]) -> re.Pattern[str]:
            return pattern or compile_regex(text(regex_arg(source)) or "")

        if given[3] and given[5]:
            return _replace_from_attribute(src, regex, arg[3], arg[5])
        if given[3]:
            return _replace_group(src, regex, arg[3], arg[4])
        if pattern is not None and consts[4] is not DYNAMIC:
            replacement = replacement_template(text(consts[4]) or "")
            try:
                pattern.sub(replacement, "")  # checks the group references once
            except (re.error, IndexError) as exc:
                raise ArgumentError(4, f"invalid replacement: {exc}") from None
            return _fixed(src, partial(pattern.sub, replacement))
        return _replace_regex(src, regex, arg[4])
    if not given[1]:
        raise ArgumentError(None, "needs an oldValue (plain form) or a regexPattern (regex form)")
    if given[6]:
        return _replace_in_template(src, arg[1], arg[6])
    if consts[1] is not DYNAMIC and consts[4] is not DYNAMIC and (old := text(consts[1])):
        new = text(consts[4]) or ""
        return _fixed(src, lambda s: s.replace(old, new))
    return _replace_plain(src, arg[1], arg[4])


def _fixed(src: Evaluator, change: Callable[[str], str]) -> Evaluator:
    """Replace with everything but the source known at parse time: the common case, kept short."""

    def run(source: Mapping[str, Any]) -> Any:
        value = src(source)
        return change(value) if value.__class__ is str else map_text(value, change)

    return run


def _replace_plain(src: Evaluator, old: Evaluator, new: Evaluator) -> Evaluator:
    def run(source: Mapping[str, Any]) -> Any:
        o, n = text(old(source)), text(new(source)) or ""
        return map_text(src(source), (lambda s: s.replace(o, n)) if o else str)

    return run


def _replace_in_template(src: Evaluator, old: Evaluator, template: Evaluator) -> Evaluator:
    def run(source: Mapping[str, Any]) -> Any:
        o, t = text(old(source)) or "", text(template(source)) or ""
        return map_text(src(source), lambda s: t.replace(o, s) if o else t)

    return run


def _replace_regex(src: Evaluator, regex: Callable[..., re.Pattern[str]], new: Evaluator) -> Evaluator:
    def run(source: Mapping[str, Any]) -> Any:
        pattern, replacement = regex(source), replacement_template(text(new(source)) or "")
        return map_text(src(source), lambda s: pattern.sub(replacement, s))

    return run


def _replace_group(
    src: Evaluator, regex: Callable[..., re.Pattern[str]], group: Evaluator, new: Evaluator
) -> Evaluator:
    def run(source: Mapping[str, Any]) -> Any:
        pattern, name, replacement = regex(source), text(group(source)) or "", text(new(source)) or ""

        def sub(s: str) -> str:
            out: list[str] = []
            last = 0
            for m in pattern.finditer(s):
                start, end = m.span(name)
                if start >= 0:
                    out += (s[last:start], replacement)
                    last = end
            return "".join(out) + s[last:]

        return map_text(src(source), sub)

    return run


def _replace_from_attribute(
    src: Evaluator, regex: Callable[..., re.Pattern[str]], group: Evaluator, other: Evaluator
) -> Evaluator:
    def run(source: Mapping[str, Any]) -> Any:
        value = src(source)
        if not empty(value):
            return value
        fallback = text(other(source))
        m = regex(source).search(fallback) if fallback else None
        return m[text(group(source)) or 0] if m else None

    return run
