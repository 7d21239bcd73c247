"""A collection body (``parse_many``) read item by item while it arrives.

No DTD is ever accepted. The body is first looked at up to its root element: when that prolog holds
no DOCTYPE, the document cannot declare an entity (expat then knows only the five predefined ones and
refuses any other reference as malformed), so the C parser reads it, about twice as fast as
defusedxml's pure-Python one on 10,000 backups. Any other body (a DOCTYPE, anything unexpected before
the root, a body that is not ASCII-compatible) goes through defusedxml with DTDs forbidden and is
refused the same way as a single document.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Iterator
from typing import IO, Literal

import defusedxml.ElementTree as SafeET

Element = ET.Element
_STARTS: tuple[Literal["start"]] = ("start",)

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


def _split(data: bytes | IO[bytes]) -> tuple[bool, _Rest]:
    """Whether the prolog holds no DTD (see the module docstring), and the whole body to parse."""
    if isinstance(data, bytes):
        return bool(_prolog_has_no_dtd(data)), _Rest(data, None)
    head = b""
    while (verdict := _prolog_has_no_dtd(head)) is None:
        chunk = data.read(_CHUNK)
        if not chunk:
            break
        head += chunk
    return bool(verdict), _Rest(head, data)


def _harvest(root: Element, *, ended: bool) -> list[Element]:
    """Take the complete children out of ``root``: all of them once the document has ended, else all
    but the last (a child is complete as soon as its next sibling has started)."""
    done = root[:] if ended else root[:-1]
    del root[: len(done)]
    return done


# XMLParser._setevents (private, what XMLPullParser itself calls; in CPython's C and Python parsers
# since 3.4) sets which events a parser reports, and may be called again. Reporting "start" only
# until the root element has started, then nothing at all, leaves no per-element step in Python:
# expat and the C tree builder read the body alone, about 30 % faster than one event per element.
# Without the method, the stock path (_starts_path) is used; tests run both.
QUIET = callable(getattr(ET.XMLParser, "_setevents", None))


def _quiet_path(rest: _Rest) -> Iterator[Element]:
    parser = ET.XMLParser(target=ET.TreeBuilder())  # noqa: S314 (no DOCTYPE: no entities)
    queue: deque[tuple[str, Element]] = deque()
    parser._setevents(queue, _STARTS)  # type: ignore[attr-defined]
    root: Element | None = None
    while chunk := rest.read(_CHUNK):
        parser.feed(chunk)
        if root is None:
            if not queue:
                continue
            root = queue[0][1]
            parser._setevents(queue, ())  # type: ignore[attr-defined]
            yield root
        queue.clear()  # empty; a parser that kept reporting would otherwise fill it
        if len(root) > 1:
            yield from _harvest(root, ended=False)
    parser.close()  # raises ParseError for a truncated or empty body
    if root is not None:
        yield from _harvest(root, ended=True)


def _starts_path(rest: _Rest, *, no_dtd: bool) -> Iterator[Element]:
    if no_dtd:
        events = ET.iterparse(rest, events=_STARTS)  # noqa: S314 (no DOCTYPE: no entities)
    else:
        events = SafeET.iterparse(rest, events=_STARTS, forbid_dtd=True)
    root: Element | None = None
    for _, el in events:
        if root is None:
            root = el
            yield root
        elif len(root) > 1:
            yield from _harvest(root, ended=False)
    if root is not None:  # the iterator ends once the parser has seen the end of the document
        yield from _harvest(root, ended=True)


def children(data: bytes | IO[bytes], *, quiet: bool | None = None) -> Iterator[Element]:
    """The root element, then each of its children once it is complete, in document order.

    Children are handed out (and dropped from the root: a large reply never exists as one tree)
    while the body is still arriving; the last one when the document has ended. A truncated or
    malformed body raises ``ET.ParseError`` and a hostile one defusedxml's exception, before the
    children that follow the fault. The C parser reads a body whose prolog holds no DTD, with no
    event per element at all when ``quiet`` (default: ``QUIET``), one "start" event per element
    otherwise; defusedxml reads any other body, one "start" event per element (not two: that step
    in Python is most of the cost of 5,000 VMs with their disks, a million elements).
    """
    no_dtd, rest = _split(data)
    if no_dtd and (QUIET if quiet is None else quiet):
        return _quiet_path(rest)
    return _starts_path(rest, no_dtd=no_dtd)
