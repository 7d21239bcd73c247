"""The events of a collection body (``parse_many``), parsed while it arrives.

No DTD is ever accepted. The body is first looked at up to its root element: when that prolog holds
no DOCTYPE, the document cannot declare an entity (expat then knows only the five predefined ones and
refuses any other reference as malformed), so the C parser reads it, about twice as fast as
defusedxml's pure-Python one on 10,000 backups. Any other body (a DOCTYPE, anything unexpected before
the root, a body that is not ASCII-compatible) goes through defusedxml with DTDs forbidden and is
refused the same way as a single document.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import IO, Literal

import defusedxml.ElementTree as SafeET

Element = ET.Element
EVENTS: tuple[Literal["start"], Literal["end"]] = ("start", "end")

_CHUNK = 64 * 1024
_BLANK = b" \t\r\n"


def _prolog_has_no_dtd(head: bytes) -> bool | None:
    """Whether what precedes the root element is only an XML declaration, processing instructions,
    comments and blanks: True; False when there is anything else (a DOCTYPE above all) or the body is
    not ASCII-compatible (the engine sends UTF-8); None when ``head`` ends before the root starts."""
    i = 3 if head.startswith(b"\xef\xbb\xbf") else 0
    n = len(head)
    while True:
        while i < n and head[i] in _BLANK:
            i += 1
        if n - i < 4:
            return None
        if head[i] != 0x3C:  # "<"
            return False
        if head.startswith(b"<?", i):
            end = head.find(b"?>", i + 2)
            if end < 0:
                return None
            i = end + 2
        elif head.startswith(b"<!--", i):
            end = head.find(b"-->", i + 4)
            if end < 0:
                return None
            i = end + 3
        else:  # the root element, or "<!DOCTYPE" (or anything else after "<!")
            nxt = head[i + 1]
            if nxt == 0x21 or 0 in head[:i]:  # "<!"; a NUL: not ASCII-compatible after all
                return False
            return chr(nxt).isalpha() or nxt in b"_:"


class _Rest:
    """``head`` (already read to look at the prolog) in pieces, then the rest of ``source``: fed a
    piece at a time, the parser never holds more than a piece's worth of unconsumed elements."""

    def __init__(self, head: bytes, source: IO[bytes] | None) -> None:
        self._head, self._at, self._source = memoryview(head), 0, source

    def read(self, size: int = -1) -> bytes:
        if self._at < len(self._head):
            start, self._at = self._at, self._at + _CHUNK
            return bytes(self._head[start : self._at])
        return self._source.read(size) if self._source is not None else b""


def events(data: bytes | IO[bytes]) -> Iterator[tuple[str, Element]]:
    """(event, element) for "start" and "end", from the C parser when the prolog has no DTD."""
    if isinstance(data, bytes):
        verdict, rest = _prolog_has_no_dtd(data), _Rest(data, None)
    else:
        head = b""
        while (verdict := _prolog_has_no_dtd(head)) is None:
            chunk = data.read(_CHUNK)
            if not chunk:
                break
            head += chunk
        rest = _Rest(head, data)
    if verdict:
        return ET.iterparse(rest, events=EVENTS)  # noqa: S314 (no DOCTYPE: no entities)
    return SafeET.iterparse(rest, events=EVENTS, forbid_dtd=True)  # type: ignore[no-any-return]
