"""Every evaluation of an expression is bounded, at parse time (constant folding) and per object: sizes,
regular-expression time, date formats and numbers; errors name the function (and, at parse time, the
mapping) and quote at most about 100 characters of a value.

The cases that once hung or exhausted memory run in a child interpreter with a memory limit and a
generous wall-clock guard, so a regression fails its test instead of hanging (or swapping) the suite.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from common.errors import ConfigError
from engine.mapping.dotnet import compile_regex
from engine.mapping.expression import parse_expression
from engine.mapping.expression_mapping import parse_expression_mapping
from engine.mapping.functions.errors import LimitExceeded, MappingError
from engine.mapping.limits import MAX_CHARS, MAX_FORMAT_CHARS, LimitError, quote
from engine.mapping.syntax import ExpressionSyntaxError

GUARD_S = 120
"""Far beyond what any case needs when bounded; only a hang reaches it."""
MEMORY_BYTES = 2 << 30

_PRELUDE = f"""
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_BYTES}, {MEMORY_BYTES}))
from common.errors import ConfigError
from engine.mapping.expression_mapping import parse_expression_mapping
from engine.mapping.functions.errors import MappingError

def outcome(call):
    try:
        value = call()
    except (ConfigError, MappingError) as exc:
        return {{"error": type(exc).__name__, "message": str(exc)}}
    except MemoryError:
        return {{"error": "MemoryError", "message": ""}}
    return {{"value": value if isinstance(value, (str, int, bool)) or value is None else repr(value)[:200]}}
"""


def guarded(code: str) -> dict[str, Any]:
    """Run `code` (which sets `result`) in a child interpreter; a hang fails the test after `GUARD_S`."""
    script = _PRELUDE + textwrap.dedent(code) + "\nprint(json.dumps(result))\n"
    try:
        done = subprocess.run(
            [sys.executable, "-"], input=script, capture_output=True, text=True, timeout=GUARD_S, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the evaluation was still running after {GUARD_S} s: it is not bounded")
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def validate(expression: str) -> dict[str, Any]:
    """`roster validate` on one mapping, in a child interpreter."""
    return guarded(
        f"""
        result = outcome(lambda: parse_expression_mapping(
            "jobs[0].mappings[2]", target="x", expression={expression!r}).evaluate({{}}))
        """
    )


def evaluate(expression: str, attributes: dict[str, Any]) -> dict[str, Any]:
    """One object mapped by one mapping, in a child interpreter."""
    return guarded(
        f"""
        mapping = parse_expression_mapping("jobs[0].mappings[2]", target="x", expression={expression!r})
        result = outcome(lambda: mapping.evaluate({attributes!r}))
        """
    )


# --- regular expressions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "constant"), [("(a+)+$", "a" * 5000 + "b"), ("(a|aa)+$", "a" * 40 + "b")]
)
def test_a_regex_that_backtracks_without_end_on_a_constant_is_a_config_error_naming_the_mapping(
    pattern: str, constant: str
) -> None:
    outcome = validate(f'Replace("{constant}", , "{pattern}", , "x", , )')
    assert outcome["error"] == "ConfigError", outcome
    assert outcome["message"].startswith("jobs[0].mappings[2].expression: Replace: the regular expression")
    assert "took more than 0.25 s" in outcome["message"] and outcome["message"].endswith("at column 1")


def test_a_regex_that_backtracks_without_end_on_one_object_fails_that_object() -> None:
    expression = 'Replace([name], , "(a|aa)+$", , "x", , )'
    outcome = evaluate(expression, {"name": "a" * 40 + "b"})
    assert outcome["error"] == "LimitExceeded"
    assert outcome["message"].startswith("x: Replace at column 1: the regular expression '(a|aa)+$' took")
    assert evaluate(expression, {"name": "aaa"}) == {"value": "x"}


def test_the_regex_of_a_scoping_clause_is_bounded_too() -> None:
    outcome = guarded(
        """
        from engine.mapping.dotnet import compile_regex
        from engine.mapping.limits import LimitError
        try:
            result = {"value": repr(compile_regex("(a|aa)+$").search("a" * 40 + "b"))}
        except LimitError as exc:
            result = {"error": "LimitError", "message": str(exc)}
        """
    )
    assert outcome["error"] == "LimitError"


@pytest.mark.parametrize(
    ("pattern", "replacement"),
    [
        ("[^0-9+]", ""),
        ("(\\w+)@(\\w+)", "$2 at $1"),
        ("a*", "-"),
        ("(?<x>[aeiou])", "<${x}>"),
        ("(ab)+", "$1"),
    ],
)
def test_long_and_short_texts_give_the_same_replacements_as_re(pattern: str, replacement: str) -> None:
    """Texts past the fast path's length run in the `regex` package: the results must not change."""
    expression = parse_expression(f'Replace([v], , "{pattern}", , "{replacement}", , )')
    for size in (10, 999, 1000, 1001, 3000):
        text = ("ab@cd +1 (555) 010 aeiou-" * (size // 25 + 1))[:size]
        want = re.sub(pattern.replace("(?<", "(?P<"), _python_template(replacement), text)
        assert expression.evaluate({"v": text}) == want, size


def _python_template(replacement: str) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\d+)", lambda m: f"\\g<{m[1] or m[2]}>", replacement)


def test_a_pattern_only_the_regex_package_reads_still_works() -> None:
    assert parse_expression('Replace([v], , "\\p{Lu}", , "_", , )').evaluate({"v": "aBcÉ"}) == "a_c_"


# --- sizes --------------------------------------------------------------------------------------------


def _nested_templates(levels: int, source: str) -> str:
    expression = source
    for _ in range(levels):
        expression = f'Replace({expression}, "x", , , , , "xxxxxxxxxx")'
    return expression


def test_nested_replace_templates_on_a_constant_are_refused_at_validate_not_grown_to_gigabytes() -> None:
    outcome = validate(_nested_templates(10, '"xxxxxxxxxx"'))
    assert outcome["error"] == "ConfigError"
    assert outcome["message"].startswith("jobs[0].mappings[2].expression: Replace: the result would be")
    assert f"more than {MAX_CHARS:,}" in outcome["message"]


def test_nested_replace_templates_fail_the_object_not_the_process() -> None:
    outcome = evaluate(_nested_templates(10, "[v]"), {"v": "xxxxxxxxxx"})
    assert outcome["error"] == "LimitExceeded"
    assert "Replace at column" in outcome["message"] and f"more than {MAX_CHARS:,}" in outcome["message"]
    assert evaluate(_nested_templates(2, "[v]"), {"v": "x"}) == {"value": "x" * 100}


def test_plain_replace_and_regex_replace_cannot_multiply_a_value_past_the_bound() -> None:
    value = "a" * 20_000
    for expression in (
        'Replace([v], "a", , , "' + "b" * 62 + '", , )',
        'Replace([v], , "a", , "' + "b" * 600 + '", , )',
        'Replace([v], , "", , "' + "b" * 600 + '", , )',
    ):
        with pytest.raises(LimitExceeded, match="Replace at column 1: the result would"):
            parse_expression(expression).evaluate({"v": value})


def test_a_long_separator_between_many_values_is_refused_before_it_is_joined() -> None:
    with pytest.raises(LimitExceeded, match=r"Join at column 1: the result would be 2,00\d,\d{3} characters"):
        parse_expression("Join([sep], [values])").evaluate({"sep": "-" * 1000, "values": ["v"] * 2000})


def test_functions_that_multiply_their_input_are_bounded_at_each_step() -> None:
    expression = "[v]"
    for _ in range(20):
        expression = f"ConvertToUTF8Hex({expression})"
    with pytest.raises(LimitExceeded, match="ConvertToUTF8Hex at column"):
        parse_expression(expression).evaluate({"v": "é" * 10})


def test_a_split_into_too_many_values_is_refused() -> None:
    with pytest.raises(LimitExceeded, match="Split at column 1: the result would hold more than 100,000"):
        parse_expression('Split([v], ",")').evaluate({"v": ",".join(["a"] * 200_000)})
    with pytest.raises(LimitExceeded, match="Split at column 1: the result would hold 200,000 values"):
        parse_expression('Split([v], ",")').evaluate({"v": [",".join(["a"] * 50_000)] * 4})


# --- dates and numbers ------------------------------------------------------------------------------


def test_a_huge_date_format_is_refused_at_validate_naming_the_function() -> None:
    outcome = validate('FormatDateTime("2020-01-02", , "yyyy-MM-dd", "' + "yyyy" * 50_000 + '")')
    assert outcome["error"] == "ConfigError", outcome
    assert outcome["error"] == "ConfigError"
    message = outcome["message"]
    assert message.startswith("jobs[0].mappings[2].expression: FormatDateTime: the date format is 200,000")
    assert f"more than {MAX_FORMAT_CHARS}" in message and len(message) < 400


def test_a_huge_input_format_fails_the_object() -> None:
    with pytest.raises(LimitExceeded, match="FormatDateTime at column 1: the date format is 400 characters"):
        parse_expression('FormatDateTime([d], , [f], "yyyy")').evaluate({"d": "2020", "f": "dddd" * 100})


def test_dateadd_with_a_huge_number_is_a_config_error_on_a_constant_and_a_clear_error_per_object() -> None:
    with pytest.raises(ConfigError, match=r"mappings\[1\]\.expression: DateAdd: adding .* outside the years"):
        parse_expression_mapping("mappings[1]", target="x", expression='DateAdd("d", 1e300, "2020-01-01")')
    mapping = parse_expression_mapping("mappings[1]", target="x", expression='DateAdd("yyyy", [n], [d])')
    for n in ("1e300", "100000", "-3000", 10**30):
        with pytest.raises(MappingError) as caught:
            mapping.evaluate({"n": n, "d": "2020-01-01"})
        assert "outside the years 1 to 9999" in str(caught.value)
        assert "Python int" not in str(caught.value) and len(str(caught.value)) < 400


def test_datefromnum_past_the_year_9999_says_so() -> None:
    with pytest.raises(MappingError, match="is a date after the year 9999"):
        parse_expression("DateFromNum([n])").evaluate({"n": str(2**62)})


@pytest.mark.parametrize("text", ["1" * 100_000, "inf", "-Infinity", "nan", "1e400"])
def test_a_number_in_text_is_range_checked(text: str) -> None:
    with pytest.raises(MappingError) as caught:
        parse_expression("Left([v], [n])").evaluate({"v": "abc", "n": text})
    assert "NumChars must be a whole number" in str(caught.value)
    assert len(str(caught.value)) < 400


# --- how much of a value an error quotes -----------------------------------------------------------

MEGA = "x" * 1_000_000


@pytest.mark.parametrize(
    ("expression", "attributes"),
    [
        ("CBool([v])", {"v": MEGA}),
        ("CDate([v])", {"v": MEGA}),
        ("BitAnd([v], 1)", {"v": MEGA}),
        ('DateAdd([v], 1, "2020-01-01")', {"v": MEGA}),
        ('FormatDateTime([v], , "yyyy", "yyyy")', {"v": MEGA}),
        ('FormatDateTime([v], , "yyyy-MM-dd", "yyyy")', {"v": "2020-" + MEGA}),
        ('DateDiff("d", [v], "2020-01-01")', {"v": ["a"] * 100_000}),
        ("Mid([v], [v], 1)", {"v": MEGA}),
    ],
)
def test_an_evaluation_error_quotes_at_most_about_100_characters(expression: str, attributes: Any) -> None:
    with pytest.raises(MappingError) as caught:
        parse_expression(expression).evaluate(attributes)
    assert len(str(caught.value)) < 400, str(caught.value)[:500]


@pytest.mark.parametrize(
    "expression",
    [
        MEGA,
        f"{MEGA}(1)",
        f'DateAdd("{MEGA}", 1, "2020-01-01")',
        f'Replace([a], , "(?<x>a)", "{MEGA}", "", , )',
        f'Join(" ", [a]) {MEGA}',
        f'Join(" ", [a]) "{MEGA}"',
        f'FormatDateTime("2020-01-01", , "yyyy-MM-dd", "{"y" * 1000}")',
    ],
)
def test_a_syntax_error_quotes_at_most_about_100_characters(expression: str) -> None:
    with pytest.raises(ExpressionSyntaxError) as caught:
        parse_expression(expression)
    assert len(str(caught.value)) < 400, str(caught.value)[:500]


def test_quote_cuts_long_values_and_says_how_long_they_were() -> None:
    assert quote("abc") == "'abc'"
    assert quote("a" * 1000) == repr("a" * 100) + "... (1,000 characters)"
    assert quote(list(range(50))).endswith("(50 values)")
    assert len(quote({"k": "v" * 1000})) < 150


def test_limit_errors_are_value_errors_for_the_callers_that_catch_those() -> None:
    with pytest.raises(LimitError):
        compile_regex("(a|aa)+$").finditer("a" * 40 + "b")
    assert issubclass(LimitError, ValueError)
