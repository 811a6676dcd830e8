"""Reference attributes resolved to target ids (engine.core.references), on plain values."""

from __future__ import annotations

import pytest

from common.errors import ConfigError
from engine.config import parse_engine_config
from engine.core.membership import PENDING_PREFIX
from engine.core.references import ReferenceMapping, References
from engine.mapping.base import Mapper
from engine.model import SourceObject

MANAGER = ReferenceMapping(target="manager", source="manager_id", job="people")
REPORTS = ReferenceMapping(target="reports", source="report_ids", job="people")


def mapped(references: References, **attributes: object) -> tuple[dict[str, object], str, int]:
    result = Mapper([MANAGER, REPORTS]).map(attributes)
    pending = references.apply(result)
    return result.attributes, result.hash, pending


def test_source_ids_become_target_ids_single_and_many() -> None:
    references = References([MANAGER, REPORTS])
    batch = [SourceObject("E2", {"manager_id": "E1", "report_ids": ["E3", "E4"]})]
    assert references.wanted(batch) == {"people": {"E1", "E3", "E4"}}
    references.resolve("people", {"E1": "uid=ada", "E3": "uid=cy", "E4": "uid=di"})

    attributes, digest, pending = mapped(references, manager_id="E1", report_ids=["E3", "E4"])

    assert attributes == {"manager": "uid=ada", "reports": ["uid=cy", "uid=di"]}
    assert pending == 0 and not digest.startswith(PENDING_PREFIX)


def test_a_reference_not_provisioned_yet_is_sent_empty_and_the_object_is_not_taken_as_applied() -> None:
    references = References([MANAGER, REPORTS])
    references.resolve("people", {"E3": "uid=cy"})

    attributes, digest, pending = mapped(references, manager_id="E1", report_ids=["E3", "E9"])

    assert attributes == {"manager": None, "reports": ["uid=cy"]}
    assert pending == 2 and digest.startswith(PENDING_PREFIX)


def test_a_moved_target_id_changes_the_hash_of_who_points_at_it() -> None:
    references = References([MANAGER])
    references.resolve("people", {"E1": "uid=ada,ou=a"})
    before = Mapper([MANAGER]).map({"manager_id": "E1"})
    references.apply(before)
    references.resolve("people", {"E1": "uid=ada,ou=b"})
    after = Mapper([MANAGER]).map({"manager_id": "E1"})
    references.apply(after)

    assert before.hash != after.hash


def test_a_reference_to_a_job_of_another_target_is_refused_with_the_fix(tmp_path: object) -> None:
    raw = {
        "jobs": [
            {
                "name": "people",
                "source": {"path": "p.csv", "id_column": "id"},
                "target": "app",
                "mappings": [{"target": "manager", "reference": {"source": "manager", "job": "staff"}}],
            },
            {
                "name": "staff",
                "source": {"path": "s.csv", "id_column": "id"},
                "target": "other",
                "mappings": [{"target": "name", "source": "name"}],
            },
        ]
    }
    with pytest.raises(
        ConfigError, match=r"jobs\[0\]\.mappings\[0\]\.reference\.job: 'staff' provisions target 'other'"
    ):
        parse_engine_config(raw, base_dir=tmp_path)  # type: ignore[arg-type]
