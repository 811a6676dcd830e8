"""Replace, in the five forms the product describes: plain (oldValue), in a template, by regular
expression, in a named group, or from another attribute. Its form is chosen once, at parse time."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from engine.mapping.dotnet import FAST_CHARS, Regex, compile_regex, replacement_template
from engine.mapping.functions.errors import ArgumentError
from engine.mapping.functions.values import DYNAMIC, Evaluator, empty, map_text, text
from engine.mapping.limits import check_length, quote, replace_text


def build_replace(args: tuple[Evaluator, ...], consts: tuple[Any, ...]) -> Evaluator:
    """Replace chooses its form once, from which arguments are given (as the product describes)."""
    given = [i < len(consts) and consts[i] is not None for i in range(7)]
    src = args[0]
    arg = [args[i] if given[i] else (lambda source: None) for i in range(7)]
    if given[2]:
        pattern: Regex | None = None
        if consts[2] is not DYNAMIC:
            try:
                pattern = compile_regex(text(consts[2]) or "")
            except (re.error, RecursionError, OverflowError, ValueError) as exc:
                raise ArgumentError(2, f"invalid regular expression: {exc}") from None
        group = consts[3] if given[3] and consts[3] is not DYNAMIC else None
        if pattern is not None and group is not None and str(group) not in pattern.groupindex:
            raise ArgumentError(3, f"the regular expression has no group named {quote(group)}")
        regex_arg = arg[2]

        def regex(source: Mapping[str, Any]) -> Regex:
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
            return _fixed_regex(src, pattern, replacement)
        return _replace_regex(src, regex, arg[4])
    if not given[1]:
        raise ArgumentError(None, "needs an oldValue (plain form) or a regexPattern (regex form)")
    if given[6]:
        return _replace_in_template(src, arg[1], arg[6])
    if consts[1] is not DYNAMIC and consts[4] is not DYNAMIC and (old := text(consts[1])):
        new = text(consts[4]) or ""
        if len(new) <= len(old):
            return _fixed(src, lambda s: s.replace(old, new))  # it cannot grow
        return _fixed(src, lambda s: replace_text(s, old, new))
    return _replace_plain(src, arg[1], arg[4])


def _fixed(src: Evaluator, change: Callable[[str], str]) -> Evaluator:
    """Replace with everything but the source known at parse time: the common case, kept short."""

    def run(source: Mapping[str, Any]) -> Any:
        value = src(source)
        return change(value) if value.__class__ is str else map_text(value, change)

    return run


def _fixed_regex(src: Evaluator, pattern: Regex, template: str) -> Evaluator:
    """Replace by a fixed pattern and replacement: a short text goes straight to `re` when that is safe."""
    sub = pattern.substituter(template)
    fast = pattern.fast_substituter(template)
    if fast is None:
        return _fixed(src, sub)

    def run(source: Mapping[str, Any]) -> Any:
        value = src(source)
        if value.__class__ is str:
            return fast(value) if len(value) <= FAST_CHARS else sub(value)
        return map_text(value, sub)

    return run


def _replace_plain(src: Evaluator, old: Evaluator, new: Evaluator) -> Evaluator:
    def run(source: Mapping[str, Any]) -> Any:
        o, n = text(old(source)), text(new(source)) or ""
        return map_text(src(source), (lambda s: replace_text(s, o, n)) if o else str)

    return run


def _replace_in_template(src: Evaluator, old: Evaluator, template: Evaluator) -> Evaluator:
    def run(source: Mapping[str, Any]) -> Any:
        o, t = text(old(source)) or "", text(template(source)) or ""
        return map_text(src(source), lambda s: replace_text(t, o, s) if o else t)

    return run


def _replace_regex(src: Evaluator, regex: Callable[..., Regex], new: Evaluator) -> Evaluator:
    def run(source: Mapping[str, Any]) -> Any:
        pattern, replacement = regex(source), replacement_template(text(new(source)) or "")
        return map_text(src(source), pattern.substituter(replacement))

    return run


def _replace_group(
    src: Evaluator, regex: Callable[..., Regex], group: Evaluator, new: Evaluator
) -> Evaluator:
    def run(source: Mapping[str, Any]) -> Any:
        pattern, name, replacement = regex(source), text(group(source)) or "", text(new(source)) or ""

        def sub(s: str) -> str:
            out: list[str] = []
            last = size = 0
            for m in pattern.finditer(s):
                start, end = m.span(name)
                if start >= 0:
                    out += (s[last:start], replacement)
                    size += start - last + len(replacement)
                    check_length(size)
                    last = end
            return "".join(out) + s[last:]

        return map_text(src(source), sub)

    return run


def _replace_from_attribute(
    src: Evaluator, regex: Callable[..., Regex], group: Evaluator, other: Evaluator
) -> Evaluator:
    def run(source: Mapping[str, Any]) -> Any:
        value = src(source)
        if not empty(value):
            return value
        fallback = text(other(source))
        m = regex(source).search(fallback) if fallback else None
        return m[text(group(source)) or 0] if m else None

    return run
