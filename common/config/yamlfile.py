"""Loads a YAML settings file with `${ENV_VAR}` substitution.

Substitution happens on the parsed values, not the text, so a variable's value can never change the
structure of the file; a variable that is not set is an error naming it, unless it has a default
(`${NAME:-default}`). Values are never echoed in errors: they may be secrets.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from common.config.problems import Parts
from common.config.validation import join
from common.errors import ConfigError

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def load_yaml(path: Path, *, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The file's top-level mapping with every `${VAR}` replaced from `environ` (os.environ)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read the file: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(where, f"not valid YAML: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), "the file must hold a mapping at the top level (jobs:, targets:)")
    parts = Parts()  # when collecting, every variable that is not set, not only the first
    substituted: dict[str, Any] = substitute(data, "", os.environ if environ is None else environ, parts)
    parts.done()
    return substituted


def substitute(value: Any, path: str, environ: Mapping[str, str], parts: Parts | None = None) -> Any:
    parts = parts or Parts()
    if isinstance(value, str):
        return parts(lambda: _VARIABLE.sub(lambda m: _lookup(m, path, environ), value))
    if isinstance(value, dict):
        return {k: substitute(v, join(path, k), environ, parts) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, join(path, i), environ, parts) for i, v in enumerate(value)]
    return value


def _lookup(match: re.Match[str], path: str, environ: Mapping[str, str]) -> str:
    name, default = match.group(1), match.group(2)
    if name in environ:
        return environ[name]
    if default is not None:
        return default
    raise ConfigError(
        path, f"environment variable {name} is not set", f"export {name}=... or write ${{{name}:-default}}"
    )
