"""`roster logs --redact`: what a redacted log record still says, and what it no longer does."""

from __future__ import annotations

from engine.cli.logs import redact


def test_redact_hides_attribute_values_and_their_quotes_but_keeps_ids_and_codes() -> None:
    record = {
        "id": 7,
        "job": "people",
        "source_id": "E00001",
        "target_id": "u-1",
        "action": "create",
        "status": "failed",
        "error_class": "PermanentError",
        "error_code": "uniqueness",
        "error_message": "userName 'ann.lee@example.org' is taken by Ann Lee",
        "attributes": {"userName": "ann.lee@example.org", "name": {"formatted": "Ann Lee"}, "x": "1"},
        "steps": {"export": "failed uniqueness: userName 'ann.lee@example.org' is taken"},
    }
    hidden = redact(record)
    assert hidden["attributes"] == {"userName": "***", "name": "***", "x": "***"}
    assert hidden["error_message"] == "userName '***' is taken by ***"
    assert hidden["steps"]["export"] == "failed uniqueness: userName '***' is taken"
    kept = ("id", "job", "source_id", "target_id", "action", "status", "error_class", "error_code")
    assert {k: hidden[k] for k in kept} == {k: record[k] for k in kept}
    assert record["attributes"]["userName"] == "ann.lee@example.org"  # the original is left alone


def test_redact_leaves_a_record_without_attributes_as_it_is() -> None:
    record = {"id": 1, "attributes": None, "error_message": "gone", "steps": {"export": "done"}}
    assert redact(record) == record
