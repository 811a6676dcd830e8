"""Secrets in a settings file: given inline (write `${ENV_VAR}`, so the value lives in the
environment) or in a file whose first line is the secret; never shorter than `MIN_TOKEN_CHARS` and
never a placeholder."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from common.config.validation import join, string
from common.errors import ConfigError
from common.process.exposure import MIN_TOKEN_CHARS, WEAK_TOKENS


def secret(path: str, item: Mapping[str, Any], key: str, base_dir: Path) -> str:
    """The secret given as `key` or in the file `key`_file (one of them), long enough and no placeholder."""
    file_key = f"{key}_file"
    if (key in item) == (file_key in item):
        raise ConfigError(
            path, f"needs {key} or {file_key} (one of them)", f"{key}: ${{ENV_VAR}}, or {file_key}: PATH"
        )
    if key in item:
        found = string(join(path, key), item[key]).strip()
    else:
        found = read_secret_file(join(path, file_key), item[file_key], base_dir)
    if found.lower() in WEAK_TOKENS or len(found) < MIN_TOKEN_CHARS:
        raise ConfigError(
            join(path, key),
            f"is a placeholder or shorter than {MIN_TOKEN_CHARS} characters",
            "set a long random one (openssl rand -hex 32)",
        )
    return found


def read_secret_file(path: str, raw: Any, base_dir: Path) -> str:
    """The first line of the file named at `path` (relative to `base_dir`)."""
    file = settings_file(path, raw, base_dir)
    try:
        token = file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(path, f"cannot read {file}: {exc.strerror}") from None
    if not token:
        raise ConfigError(path, f"{file} is empty", "put the token on its first line")
    return token


def settings_file(path: str, raw: Any, base_dir: Path) -> Path:
    """The file named at `path`, relative to `base_dir` (the settings file's folder) unless absolute."""
    file = Path(string(path, raw)).expanduser()
    return file if file.is_absolute() else base_dir / file
