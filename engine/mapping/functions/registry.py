"""The registry of the expression language: `Function` (arity, signature, volatility, implementation)
and `FUNCTIONS`, every function by its name.

A function is *eager* (`impl` gets the argument values) or *built* (`build` gets the argument
evaluators and the arguments known at parse time, for short-circuiting and for choosing a form once).
The parser (`engine.mapping.expression`) checks arity and calls `check`/`build`; nothing here knows
the syntax.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

from engine.mapping.functions import dates, generated, lists, logic, replace, strings, unique
from engine.mapping.functions.values import Evaluator, empty, truth

Volatility = Literal["random", "clock"] | None


@dataclass(frozen=True, slots=True)
class Function:
    """One function of the expression language."""

    name: str
    params: str
    min_args: int
    max_args: int | None
    impl: Callable[..., Any] | None = None
    build: Callable[[tuple[Evaluator, ...], tuple[Any, ...]], Evaluator] | None = None
    check: Callable[[tuple[Any, ...]], None] | None = None
    volatile: Volatility = None
    absorbs_clock: Callable[[tuple[Any, ...]], bool] | None = None
    """True when the result changes far less often than a clock argument (DateDiff in days)."""
    grows: bool = False
    """Its result can be longer than its arguments together: it is checked against the size bounds."""

    @property
    def signature(self) -> str:
        return f"{self.name}{self.params}"


_RANDOM_PARAMS = (
    "(Length, MinimumNumbers, MinimumSpecialCharacters, MinimumCapital, MinimumLowerCase, CharactersToAvoid)"
)
_REPLACE_PARAMS = (
    "(source, oldValue, regexPattern, regexGroupName, replacementValue, replacementAttributeName, template)"
)
F = Function
# fmt: off
FUNCTIONS: Final[dict[str, Function]] = {f.name: f for f in (
    F("Append", "(source, suffix)", 2, 2, strings.append, grows=True),
    F("AppRoleAssignmentsComplex", "(appRoleAssignments)", 1, 1, lists.app_role_assignments_complex,
      grows=True),
    F("BitAnd", "(value1, value2)", 2, 2, logic.bit_and),
    F("CBool", "(expression)", 1, 1, truth),
    F("CDate", "(expression)", 1, 1, dates.cdate, grows=True),
    F("Coalesce", "(source1, source2, ..., defaultValue)", 1, None, build=logic.build_coalesce),
    F("ConvertToBase64", "(source)", 1, 1, strings.to_base64, grows=True),
    F("ConvertToUTF8Hex", "(source)", 1, 1, strings.to_utf8_hex, grows=True),
    F("Count", "(attribute)", 1, 1, lists.count),
    F("CStr", "(value)", 1, 1, strings.cstr),
    F("DateAdd", "(interval, value, dateTime)", 3, 3, dates.date_add, check=dates.check_interval),
    F("DateDiff", "(interval, date1, date2)", 3, 3, dates.date_diff, check=dates.check_interval,
      absorbs_clock=dates.absorbs_clock_in_days),
    F("DateFromNum", "(value)", 1, 1, dates.date_from_num),
    F("FormatDateTime", "(source, dateTimeStyles, inputFormat, outputFormat)", 3, 4, dates.format_date_time,
      absorbs_clock=dates.absorbs_clock_in_date_format, grows=True),
    F("Guid", "()", 0, 0, generated.guid, volatile="random"),
    F("IgnoreFlowIfNullOrEmpty", "(expression)", 1, 1, logic.ignore_flow),
    F("IIF", "(condition, valueIfTrue, valueIfFalse)", 3, 3, build=logic.build_iif),
    F("InStr", "(value1, value2, start, compareType)", 2, 4, strings.in_str),
    F("IsNull", "(expression)", 1, 1, lambda v: v is None or v == []),
    F("IsNullOrEmpty", "(expression)", 1, 1, empty),
    F("IsPresent", "(expression)", 1, 1, lambda v: not empty(v)),
    F("IsString", "(expression)", 1, 1, lambda v: v.__class__ is str),
    F("Item", "(attribute, index)", 2, 2, lists.item, check=lists.check_item),
    F("Join", "(separator, source1, source2, ...)", 2, None, build=strings.build_join, grows=True),
    F("Left", "(String, NumChars)", 2, 2, strings.left),
    F("Len", "(source)", 1, 1, strings.length),
    F("Mid", "(source, start, length)", 3, 3, strings.mid),
    F("NormalizeDiacritics", "(source)", 1, 1, strings.normalize_diacritics, grows=True),
    F("Not", "(source)", 1, 1, logic.not_),
    F("Now", "()", 0, 0, dates.now, volatile="clock"),
    F("NumFromDate", "(value)", 1, 1, dates.num_from_date),
    F("PCase", "(source, wordSeparators)", 1, 2, strings.pcase, grows=True),
    F("RandomString", _RANDOM_PARAMS, 5, 6, generated.random_string, volatile="random"),
    F("Redact", "(value)", 1, 1, lambda v: v),
    F("RemoveDuplicates", "(attribute)", 1, 1, lists.remove_duplicates),
    F("Replace", _REPLACE_PARAMS, 5, 7, build=replace.build_replace, grows=True),
    F("SelectUniqueValue", "(uniqueValueRule1, uniqueValueRule2, ...)", 2, None, unique.select_unique),
    F("SingleAppRoleAssignment", "(appRoleAssignments)", 1, 1, lists.single_app_role),
    F("Split", "(source, delimiter)", 2, 2, strings.split, grows=True),
    F("StripSpaces", "(source)", 1, 1, strings.strip_spaces),
    F("Switch", "(source, defaultValue, key1, value1, key2, value2, ...)", 4, None, build=logic.build_switch,
      check=logic.check_switch),
    F("ToLower", "(source, culture)", 1, 2, strings.to_lower, grows=True),
    F("ToUpper", "(source, culture)", 1, 2, strings.to_upper, grows=True),
    F("Word", "(String, WordNumber, Delimiters)", 3, 3, strings.word),
)}
# fmt: on
"""Every function, by its case-sensitive name (the product's syntax is case-sensitive)."""
