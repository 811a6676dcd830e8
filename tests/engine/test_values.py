"""Values no target may get (C0 controls but tab, newline and return; lone surrogates) are refused per
object, naming the attribute and the position, wherever in a list or object they sit."""

from __future__ import annotations

import pytest

from engine.core.values import RefusedValue, check_values, flaw
from engine.mapping.base import ConstantMapping, DirectMapping, Mapper, attribute_hash
from engine.mapping.functions.errors import MappingError


def test_printable_text_tab_newline_and_return_pass() -> None:
    for text in ("", "Zoë Nuñez, Jr.", "a\tb", "line\r\nline", "back\\u0000slash", "\x7f", "日本"):
        assert flaw(text) is None, repr(text)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("ab\x00c", "a control character (U+0000 NUL) at character 3"),
        ("\x1b[31m", "a control character (U+001B) at character 1"),
        ("a\x0bb", "a control character (U+000B) at character 2"),
        ("é\x0c", "a control character (U+000C) at character 2"),
        ("x\ud800", "a lone surrogate (U+D800) at character 2, which is not valid Unicode text"),
        ("\udfff", "a lone surrogate (U+DFFF) at character 1"),
    ],
)
def test_a_control_character_or_a_lone_surrogate_is_named_with_its_position(text: str, words: str) -> None:
    found = flaw(text)
    assert found is not None and found.startswith(words)


def test_the_refusal_names_the_attribute_and_the_place_inside_lists_and_objects() -> None:
    check_values({"a": "ok", "n": 3, "l": ["x", {"y": "z"}], "none": None})
    for attributes, where in (
        ({"displayName": "A\x00"}, "displayName"),
        ({"emails": [{"value": "ok"}, {"value": "b\x1b"}]}, "emails[1].value"),
        ({"tags": ("a", "b\ud800")}, "tags[1]"),
        ({"extra": {"k\x00": "v"}}, "extra (a key)"),
    ):
        with pytest.raises(RefusedValue) as caught:
            check_values(attributes)
        assert str(caught.value).startswith(f"{where}: holds ")
        assert "the object is not sent" in str(caught.value)
        assert isinstance(caught.value, MappingError)  # the cycle fails this object, not itself


def test_the_mapper_refuses_a_value_before_hashing_and_hashes_clean_ones_as_before() -> None:
    mapper = Mapper(
        [DirectMapping(target="name", source="n"), ConstantMapping(target="c", value="x", apply_on="create")]
    )
    assert mapper.map({"n": "Ana\\u00"}).hash == attribute_hash({"name": "Ana\\u00"})
    for value, words in (
        ("A\x00na", "name: holds a control character (U+0000 NUL) at character 2"),
        ("Ana\ud800", "name: holds a lone surrogate (U+D800) at character 4"),
        (["a", "b\x08"], "name[1]: holds a control character (U+0008) at character 2"),
    ):
        with pytest.raises(RefusedValue) as caught:
            mapper.map({"n": value})
        assert str(caught.value).startswith(words)
    create_only = Mapper([ConstantMapping(target="pw", value="p\x00w", apply_on="create")])
    with pytest.raises(RefusedValue) as caught:
        create_only.map({})
    assert str(caught.value).startswith("pw: holds a control character (U+0000 NUL) at character 2")
