"""Accessibility checks of a page in the browser: axe-core (the copy that PyPI's axe-playwright-python
bundles) run at a desktop and at a phone width. Violations of impact serious or critical are the
failures; the others are kept so a test can print them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from axe_playwright_python.sync_playwright import Axe  # type: ignore[import-untyped]
from playwright.sync_api import Page, ViewportSize

DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
FAILING = ("serious", "critical")
# WCAG 2.2 A and AA, and axe's best practices (landmarks, headings, regions).
OPTIONS = {
    "resultTypes": ["violations"],
    "runOnly": {
        "type": "tag",
        "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"],
    },
}


@dataclass(frozen=True, slots=True)
class Violation:
    page: str
    width: int
    rule: str
    impact: str
    help: str
    targets: tuple[str, ...]

    def __str__(self) -> str:
        where = ", ".join(self.targets)
        return f"{self.page} at {self.width} px: {self.rule} ({self.impact}) {self.help}: {where}"


@dataclass
class Accessibility:
    """Every page checked so far and what axe found on it."""

    axe: Axe = field(default_factory=Axe)
    checked: list[str] = field(default_factory=list)
    found: list[Violation] = field(default_factory=list)

    def check(self, page: Page, name: str) -> list[Violation]:
        """axe run on `page` as it is now, at each width (the viewport put back after); the serious
        and critical violations found."""
        before = page.viewport_size or DESKTOP
        found: list[Violation] = []
        try:
            for size in (DESKTOP, PHONE):
                page.set_viewport_size(size)
                results = self.axe.run(page, options=OPTIONS).response
                found += [
                    Violation(
                        page=name,
                        width=size["width"],
                        rule=v["id"],
                        impact=v.get("impact") or "none",
                        help=v["help"],
                        targets=tuple(str(node["target"]) for node in v["nodes"]),
                    )
                    for v in results["violations"]
                ]
        finally:
            page.set_viewport_size({"width": before["width"], "height": before["height"]})
        self.checked.append(name)
        self.found += found
        return [v for v in found if v.impact in FAILING]

    def minor(self) -> list[Violation]:
        return [v for v in self.found if v.impact not in FAILING]
