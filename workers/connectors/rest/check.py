"""What `roster validate` finds wrong in a REST target without a connection: a template placeholder
that names an attribute no job sends (a URL that could never be filled, a body leaf never sent: most
often a typo), or an object type the jobs send that the target does not describe."""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from common.config.validation import join
from common.errors import ConfigError
from workers.connectors.rest.settings import SECTIONS, RestSettings
from workers.connectors.rest.templates import SPECIAL


def rest_template_problems(
    path: str, settings: RestSettings, sent: Mapping[str, Mapping[str, str]]
) -> list[ConfigError]:
    """Each placeholder, per object type the jobs send, that names an attribute none of them sends."""
    problems = []
    for kind, section in SECTIONS.items():
        attributes = sent.get(kind)
        spec = settings.of(kind)
        if attributes is None:
            continue
        if spec is None:
            problems.append(ConfigError(join(path, section), f"is missing: jobs send {kind}s to this target"))
            continue
        for name, call in spec.calls().items():
            for placeholder in call.names:
                if placeholder in SPECIAL or placeholder in attributes:
                    continue
                close = difflib.get_close_matches(placeholder, list(attributes), n=1)
                fix = f"did you mean {{{close[0]}}}?" if close else "map that attribute, or take it out"
                where = join(join(path, section), name)
                problems.append(ConfigError(where, f"{{{placeholder}}} names an attribute no job sends", fix))
    return problems
