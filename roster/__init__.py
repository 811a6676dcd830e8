"""Roster's public API, for the authors of connectors and sources that live outside this package.

`roster.connector` (what a connector implements and what it may use), `roster.source` (the same for a
source) and `roster.testing` (the conformance kit). What these modules export is the published
interface; everything else in Roster's packages is internal and may change without notice.
`API_VERSION` is that interface's version: a plugin states the version it was written for, and Roster
refuses one written for a version it does not speak, by name, rather than failing later.
"""

from __future__ import annotations

from common.plugins import API_VERSION

__all__ = ["API_VERSION"]
