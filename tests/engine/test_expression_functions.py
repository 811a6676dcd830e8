"""Each expression function gives the documented results of the cloud product, with null and list inputs."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.mapping.expression import parse_expression
from engine.mapping.expression_mapping import parse_expression_mapping
from engine.mapping.functions.errors import MappingError
from engine.mapping.functions.registry import FUNCTIONS
from engine.mapping.functions.unique import UniqueCandidates
from engine.mapping.functions.values import OMIT

EXAMPLES = yaml.safe_load((Path(__file__).parent / "fixtures" / "cloud_examples.yaml").read_text("utf-8"))


def ev(text: str, **attributes: Any) -> Any:
    return parse_expression(text).evaluate(attributes)


@pytest.mark.parametrize(
    "example",
    EXAMPLES["examples"],
    ids=[f"{i}-{e['function']}" for i, e in enumerate(EXAMPLES["examples"])],
)
def test_each_documented_example_gives_the_documented_result(example: dict[str, Any]) -> None:
    unique = "unique" in example
    mapping = parse_expression_mapping(
        "examples", target="out", expression=example["expression"], apply_on="create" if unique else "always"
    )
    value = mapping.evaluate(example["input"])
    if unique:
        assert value == UniqueCandidates(tuple(example["unique"]))
    elif example.get("omitted"):
        assert value is OMIT
    else:
        assert value == example["output"]
        assert type(value) is type(example["output"])


def test_the_documented_examples_cover_every_function_but_the_clock_and_chance() -> None:
    covered = {e["function"] for e in EXAMPLES["examples"]}
    tested_here = {"Count", "Guid", "IsString", "Mid", "Not", "Now", "NumFromDate", "RandomString"}
    tested_here |= {"SingleAppRoleAssignment", "StripSpaces", "ToUpper", "Len", "AppRoleAssignmentsComplex"}
    assert set(FUNCTIONS) - covered <= tested_here


README = Path(__file__).parents[2] / "README.md"


def test_the_readme_lists_exactly_the_functions_of_the_registry() -> None:
    text = README.read_text("utf-8")
    found = re.search(r"\*\*Expression functions\*\* \((\d+)\): (.*?)\.\s", text, re.DOTALL)
    assert found, "README.md has no **Expression functions** (N): list"
    listed = re.findall(r"`(\w+)`", found[2])
    assert sorted(listed) == sorted(FUNCTIONS)
    assert int(found[1]) == len(listed) == len(FUNCTIONS)
    assert f"{len(FUNCTIONS)} functions)" in text  # the count in the overview agrees


def test_len_counts_the_characters_of_each_value_and_keeps_null_null() -> None:
    assert ev("Len([v])", v="John") == 4
    assert ev("Len([v])", v="") == 0
    assert ev("Len([v])") is None
    assert ev("Len([v])", v=["ab", None, "Zoë"]) == [2, 3]
    assert ev("Len(CStr(12345))") == 5
    assert ev("IIF(Len([v]) > 3, Left([v], 3), [v])", v="Johnson") == "Joh"


def test_app_role_assignments_complex_gives_every_role_as_a_scim_role() -> None:
    roles = [{"displayName": "Admin", "value": "admin", "id": "1"}, {"id": "2"}, "Reader"]
    assert ev("AppRoleAssignmentsComplex([appRoleAssignments])", appRoleAssignments=roles) == [
        {"primary": False, "type": "WindowsAzureActiveDirectoryRole", "display": "Admin", "value": "admin"},
        {"primary": False, "type": "WindowsAzureActiveDirectoryRole", "display": "2", "value": "2"},
        {"primary": False, "type": "WindowsAzureActiveDirectoryRole", "display": "Reader", "value": "Reader"},
    ]
    assert ev("AppRoleAssignmentsComplex([appRoleAssignments])", appRoleAssignments=[]) is None
    assert ev("AppRoleAssignmentsComplex([appRoleAssignments])") is None


def test_append_keeps_null_null_and_appends_to_each_value() -> None:
    assert ev('Append([upn], ".test")') is None
    assert ev("Append([upn], [suffix])", upn="a") == "a"
    assert ev('Append([mails], "!")', mails=["a", None, "b"]) == ["a!", "b!"]


def test_bitand_reads_numbers_in_text_and_keeps_null_null() -> None:
    assert ev("BitAnd([uac], 2)", uac="514") == 2
    assert ev("BitAnd([uac], 2)", uac="512") == 0
    assert ev("BitAnd([uac], 2)") is None
    with pytest.raises(MappingError, match="whole number"):
        ev("BitAnd([uac], 2)", uac="lots")


def test_cbool_is_true_for_non_zero_and_true_text() -> None:
    assert [ev("CBool([v])", v=v) for v in ("1", "0", "True", "false", "", None, 2.5)] == [
        True, False, True, False, False, False, True,
    ]  # fmt: skip
    with pytest.raises(MappingError, match="True or False"):
        ev("CBool([v])", v="maybe")


def test_cdate_keeps_null_null_and_refuses_what_is_no_date() -> None:
    assert ev("CDate([d])") is None
    assert ev("CDate([d])", d="20150123105347.1Z") == "1/23/2015 10:53:47 AM"
    assert ev("CDate([d])", d="8/25/2021 5:41:18 PM") == "8/25/2021 5:41:18 PM"
    with pytest.raises(MappingError, match="not a date"):
        ev("CDate([d])", d="next tuesday")


def test_coalesce_skips_null_and_empty_lists_but_not_empty_text() -> None:
    assert ev('Coalesce([a], [b], "default")', b=[]) == "default"
    assert ev('Coalesce([a], [b], "default")', a="", b="x") == ""
    assert ev("Coalesce([a], [b])") is None
    assert ev("Coalesce([a], [b])", b=["x", "y"]) == ["x", "y"]


def test_base64_and_utf8_hex_convert_each_value() -> None:
    assert ev("ConvertToBase64([v])", v=["A", "B"]) == ["QQA=", "QgA="]
    assert ev("ConvertToUTF8Hex([v])", v="é") == "C3A9"
    assert ev("ConvertToBase64([v])") is None


def test_count_counts_values_of_a_multi_valued_attribute() -> None:
    assert ev("Count([proxyAddresses])", proxyAddresses=["a", "b", "c"]) == 3
    assert ev("Count([proxyAddresses])", proxyAddresses="a") == 1
    assert ev("Count([proxyAddresses])") == 0


def test_cstr_prints_numbers_and_booleans_like_dotnet() -> None:
    assert ev("CStr(42)") == "42"
    assert ev("CStr(1.5)") == "1.5"
    assert ev("CStr(CBool(1))") == "True"
    assert ev("CStr([n])", n=[1, 2]) == ["1", "2"]
    assert ev("CStr([n])") is None


def test_dateadd_keeps_month_ends_and_null_dates() -> None:
    assert ev('DateAdd("m", 1, CDate("2021-01-31"))') == "2/28/2021 12:00:00 AM"
    assert ev('DateAdd("n", 90, CDate("2021-01-31T23:00:00Z"))') == "2/1/2021 12:30:00 AM"
    assert ev('DateAdd("d", 1, CDate([hire]))') is None
    with pytest.raises(MappingError, match="interval must be one of"):
        ev('DateAdd([unit], 1, "2021-01-01")', unit="fortnight")


def test_datediff_counts_calendar_weeks_from_sunday() -> None:
    assert ev('DateDiff("ww", "2024-06-15", "2024-06-16")') == 1  # Saturday to Sunday
    assert ev('DateDiff("d", "2024-06-15", "2024-06-16")') == 1
    assert ev('DateDiff("d", [a], "2024-06-16")') is None


def test_datefromnum_and_numfromdate_convert_active_directory_times_both_ways() -> None:
    assert ev("NumFromDate(DateFromNum(129699324000000000))") == 129699324000000000
    assert ev('NumFromDate("2012-01-01T23:00:00Z")') == 129699324000000000
    assert ev("DateFromNum([accountExpires])", accountExpires="0") is None  # "never"
    assert ev("DateFromNum([accountExpires])", accountExpires=str(0x7FFFFFFFFFFFFFFF)) is None
    workday = (
        'NumFromDate(Join("", FormatDateTime([ContractEndDate], ,"yyyy-MM-ddzzz", "yyyy-MM-dd"), '
        '" 23:59:59-08:00"))'
    )
    end = datetime(2021, 1, 1, 7, 59, 59, tzinfo=UTC)
    filetime = (end - datetime(1601, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 10
    assert ev(workday, ContractEndDate="2020-12-31-08:00") == filetime


def test_formatdatetime_reads_and_writes_dotnet_formats() -> None:
    fmt = 'FormatDateTime([endDate], ,"M/d/yyyy hh:mm:ss tt","yyyy-MM-dd HH:mm")'
    assert ev(fmt, endDate="12/31/2020 11:30:00 PM") == "2020-12-31 23:30"
    assert ev('FormatDateTime([d], "yyyyMMdd", "dd MMM yyyy")', d="20240704") == "04 Jul 2024"
    assert ev(fmt) is None
    assert ev('FormatDateTime(CDate("2024-07-04T10:00:00Z"), , , "yyyy-MM-ddTHH:mm:ssK")') == (
        "2024-07-04T10:00:00Z"
    )
    with pytest.raises(MappingError, match="does not match the input format"):
        ev(fmt, endDate="yesterday")


def test_guid_is_new_at_every_evaluation_and_volatile() -> None:
    expression = parse_expression("Guid()")
    first, second = expression.evaluate({}), expression.evaluate({})
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", first)
    assert first != second and expression.volatile


def test_ignoreflow_drops_null_empty_and_empty_lists_only() -> None:
    assert ev("IgnoreFlowIfNullOrEmpty([d])", d="") is OMIT
    assert ev("IgnoreFlowIfNullOrEmpty([d])", d=[]) is OMIT
    assert ev("IgnoreFlowIfNullOrEmpty([d])", d="0") == "0"
    assert ev('Join(",", IgnoreFlowIfNullOrEmpty([d]), "x")') is OMIT  # nested: the whole attribute


def test_iif_evaluates_only_the_branch_it_takes_and_fails_on_null() -> None:
    assert ev('IIF([n] > 5, "big", Mid("x", 0, 1))', n="10") == "big"  # the failing branch is not run
    assert ev('IIF([country] = "", "Other", [country])') is None  # a null side makes the check fail
    assert ev('IIF([n] >= 10, "yes", "no")', n="9") == "no"  # numbers compare as numbers
    assert ev('IIF([a] <> [b], "differ", "same")', a="x", b="y") == "differ"


def test_instr_is_one_based_and_can_ignore_case() -> None:
    assert ev('InStr("repEated", "e", 3, vbTextCompare)') == 4
    assert ev('InStr([s], "x")') == 0
    assert ev('InStr("abc", "z")') == 0
    with pytest.raises(MappingError, match="start must be 1 or more"):
        ev('InStr("abc", "a", [start])', start="0")


def test_isnull_isnullorempty_ispresent_and_isstring() -> None:
    assert ev("IsNull([a])", a="") is False
    assert ev("IsNull([a])", a=[]) is True
    assert ev("IsNullOrEmpty([a])", a=[]) is True
    assert ev("IsPresent([a])", a="") is False
    assert ev("IsString([a])", a="x") is True
    assert ev("IsString(BitAnd(1, 1))") is False


def test_item_is_one_based_and_null_past_the_end() -> None:
    assert ev("Item([p], 2)", p=["a", "b"]) == "b"
    assert ev("Item([p], 3)", p=["a", "b"]) is None
    assert ev("Item([p], 1)", p="only") == "only"
    assert ev("Item([p], 1)") is None
    with pytest.raises(MappingError, match="index starts at 1"):
        ev("Item([p], [i])", p=["a"], i=0)


def test_join_flattens_multi_valued_attributes_and_skips_nulls() -> None:
    assert ev('Join(";", [groups], [extra])', groups=["a", None, "b"], extra="c") == "a;b;c"
    assert ev('Join(" ", [a], [b])') is None
    assert ev('Join("", 1000, [id])', id="42") == "100042"


def test_left_and_mid_follow_the_documented_edge_cases() -> None:
    assert ev("Left([s], 0)", s="John") == ""
    assert ev("Left([s], -1)", s="John") == "John"
    assert ev("Left([s], 10)", s="John") == "John"
    assert ev("Left([s], 2)") == ""  # a null string gives an empty one
    assert ev("Left([s], 1)", s=["Ann", "Bob"]) == ["A", "B"]
    assert ev("Mid([s], 2, 100)", s="John") == "ohn"
    assert ev("Mid([s], 9, 2)", s="John") == ""
    with pytest.raises(MappingError, match="start is 1-based"):
        ev("Mid([s], 0, 2)", s="John")


def test_normalizediacritics_follows_the_documented_table() -> None:
    source = "äÅąĂǟ æǢ çČ ď ëĖ ğ ïİı ł Ñň öŐ øŒ̄ ř ß šȘ ť üŮ ÿÝ źŽ"
    expected = "aAaAa aeAE cC d eE g iIi l Nn oO oeOE r ss sS t uU yY zZ"
    assert ev("NormalizeDiacritics([s])", s=source) == expected
    assert ev("NormalizeDiacritics([s])", s=["José", "Łukasz"]) == ["Jose", "Lukasz"]
    assert ev("NormalizeDiacritics([s])", s="山田") == "山田"
    assert ev("NormalizeDiacritics([s])") is None


def test_not_flips_true_and_gives_true_for_anything_else() -> None:
    assert [ev("Not([v])", v=v) for v in ("True", "true", "False", None, True)] == [
        False,
        False,
        True,
        True,
        False,
    ]


def test_now_is_the_current_utc_time_in_the_products_format() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    value = datetime.strptime(ev("Now()"), "%m/%d/%Y %I:%M:%S %p").replace(tzinfo=UTC)
    assert before <= value <= datetime.now(UTC)
    assert parse_expression("Now()").volatile
    assert not parse_expression('DateDiff("d", Now(), CDate([hire]))').volatile  # changes once a day
    assert parse_expression('DateDiff("s", Now(), CDate([hire]))').volatile


def test_pcase_without_separators_keeps_apostrophes_inside_words() -> None:
    assert ev("PCase([s])", s="o'BRIEN-smith jr.") == "O'brien-Smith Jr."
    assert ev("PCase([s])", s=["ANN LEE", "bo"]) == ["Ann Lee", "Bo"]
    assert ev("PCase([s])") is None


def test_randomstring_meets_its_minimums_and_avoids_characters() -> None:
    value = ev('RandomString(10, 2, 2, 2, 1, "?,")')
    assert len(value) == 10 and not set(value) & set("?,")
    assert sum(c.isdigit() for c in value) >= 2 and sum(c.isupper() for c in value) >= 2
    assert sum(c.islower() for c in value) >= 1 and sum(not c.isalnum() for c in value) >= 2
    six = ev("RandomString(6,3,0,0,3)")  # the documented "1a73qt": three digits, three lower case
    assert sum(c.isdigit() for c in six) == 3 and sum(c.islower() for c in six) == 3
    with pytest.raises(MappingError, match="more than Length"):
        ev("RandomString([n], 3, 3, 3, 3)", n="4")


def test_redact_passes_the_value_and_marks_the_expression() -> None:
    expression = parse_expression("Redact([password])")
    assert expression.evaluate({"password": "s3cret"}) == "s3cret"
    assert expression.redacted and not parse_expression("[password]").redacted


def test_removeduplicates_keeps_the_first_of_each_in_order() -> None:
    assert ev("RemoveDuplicates([p])", p=["b", "a", "b"]) == ["b", "a"]
    assert ev("RemoveDuplicates([p])", p="a") == "a"
    assert ev("RemoveDuplicates([p])") is None


def test_replace_applies_to_each_value_and_keeps_null_null() -> None:
    assert ev('Replace([m], "@old.com", , , "@new.com", , )', m=["a@old.com", "b@x.com"]) == [
        "a@new.com",
        "b@x.com",
    ]
    assert ev('Replace([m], "@old.com", , , "@new.com", , )') is None
    assert ev('Replace([m], , "(\\d+)", , "<$1>", , )', m="a12b3") == "a<12>b<3>"
    assert ev('Replace([m], , [pattern], , "", , )', m="a1b2", pattern="\\d") == "ab"  # a pattern per object


def test_selectuniquevalue_gives_distinct_candidates_in_order() -> None:
    value = ev('SelectUniqueValue([a], Join("", [a]), Append([a], "1"), [missing])', a="jdoe")
    assert value == UniqueCandidates(("jdoe", "jdoe1"))
    assert value.wire() == {"$unique": ["jdoe", "jdoe1"]}
    with pytest.raises(MappingError, match="every rule gave an empty value"):
        ev("SelectUniqueValue([a], [b])")


def test_singleapproleassignment_gives_the_one_role() -> None:
    assert ev("SingleAppRoleAssignment([roles])", roles=[{"displayName": "Admin", "id": "1"}]) == "Admin"
    assert ev("SingleAppRoleAssignment([roles])", roles=["User"]) == "User"
    assert ev("SingleAppRoleAssignment([roles])", roles=[]) is None


def test_split_trims_values_and_keeps_null_null() -> None:
    assert ev('Split([s], ";")', s="a; b;;c ") == ["a", "b", "c"]
    assert ev('Split([s], ",")', s=["a,b", "c"]) == ["a", "b", "c"]
    assert ev('Split([s], ",")') is None


def test_stripspaces_removes_spaces_only() -> None:
    assert ev("StripSpaces([s])", s=" Mary Ann\tLee ") == "MaryAnn\tLee"
    assert ev("StripSpaces([s])", s=["a b", "c"]) == ["ab", "c"]
    assert ev("StripSpaces([s])") is None


def test_switch_is_case_sensitive_and_lazy_and_defaults_to_null() -> None:
    assert ev('Switch([s], "default", "a", "A")', s="A") == "default"
    assert ev('Switch([s], , "a", "A")', s="b") is None
    assert ev('Switch([s], "d", "1", "one", "1", "first-one-wins")', s="1") == "one"
    assert ev('Switch([s], "d", "x", Mid("x", 0, 1))', s="y") == "d"  # the failing value is not run
    assert ev('Switch([s], "d", [k], "matched")', s="v", k="v") == "matched"  # keys known per object
    with pytest.raises(MappingError, match="expected one value"):
        ev('Switch([s], "d", "a", "A")', s=["a", "b"])


def test_tolower_and_toupper_apply_turkish_rules_only_when_asked() -> None:
    assert ev('ToUpper("istanbul")') == "ISTANBUL"
    assert ev('ToUpper("istanbul", "tr-TR")') == "İSTANBUL"
    assert ev('ToLower("ISTANBUL", "tr-TR")') == "\u0131stanbul"  # a dotless i
    assert ev("ToLower([s])", s=["A", "B"]) == ["a", "b"]
    assert ev("ToUpper([s])") is None


def test_word_follows_the_documented_edge_cases() -> None:
    assert ev('Word([s], 0, " ")', s="a b") == ""
    assert ev('Word([s], 3, " ")', s="a b") == ""
    assert ev('Word([s], 1, " ")') == ""
    assert ev('Word([s], 2, " ,")', s="Doe,  John") == "John"
    assert ev('Word([s], 1, ",")', s=["a,b", "c"]) == ["a", "c"]
