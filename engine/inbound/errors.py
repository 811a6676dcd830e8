"""`ScimProblem`: a request the inbound service refuses, in the error shape of RFC 7644 §3.12."""

from __future__ import annotations

from typing import Any, Final, Literal, get_args

from common.errors import RosterError

ERROR_SCHEMA: Final = "urn:ietf:params:scim:api:messages:2.0:Error"

ScimType = Literal[
    "invalidFilter",
    "tooMany",
    "uniqueness",
    "mutability",
    "invalidSyntax",
    "invalidPath",
    "noTarget",
    "invalidValue",
    "invalidVers",
    "sensitive",
]
SCIM_TYPES: Final[frozenset[str]] = frozenset(get_args(ScimType))


class ScimProblem(RosterError):
    """A client's request cannot be done; `body()` is what the service answers, so a pushing identity
    provider shows our reason in its own logs."""

    def __init__(self, status: int, scim_type: ScimType | None, detail: str) -> None:
        if not 400 <= status <= 599:
            raise ValueError(f"a SCIM error has a 4xx or 5xx status, not {status}")
        if scim_type is not None and scim_type not in SCIM_TYPES:
            raise ValueError(f"unknown scimType {scim_type!r}")
        super().__init__(detail)
        self.status = status
        self.scim_type = scim_type
        self.detail = detail

    def body(self) -> dict[str, Any]:
        """The error response; `status` is a string, as RFC 7644 §3.12 writes it."""
        body: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(self.status)}
        if self.scim_type is not None:
            body["scimType"] = self.scim_type
        body["detail"] = self.detail
        return body

    def __repr__(self) -> str:
        return f"ScimProblem({self.status}, {self.scim_type!r}, {self.detail!r})"


def invalid_filter(detail: str) -> ScimProblem:
    return ScimProblem(400, "invalidFilter", detail)


def invalid_path(detail: str) -> ScimProblem:
    return ScimProblem(400, "invalidPath", detail)
