"""The engine's ``search=`` query language, for the collections the fake serves (vms, hosts, events).

What a real engine accepts (its searchbackend SyntaxChecker and ConditionFieldAutoCompleters):
conditions ``field=value`` / ``field!=value`` joined by ``and`` / ``or`` (``and`` binds tighter, as
in the SQL it becomes; adjacent conditions count as ``and``), values quoted with double quotes when
they hold spaces (``name="my vm"``), and bare words searched as free text. String fields compare
with ILIKE — case-insensitive unless ``case_sensitive=true`` — where ``*`` is the only wildcard
(``_`` is escaped); free text matches ``%word%`` in any text column. Enum fields (``status``)
compare the value, UUID fields (``id``) must be UUIDs, integer fields (an event's ``type``) numbers.

Not modelled: ``sortby``, ``page``, parentheses, relational operators (``<``, ``>``), other fields.
Those are refused with a 400 that says so (the fake's own text: the engine's syntax errors differ).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ovirt_fake_engine.model import ApiError

T = TypeVar("T")
_TOKEN = re.compile(r'\s*(?:([A-Za-z_.]+)\s*(!=|=)\s*("[^"]*"|[^\s"]+)|("[^"]*"|[^\s"]+))')


@dataclass(frozen=True)
class Field:
    """One searchable field: how to read it from an item and how values compare (text/enum/id/int)."""

    get: Callable[[Any], str | None]
    kind: str = "text"


@dataclass(frozen=True)
class _Cond:
    field: str | None  # None: free text
    negate: bool
    value: str


def _unsupported(text: str, why: str) -> ApiError:
    return ApiError(400, "Operation Failed", f"[fake engine: unsupported search {text!r}: {why}]")


def _parse(text: str, fields: Mapping[str, Field]) -> list[list[_Cond]]:
    """``a and b or c`` → [[a, b], [c]] (an OR of ANDs)."""
    groups: list[list[_Cond]] = [[]]
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise _unsupported(text, f"cannot read {text[pos:]!r}")
        pos = m.end()
        name, op, value, word = m.groups()
        if word is not None and word.lower() in ("and", "or"):
            if not groups[-1]:
                raise _unsupported(text, f"{word!r} without a condition before it")
            if word.lower() == "or":
                groups.append([])
            continue
        if name is not None:
            key = name.lower()
            if key not in fields:
                raise _unsupported(text, f"no field {name!r} (known: {', '.join(sorted(fields))})")
            groups[-1].append(_Cond(key, op == "!=", value.strip('"')))
        else:
            if word.lower() in ("sortby", "page"):
                raise _unsupported(text, f"{word!r} is not modelled")
            groups[-1].append(_Cond(None, False, word.strip('"')))
    if not groups[-1] and len(groups) > 1:
        raise _unsupported(text, "nothing after the last 'or'")
    return [g for g in groups if g]


def _like(pattern: str, value: str, case_sensitive: bool, anywhere: bool = False) -> bool:
    rx = ".*".join(re.escape(part) for part in pattern.split("*"))
    flags = 0 if case_sensitive else re.IGNORECASE
    return re.fullmatch(f".*{rx}.*" if anywhere else rx, value, flags | re.DOTALL) is not None


def _matches(
    cond: _Cond,
    item: object,
    fields: Mapping[str, Field],
    free: Callable[[Any], Sequence[str]],
    case_sensitive: bool,
) -> bool:
    if cond.field is None:
        hit = any(_like(cond.value, v, case_sensitive, anywhere=True) for v in free(item))
        return hit != cond.negate
    f = fields[cond.field]
    value = f.get(item)
    if f.kind == "text":
        hit = value is not None and _like(cond.value, value, case_sensitive)
    elif f.kind == "enum":
        hit = value is not None and value.replace("_", "").lower() == cond.value.replace("_", "").lower()
    else:  # id, int: exact
        hit = value is not None and value.lower() == cond.value.lower()
    return hit != cond.negate


def _check_values(text: str, groups: list[list[_Cond]], fields: Mapping[str, Field]) -> None:
    for cond in (c for g in groups for c in g if c.field is not None):
        kind = fields[cond.field or ""].kind
        try:
            if kind == "id":
                uuid.UUID(cond.value)
            elif kind == "int":
                int(cond.value)
        except ValueError:
            raise _unsupported(text, f"{cond.value!r} is not a valid {cond.field}") from None


def search(
    items: Sequence[T],
    text: str | None,
    fields: Mapping[str, Field],
    free: Callable[[Any], Sequence[str]],
    *,
    case_sensitive: bool = False,
) -> list[T]:
    """The items the engine would return for ``search=text`` (all of them for no or blank text)."""
    if text is None or not text.strip():
        return list(items)
    groups = _parse(text, fields)
    _check_values(text, groups, fields)
    return [
        item
        for item in items
        if any(all(_matches(c, item, fields, free, case_sensitive) for c in group) for group in groups)
    ]
