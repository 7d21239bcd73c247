"""What every REST resource module shares: the reply type, reading bodies with the SDK, query values.

Request bodies are parsed with the SDK's own reader (``ovirtsdk4.reader.Reader``): if the generated
SDK could not read a body, the engine's JAXB layer would not have accepted it either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

import ovirtsdk4  # noqa: F401  (importing the package registers every reader)
from ovirtsdk4.reader import Reader

from ovirt_fake_engine import xmlout
from ovirt_fake_engine.model import ApiError

XML = "application/xml"
T = TypeVar("T")


@dataclass
class Reply:
    """An HTTP reply before it hits the socket; ``content_type`` None means an empty body."""

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


class BadBody(Exception):
    """The body is not what JAXB would unmarshal into the expected type."""


def xml_reply(status: int, text: str, headers: dict[str, str] | None = None) -> Reply:
    """An XML reply with the declaration the engine writes."""
    return Reply(status, xmlout.document(text), XML, headers or {})


def read(body: bytes, expected: type[T]) -> T:
    """The body as the SDK reads it, or :class:`BadBody` (400 ``usage_message``)."""
    try:
        obj = Reader.read(body) if body.strip() else None
    except Exception:  # the SDK raises its own Error or libxml2 complaints
        obj = None
    if not isinstance(obj, expected):
        raise BadBody
    return obj


def q(query: dict[str, list[str]], name: str) -> str | None:
    """The first value of a query parameter."""
    values = query.get(name)
    return values[0] if values else None


def flag(query: dict[str, list[str]], name: str) -> bool:
    """A boolean query parameter as the SDK writes it (``true``/``false``)."""
    return (q(query, name) or "").lower() == "true"


def max_items(query: dict[str, list[str]]) -> int | None:
    """``max``; negative means no limit."""
    raw = q(query, "max")
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        # Not checked against a real engine: it rejects a non-integer max with a 400 fault.
        raise ApiError(400, "Invalid value", f"'{raw}' is not a valid value for 'max'") from None
    return None if value < 0 else value


def follow(query: dict[str, list[str]]) -> set[str]:
    """``follow=a,b.c``: the link paths to inline."""
    return {p.strip() for v in query.get("follow", []) for p in v.split(",") if p.strip()}


def cut(items: list[T], limit: int | None) -> list[T]:
    """Apply ``max``."""
    return items if limit is None else items[:limit]
