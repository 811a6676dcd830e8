"""`roster new-connector NAME`: a ready package for a new connector type, made from `templates/connector`.

The package holds a working connector for a small REST service (find, create, update only what changed,
disable, delete, errors classed transient or permanent), an in-memory stand-in of that service, the
entry point that makes it `type: NAME`, and a test that runs the conformance kit against the stand-in:
its author installs it, sees its tests pass, then changes it to speak to the real application.
`examples/badge-connector` is this package for NAME `badge`, and a test keeps it so.
"""

from __future__ import annotations

import re
from pathlib import Path
from string import Template

TEMPLATES = Path(__file__).parent / "templates" / "connector"
PACKAGE_FOLDER = "__package__"
NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")


def placeholders(name: str) -> dict[str, str]:
    """The values a template's `${...}` take for the connector type `name`."""
    return {
        "name": name,
        "Name": "".join(part.capitalize() for part in name.split("_")),
        "NAME": name.upper(),
        "package": f"{name}_connector",
        "distribution": f"roster-{name.replace('_', '-')}-connector",
    }


def default_folder(name: str) -> str:
    return placeholders(name)["distribution"]


def render(name: str) -> dict[Path, str]:
    """Every file of the package for `name`, by its path inside the package's folder."""
    if not NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} cannot name a connector type: use lower-case letters, digits and _, starting with a "
            "letter, at most 40 characters (it becomes `type: NAME` and the module NAME_connector)"
        )
    values = placeholders(name)
    files = {}
    for template in sorted(TEMPLATES.rglob("*.tmpl")):
        relative = template.relative_to(TEMPLATES).with_suffix("")
        parts = [values["package"] if part == PACKAGE_FOLDER else part for part in relative.parts]
        files[Path(*parts)] = Template(template.read_text(encoding="utf-8")).substitute(values)
    return files


def write_package(name: str, folder: Path) -> list[Path]:
    """Write the package for `name` into `folder`, which must not exist yet (nothing is overwritten)."""
    files = render(name)
    folder.mkdir(parents=True, exist_ok=False)
    written = []
    for relative, text in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
