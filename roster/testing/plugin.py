"""The conformance kit as a pytest plugin: `pytest_plugins = ["roster.testing.plugin"]`, then a test class
that subclasses `ConnectorConformance` and gives three fixtures, `target_yaml` (one target's YAML, text
or mapping), `probe` and `profile`. Each check becomes a test item of its own
(`test_conformance[user/crud:create]`); a check the profile or probe cannot support is skipped with the
reason. Registering the plugin adds the `conformance` marker (`pytest -m conformance`) that every such
item carries. Needs pytest-asyncio.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pytest

from roster.testing.conformance import check_names, run_check
from roster.testing.probe import Probe
from roster.testing.profile import Profile


class ConnectorConformance:
    """Subclass it as `TestMyConnector(ConnectorConformance)` and define the fixtures `target_yaml`,
    `probe` and `profile`. `object_types` narrows the checks collected; `not_applicable` maps a check's
    name to the reason it does not apply to this target (it is then not collected: a suite that must run
    everything, where a skip is a failure, says why here instead); `expected_failures` maps a check's
    name to the reason it is known to fail (the test is then a strict xfail: it fails once it passes)."""

    object_types: ClassVar[tuple[str, ...]] = ("user", "group")
    not_applicable: ClassVar[Mapping[str, str]] = {}
    expected_failures: ClassVar[Mapping[str, str]] = {}

    @pytest.mark.asyncio
    async def test_conformance(
        self, conformance_check: str, target_yaml: Any, probe: Probe, profile: Profile
    ) -> None:
        result = await run_check(conformance_check, target_yaml, probe, profile)
        if result.status == "not run":
            pytest.skip(f"{conformance_check}: {result.detail}")
        if result.status == "failed":
            pytest.fail(f"{conformance_check}: {result.detail}", pytrace=False)

    @classmethod
    def pytest_generate_tests(cls, metafunc: pytest.Metafunc) -> None:
        """One test item per check (pytest calls a test class's own `pytest_generate_tests`)."""
        if "conformance_check" not in metafunc.fixturenames:
            return
        params = []
        for name in check_names(cls.object_types):
            if name in cls.not_applicable:
                continue
            reason = cls.expected_failures.get(name)
            marks = [pytest.mark.conformance]
            if reason:
                marks.append(pytest.mark.xfail(reason=reason, strict=True))
            params.append(pytest.param(name, id=name, marks=marks))
        metafunc.parametrize("conformance_check", params)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "conformance: a check of the connector conformance kit")
