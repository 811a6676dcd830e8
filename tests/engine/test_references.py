"""Reference attributes resolved to target ids (engine.core.references), on plain values."""

from __future__ import annotations

import pytest

from common.errors import ConfigError
from engine.config import parse_engine_config
from engine.core.membership import PENDING_PREFIX
from engine.core.planner import Planner
from engine.core.references import ReferenceMapping, References, map_object
from engine.mapping.base import Mapper
from engine.model import ACTIVE, SourceObject, StateEntry

MANAGER = ReferenceMapping(target="manager", source="manager_id", job="people")
REPORTS = ReferenceMapping(target="reports", source="report_ids", job="people")


def mapped(references: References, **attributes: object) -> tuple[dict[str, object], str, int]:
    result = map_object(Mapper([MANAGER, REPORTS]), attributes, references)
    return result.attributes, result.hash, result.pending


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


def _planned(moved: dict[str, set[str]] | None) -> list[str | None]:
    """E2 and E3 as applied last (E2 reports to E1, E3 to nobody), planned again with `moved`."""
    mapper = Mapper([MANAGER])
    references = References([MANAGER])
    sources = [SourceObject("E2", {"manager_id": "E1"}), SourceObject("E3", {"manager_id": ""})]
    snapshot = {
        obj.source_id: StateEntry(f"uid={obj.source_id}", mapper.map(obj.attributes).hash, ACTIVE)
        for obj in sources
    }
    planner = Planner(
        job="people",
        target="ldap",
        object_type="user",
        cycle_id="c",
        mapper=mapper,
        snapshot=snapshot,
        references=references,
        moved=moved,
    )
    to_plan, _ = planner.prepare(sources)
    references.resolve("people", {"E1": "uid=chief,ou=b"})
    ops = [planner.plan(obj) for obj in to_plan]
    return [f"{op.source_id}:{op.action}:{op.attributes['manager']}" if op else None for op in ops]


def test_an_unchanged_object_is_not_resolved_nor_sent() -> None:
    assert _planned(None) == [] and _planned({"people": {"E9"}}) == []


def test_an_object_whose_reference_moved_is_updated_with_the_new_target_id() -> None:
    # E1 was renamed (or deleted): E2, whose source did not change, is sent the DN E1 has now
    assert _planned({"people": {"E1"}}) == ["E2:update:uid=chief,ou=b"]


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
