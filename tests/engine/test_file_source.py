"""The file source reads CSV and JSON Lines exports row by row, reporting bad rows and going on."""

from __future__ import annotations

import csv
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from common.errors import ConfigError, SourceError
from engine.model import SourceObject
from engine.sources.base import MAX_PROBLEMS
from engine.sources.file import FileSource, FileSourceSettings, parse_file_source

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def csv_source(path: Path, id_column: str = "id", **options: Any) -> FileSource:
    return FileSource(FileSourceSettings(type="csv", path=path, id_column=id_column, **options))


def jsonl_source(path: Path, id_column: str = "id") -> FileSource:
    return FileSource(FileSourceSettings(type="jsonl", path=path, id_column=id_column))


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


async def read_all(source: FileSource, size: int = 100) -> list[SourceObject]:
    return [obj async for batch in source.batches(size) for obj in batch]


def problems(source: FileSource) -> list[str]:
    return [str(problem) for problem in source.problems]


# CSV


async def test_csv_rows_are_read_with_their_values_and_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path / "people.csv",
        "id,given_name,family_name,title,note\n"
        'E1,José,Núñez,"Director, Sales",\n'
        'E2,Zoë,O\'Brien,Engineer,"two\nlines, with ""quotes"""\n'
        "E3,Łukasz,Ångström-Müller,,plain\n",
    )
    objects = await read_all(csv_source(path))

    assert [(obj.source_id, obj.line) for obj in objects] == [("E1", 2), ("E2", 3), ("E3", 5)]
    assert objects[0].attributes == {
        "id": "E1",
        "given_name": "José",
        "family_name": "Núñez",
        "title": "Director, Sales",
        "note": None,
    }
    assert objects[1].attributes["family_name"] == "O'Brien"
    assert objects[1].attributes["note"] == 'two\nlines, with "quotes"'
    assert objects[2].attributes["family_name"] == "Ångström-Müller"
    assert objects[2].attributes["title"] is None


async def test_csv_empty_fields_stay_empty_strings_when_asked(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", "id,title\nE1,\n")
    objects = await read_all(csv_source(path, empty_as_null=False))
    assert objects[0].attributes == {"id": "E1", "title": ""}


async def test_csv_with_an_excel_bom_and_crlf_lines_reads_the_first_column_by_name(tmp_path: Path) -> None:
    path = write(tmp_path / "excel.csv", "\ufeffid;name\r\nE1;Françoise\r\nE2;D'Angelo\r\n")
    objects = await read_all(csv_source(path, delimiter=";"))
    assert [obj.attributes for obj in objects] == [
        {"id": "E1", "name": "Françoise"},
        {"id": "E2", "name": "D'Angelo"},
    ]


async def test_csv_in_another_encoding_is_read_with_that_encoding(tmp_path: Path) -> None:
    path = write(tmp_path / "latin.csv", "id,name\nE1,Renée\n", encoding="cp1252")
    objects = await read_all(csv_source(path, encoding="cp1252"))
    assert objects[0].attributes["name"] == "Renée"


async def test_csv_row_with_the_wrong_number_of_fields_is_reported_and_the_read_goes_on(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "p.csv", "id,name,mail\nE1,Ana,a@x\nE2,Bob\nE3,Cy,c@x,extra\n\nE4,Di,d@x\n")
    source = csv_source(path)
    objects = await read_all(source)

    assert [obj.source_id for obj in objects] == ["E1", "E4"]
    assert [obj.line for obj in objects] == [2, 6]
    assert problems(source) == [
        "line 3: has 2 fields, the header has 3; row skipped",
        "line 4: has 4 fields, the header has 3; row skipped",
    ]


async def test_csv_problem_lines_count_the_lines_inside_quoted_fields(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", 'id,note\nE1,"a\nb\nc"\nE2\nE3,ok\n')
    source = csv_source(path)
    objects = await read_all(source)
    assert [(obj.source_id, obj.line) for obj in objects] == [("E1", 2), ("E3", 6)]
    assert [problem.line for problem in source.problems] == [5]


async def test_csv_row_without_an_id_is_reported_and_skipped(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", "name,id\nAna,E1\nBob,\nCy,  \nDi,E4\n")
    source = csv_source(path)
    objects = await read_all(source)
    assert [obj.source_id for obj in objects] == ["E1", "E4"]
    assert problems(source) == [
        "line 3: has no id: 'id' is empty; row skipped",
        "line 4: has no id: 'id' is empty; row skipped",
    ]


async def test_csv_duplicate_id_keeps_the_first_and_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", "id,name\nE1,Ana\nE2,Bob\nE1,Ana again\nE3,Cy\n")
    source = csv_source(path)
    objects = await read_all(source)
    assert [(obj.source_id, obj.attributes["name"]) for obj in objects] == [
        ("E1", "Ana"),
        ("E2", "Bob"),
        ("E3", "Cy"),
    ]
    assert problems(source) == ["line 4: repeats the id 'E1' of line 2; the repeat is skipped"]


async def test_every_repeated_id_counts_once_and_names_the_line_it_came_first_on(tmp_path: Path) -> None:
    # The ids seen are kept without their lines: a second read finds where the repeated ones came first.
    count = MAX_PROBLEMS + 49
    firsts = [f"E{i},n" for i in range(1, count + 1)]
    repeats = [f"E{i},again" for i in range(1, count + 1)]
    path = write(
        tmp_path / "p.csv", "\n".join(["id,name", 'E0,"two\nlines"', *firsts, *repeats, "E0,last"]) + "\n"
    )
    source = csv_source(path)
    objects = await read_all(source)
    assert [obj.source_id for obj in objects] == [f"E{i}" for i in range(count + 1)]
    assert (source.skipped, source.problem_count, len(source.problems)) == (
        count + 1,
        count + 1,
        MAX_PROBLEMS,
    )
    first_repeat = count + 4  # after the header, E0's two lines and the first E1 to E<count>
    assert [(p.line, p.message) for p in (source.problems[0], source.problems[-1])] == [
        (first_repeat, "repeats the id 'E1' of line 4; the repeat is skipped"),
        (
            first_repeat + MAX_PROBLEMS - 1,
            f"repeats the id 'E{MAX_PROBLEMS}' of line {MAX_PROBLEMS + 3}; the repeat is skipped",
        ),
    ]


async def test_csv_row_with_undecodable_bytes_is_reported_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes(b"id,name\nE1,Ana\nE2,Ren\xe9e\nE3,Zo\xc3\xab\n")
    source = csv_source(path)
    objects = await read_all(source)
    assert [(obj.source_id, obj.attributes["name"]) for obj in objects] == [("E1", "Ana"), ("E3", "Zoë")]
    assert problems(source) == ["line 3: has bytes that are not utf-8-sig; row skipped"]


async def test_csv_undecodable_byte_inside_a_quoted_field_names_the_record_start(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes(b'id,note\nE1,"first\nsecond \xff"\nE2,ok\n')
    source = csv_source(path)
    objects = await read_all(source)
    assert [obj.source_id for obj in objects] == ["E2"]
    assert problems(source) == ["line 2: has bytes that are not utf-8-sig; row skipped"]


async def test_csv_bad_bytes_and_a_torn_end_are_found_on_their_lines_in_a_file_of_many_blocks(
    tmp_path: Path,
) -> None:
    """The file is read in blocks of lines (`_Lines`): a bad byte deep in the file, one in a quoted
    field that spans the lines where one block ends, and a torn last row each name their own line."""
    rows = [b"id,note\n"] + [b"E%d,%s\n" % (i, b"x" * 60) for i in range(1, 5001)]
    rows[2500] = b"E2500,Ren\xe9e\n"  # line 2501
    rows[3000] = b'E3000,"first\n' + b"y" * 70_000 + b' \xff"\n'  # lines 3001-3002, across blocks
    rows.append(b"E5001")  # line 5003: one of the header's two fields, no newline
    path = tmp_path / "p.csv"
    path.write_bytes(b"".join(rows))
    source = csv_source(path)
    ids = [obj.source_id for obj in await read_all(source, size=1000)]
    assert ids == [f"E{i}" for i in range(1, 5001) if i not in (2500, 3000)]
    assert problems(source) == [
        "line 2501: has bytes that are not utf-8-sig; row skipped",
        "line 3001: has bytes that are not utf-8-sig; row skipped",
        "line 5003: ends the file in the middle of a row (1 of the header's 2 fields, no newline): "
        "the file looks cut off; row skipped",
    ]


async def test_csv_in_utf16_with_tabs_as_excel_saves_unicode_text_is_read(tmp_path: Path) -> None:
    path = write(tmp_path / "p.txt", "id\tname\r\nE1\tŁukasz\r\n", encoding="utf-16")
    objects = await read_all(csv_source(path, encoding="utf-16", delimiter="\t"))
    assert [obj.attributes for obj in objects] == [{"id": "E1", "name": "Łukasz"}]


async def test_csv_badly_quoted_records_are_reported_and_the_read_goes_on(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", 'id,name\nE1,"Ana"x\nE2,Bob\nE3,"Cy\nE4,Di\n')
    source = csv_source(path)
    objects = await read_all(source)
    assert [obj.source_id for obj in objects] == ["E2"]
    assert problems(source) == [
        "line 2: cannot be parsed as CSV (',' expected after '\"'); skipped up to line 2",
        "line 4: opens a quoted field still open at the end of the file (line 5): the file looks"
        " cut off, or a closing quote is missing; skipped to the end",
    ]


async def test_every_skipped_csv_row_counts_as_skipped_and_blank_lines_do_not(tmp_path: Path) -> None:
    long = "x" * (csv.field_size_limit() + 1)
    path = write(tmp_path / "p.csv", f'id,name\nE1,Ana\n\nE2,"Bo"x\nE3,{long}\n,NoId\nE1,Again\nE4\nE5,Ed\n')
    source = csv_source(path)
    assert [obj.source_id for obj in await read_all(source)] == ["E1", "E5"]
    assert source.skipped == source.problem_count == 5


async def test_csv_last_row_without_a_newline_is_read_when_whole_and_torn_when_short(tmp_path: Path) -> None:
    whole = csv_source(write(tmp_path / "whole.csv", "id,name,mail\nE1,Ana,a@x\nE2,Bo,b@x"))
    assert [obj.attributes for obj in await read_all(whole)][-1] == {"id": "E2", "name": "Bo", "mail": "b@x"}
    assert whole.skipped == 0

    torn = csv_source(write(tmp_path / "torn.csv", "id,name,mail\r\nE1,Ana,a@x\r\nE2,Bo"))
    assert [obj.source_id for obj in await read_all(torn)] == ["E1"]
    assert torn.skipped == 1
    assert problems(torn) == [
        "line 3: ends the file in the middle of a row (2 of the header's 3 fields, no newline): the file "
        "looks cut off; row skipped"
    ]

    short = csv_source(write(tmp_path / "short.csv", "id,name,mail\nE1,Ana\nE2,Bo,b@x\n"))
    assert [obj.source_id for obj in await read_all(short)] == ["E2"]
    assert problems(short) == ["line 2: has 2 fields, the header has 3; row skipped"]  # not at the end


async def test_csv_quote_left_open_at_the_end_is_torn_with_or_without_a_newline(tmp_path: Path) -> None:
    for name, tail in (("bare.csv", 'E2,"Bo'), ("newline.csv", 'E2,"Bo\n')):
        source = csv_source(write(tmp_path / name, f"id,name\nE1,Ana\n{tail}"))
        assert [obj.source_id for obj in await read_all(source)] == ["E1"]
        assert source.skipped == 1
        assert "still open at the end of the file" in problems(source)[0]


async def test_csv_id_with_a_control_character_is_skipped_naming_it(tmp_path: Path) -> None:
    source = csv_source(write(tmp_path / "p.csv", "id,name\nE\x001,Ana\nE2,Bo\n"))
    assert [obj.source_id for obj in await read_all(source)] == ["E2"]
    assert problems(source) == [
        "line 2: has an id that holds a control character (U+0000 NUL) at character 2; row skipped"
    ]


async def test_missing_file_raises_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.csv"
    with pytest.raises(SourceError, match=r"nowhere\.csv: no such file \(check the source's `path:`"):
        await read_all(csv_source(path))


async def test_header_without_the_id_column_raises_listing_the_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", "Employee ID,Name,Mail\nE1,Ana,a@x\n")
    with pytest.raises(SourceError) as caught:
        await read_all(csv_source(path, id_column="employee id"))
    message = str(caught.value)
    assert str(path) in message
    assert "has no column 'employee id'; its columns are 'Employee ID', 'Name', 'Mail'" in message
    assert "did you mean 'Employee ID'?" in message


async def test_header_read_as_one_column_points_at_the_delimiter(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", "id;name\nE1;Ana\n")
    with pytest.raises(SourceError, match=r"read as one column, so check `delimiter:`"):
        await read_all(csv_source(path))


async def test_empty_file_and_repeated_header_names_raise(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="the file is empty"):
        await read_all(csv_source(write(tmp_path / "empty.csv", "")))
    with pytest.raises(SourceError, match="names 'mail' more than once"):
        await read_all(csv_source(write(tmp_path / "twice.csv", "id,mail,mail\nE1,a,b\n")))


async def test_batches_hold_at_most_size_objects(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", "id\n" + "".join(f"E{n}\n" for n in range(25)))
    sizes = [len(batch) async for batch in csv_source(path).batches(10)]
    assert sizes == [10, 10, 5]


async def test_problems_are_capped_and_the_rest_counted(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", "id,name\n" + "E1\n" * (MAX_PROBLEMS + 5) + "E2,Bo\n")
    source = csv_source(path)
    objects = await read_all(source, size=1000)
    assert [obj.source_id for obj in objects] == ["E2"]
    assert len(source.problems) == MAX_PROBLEMS
    assert source.problems_omitted == 5
    assert source.problem_count == MAX_PROBLEMS + 5


async def test_reading_again_starts_with_no_problems(tmp_path: Path) -> None:
    source = csv_source(write(tmp_path / "p.csv", "id\nE1\nE1\n"))
    await read_all(source)
    await read_all(source)
    assert len(source.problems) == 1


async def test_a_large_file_streams_in_flat_memory(tmp_path: Path) -> None:
    # Wide rows make the file large while the id index (which does grow with the rows) stays small;
    # tracemalloc slows every allocation, so 20,000 rows keep this test near one second.
    rows, notes = 20_000, "x" * 2_400
    path = tmp_path / "wide.csv"
    with path.open("w", encoding="utf-8") as file:
        file.write("id,name,notes\n")
        file.writelines(f"P{n:06d},Zoë O'Brien,{notes}\n" for n in range(rows))
    file_size = path.stat().st_size
    source = csv_source(path)

    count = 0
    tracemalloc.start()
    try:
        async for batch in source.batches(500):
            count += len(batch)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert count == rows
    assert source.problems == []
    assert peak < file_size / 5, f"peak {peak:,} bytes for a file of {file_size:,} bytes"


# JSON Lines


async def test_jsonl_objects_are_read_with_their_values(tmp_path: Path) -> None:
    path = write(
        tmp_path / "p.jsonl",
        '{"id": "E1", "name": "José Nuñez", "groups": ["a", "b"], "manager": null}\n'
        "\n"
        '{"id": 42, "name": "D\'Angelo, Zoë"}\n',
    )
    objects = await read_all(jsonl_source(path))
    assert [(obj.source_id, obj.line) for obj in objects] == [("E1", 1), ("42", 3)]
    assert objects[0].attributes == {"id": "E1", "name": "José Nuñez", "groups": ["a", "b"], "manager": None}
    assert objects[1].attributes["name"] == "D'Angelo, Zoë"


async def test_jsonl_bad_lines_are_reported_and_the_read_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(
        b'{"id": "E1"}\n'
        b'{"id": "E2",\n'
        b'["E3"]\n'
        b'{"name": "no id"}\n'
        b'{"id": ""}\n'
        b'{"id": true}\n'
        b'{"id": "E1"}\n'
        b'{"id": "E8", "name": "Ren\xe9e"}\n'
        b'{"id": "E9"}\n'
    )
    source = jsonl_source(path)
    objects = await read_all(source)

    assert [obj.source_id for obj in objects] == ["E1", "E9"]
    lines = {problem.line: problem.message for problem in source.problems}
    assert sorted(lines) == [2, 3, 4, 5, 6, 7, 8]
    assert lines[2].startswith("is not valid JSON (")
    assert lines[3] == "is JSON an array, not an object; line skipped"
    assert lines[4] == "has no id: no key 'id' (its keys are 'name'); line skipped"
    assert lines[5] == "has no id: 'id' is empty; line skipped"
    assert lines[6] == "has no id: 'id' is a boolean, not a string or a whole number; line skipped"
    assert lines[7] == "repeats the id 'E1' of line 1; the repeat is skipped"
    assert lines[8] == "has bytes that are not utf-8-sig; line skipped"


async def test_jsonl_every_skipped_line_counts_and_a_torn_last_line_says_the_file_looks_cut_off(
    tmp_path: Path,
) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"id": "E1"}\n\n{"id": "E2", "n\n{"id": "E3"}\n{"id": "E4", "name": "Ad')
    source = jsonl_source(path)
    assert [obj.source_id for obj in await read_all(source)] == ["E1", "E3"]
    assert source.skipped == 2
    lines = {problem.line: problem.message for problem in source.problems}
    assert lines[3].startswith("is not valid JSON (")
    assert lines[5].startswith("ends the file in the middle of a row (no newline, not valid JSON: ")
    assert lines[5].endswith("the file looks cut off; row skipped")

    whole = tmp_path / "whole.jsonl"
    whole.write_bytes(b'{"id": "E1"}\n{"id": "E2"}')  # a whole last line needs no newline
    source = jsonl_source(whole)
    assert [obj.source_id for obj in await read_all(source)] == ["E1", "E2"] and source.skipped == 0


async def test_jsonl_lone_surrogate_escape_is_read_for_the_mapping_to_refuse_but_not_in_an_id(
    tmp_path: Path,
) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"id": "E1", "name": "A\\ud800"}\n{"id": "E\\udc002"}\n{"id": "E3", "n": NaN}\n')
    source = jsonl_source(path)
    objects = await read_all(source)
    assert [(obj.source_id, obj.attributes["name"]) for obj in objects] == [("E1", "A\ud800")]
    assert problems(source)[0] == (
        "line 2: has an id that holds a lone surrogate (U+DC00) at character 2, which is not valid "
        "Unicode text; line skipped"
    )
    assert problems(source)[1].startswith("line 3: is not valid JSON (")  # only surrogates are let in


async def test_jsonl_batches_hold_at_most_size_objects(tmp_path: Path) -> None:
    path = write(tmp_path / "p.jsonl", "".join(f'{{"id": "E{n}"}}\n' for n in range(7)))
    assert [len(batch) async for batch in jsonl_source(path).batches(3)] == [3, 3, 1]


async def test_missing_jsonl_file_raises_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"gone\.jsonl: no such file"):
        await read_all(jsonl_source(tmp_path / "gone.jsonl"))


# The example export


async def test_example_people_csv_reads_whole_with_no_problems() -> None:
    path = EXAMPLES / "people.csv"
    source = csv_source(path, id_column="employee_id")
    objects = await read_all(source, size=1000)

    assert source.problems == []
    assert len(objects) == 5_000
    values = [value for obj in objects for value in obj.attributes.values()]
    assert any(value is None for value in values)
    text = " ".join(value for value in values if value)
    assert any(letter in text for letter in "éëüñŁÅ")
    assert "'" in text
    assert any("," in value for value in values if value)
    assert all(obj.attributes["email"].isascii() for obj in objects)
    emails = [obj.attributes["email"] for obj in objects]
    assert len(set(emails)) == len(emails)
    with path.open(encoding="utf-8", newline="") as file:
        assert next(csv.reader(file))[0] == "employee_id"


# Settings


def test_settings_are_parsed_with_defaults_and_the_path_resolved(tmp_path: Path) -> None:
    settings = parse_file_source(
        "jobs[0].source",
        {"type": "csv", "path": "data/people.csv", "id_column": "employee_id"},
        base_dir=tmp_path,
    )
    assert settings == FileSourceSettings(
        type="csv",
        path=tmp_path / "data" / "people.csv",
        id_column="employee_id",
        encoding="utf-8-sig",
        delimiter=",",
        empty_as_null=True,
    )


def test_settings_tell_the_type_from_the_file_name(tmp_path: Path) -> None:
    settings = parse_file_source("s", {"path": "people.ndjson", "id_column": "id"}, base_dir=tmp_path)
    assert settings.type == "jsonl"


@pytest.mark.parametrize(
    ("raw", "path", "problem"),
    [
        ({"type": "csv", "path": "p.csv"}, "jobs[0].source.id_column", "is required"),
        ({"type": "csv", "path": "p.csv", "id_colum": "id"}, "jobs[0].source.id_colum", "unknown key"),
        ({"type": "xml", "path": "p.xml", "id_column": "id"}, "jobs[0].source.type", "'xml' is not one of"),
        ({"path": "p.txt", "id_column": "id"}, "jobs[0].source.type", "is required"),
        (
            {"type": "csv", "path": "", "id_column": "id"},
            "jobs[0].source.path",
            "expected a non-empty string",
        ),
        (
            {"type": "csv", "path": "p", "id_column": "id", "delimiter": ";;"},
            "jobs[0].source.delimiter",
            "one",
        ),
        (
            {"type": "csv", "path": "p", "id_column": "id", "encoding": "utf-9"},
            "jobs[0].source.encoding",
            "unknown",
        ),
        (
            {"type": "csv", "path": "p", "id_column": "id", "empty_as_null": "no"},
            "jobs[0].source.empty_as_null",
            "",
        ),
        (
            {"type": "jsonl", "path": "p", "id_column": "id", "delimiter": ";"},
            "jobs[0].source.delimiter",
            "CSV",
        ),
    ],
)
def test_setting_errors_name_the_path(raw: dict[str, Any], path: str, problem: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_file_source("jobs[0].source", raw, base_dir=tmp_path)
    assert caught.value.path == path
    assert problem in caught.value.problem
    assert str(caught.value).startswith(f"{path}: ")


def test_unknown_key_suggests_the_closest_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_file_source(
            "jobs[0].source", {"path": "p.csv", "id_column": "id", "delimeter": ";"}, base_dir=tmp_path
        )
    assert caught.value.fix == "did you mean 'delimiter'?"
