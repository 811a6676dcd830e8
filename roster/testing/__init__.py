"""The connector conformance kit: checks that a connector keeps Roster's contract against a real target.

An author gives the target's YAML, a `Probe` that reads the target on its own, and a `Profile` that
describes it; the kit drives the connector through `apply()` and reads every outcome back through the
probe. Run it with pytest (`pytest_plugins = ["roster.testing.plugin"]` and a subclass of
`roster.testing.plugin.ConnectorConformance`), from Python (`run_conformance`), or from the command
line (`roster connector-check FILE TARGET --yes`). See docs/conformance.md.
"""

from __future__ import annotations

from roster.testing.conformance import (
    TARGET_CHECKS,
    TYPE_CHECKS,
    CheckResult,
    Report,
    check_names,
    run_check,
    run_conformance,
)
from roster.testing.probe import ListingProbe, Planter, Probe, Setter
from roster.testing.profile import Profile, Refusal, Sample

__all__ = [
    "TARGET_CHECKS",
    "TYPE_CHECKS",
    "CheckResult",
    "ListingProbe",
    "Planter",
    "Probe",
    "Profile",
    "Refusal",
    "Report",
    "Sample",
    "Setter",
    "check_names",
    "run_check",
    "run_conformance",
]
