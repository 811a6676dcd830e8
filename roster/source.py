"""The source API: what a source type implements, and what Roster gives it to do so.

A source reads the objects of one system (an HR database, a directory, a file) in batches, for one
job (see docs/connectors.md for the whole contract). A package offers one by an entry point in the
`roster.sources` group naming a `SourcePlugin`:

    [project.entry-points."roster.sources"]
    hr = "hr_source:PLUGIN"

Everything a source needs is imported from here; the names below are the published interface of
`API_VERSION`, and the rest of Roster's modules are internal.
"""

from __future__ import annotations

from common.config.validation import (
    as_list,
    as_mapping,
    boolean,
    check_keys,
    choice,
    integer,
    join,
    number,
    positive,
    string,
)
from common.errors import ConfigError, SourceError
from common.plugins import API_VERSION
from engine.model import SourceObject, SourceProblem
from engine.sources.base import MAX_PROBLEMS, ProblemLog, Source
from engine.sources.plugin import SourcePlugin

__all__ = [
    "API_VERSION",
    "MAX_PROBLEMS",
    "ConfigError",
    "ProblemLog",
    "Source",
    "SourceError",
    "SourceObject",
    "SourcePlugin",
    "SourceProblem",
    "as_list",
    "as_mapping",
    "boolean",
    "check_keys",
    "choice",
    "integer",
    "join",
    "number",
    "positive",
    "string",
]
