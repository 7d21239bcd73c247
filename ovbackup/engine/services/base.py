"""What every service shares: the connection, the path, GETs and actions."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

from ovbackup.engine import xml
from ovbackup.engine.connection import Connection, QueryValue
from ovbackup.engine.model import (
    ActionResult,
)
from ovbackup.errors import NotFoundError

if TYPE_CHECKING:
    import requests

T = TypeVar("T")
Headers = Mapping[str, str] | None
Query = Mapping[str, QueryValue] | None
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class Service:
    def __init__(self, connection: Connection, path: str) -> None:
        self.connection = connection
        self.path = path

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"

    def _get(
        self,
        path: str,
        *,
        query: Mapping[str, QueryValue | None] | None = None,
        headers: Headers = None,
        extra_query: Query = None,
        timeout: float | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """GET with the call's own parameters over the caller's extra ``query``."""
        merged: dict[str, QueryValue | None] = dict(extra_query or {})
        merged.update(query or {})
        return self.connection.request(
            "GET", path, query=merged, headers=headers, timeout=timeout, ok=(200,), stream=stream
        )

    def _get_one(
        self,
        path: str,
        tag: str,
        convert: Callable[[xml.Element], T],
        *,
        query: Mapping[str, QueryValue | None] | None = None,
        headers: Headers = None,
        extra_query: Query = None,
        timeout: float | None = None,
    ) -> T:
        response = self._get(path, query=query, headers=headers, extra_query=extra_query, timeout=timeout)
        return xml.parse_one(response.content, tag, convert)

    def _get_many(
        self,
        path: str,
        tag: str,
        convert: Callable[[xml.Element], T],
        *,
        query: Mapping[str, QueryValue | None] | None = None,
        headers: Headers = None,
        extra_query: Query = None,
        timeout: float | None = None,
    ) -> list[T]:
        """A collection parsed while it arrives: a VM's 10,000 backups never sit in memory as text."""
        response = self._get(
            path, query=query, headers=headers, extra_query=extra_query, timeout=timeout, stream=True
        )
        return self.connection.read_stream(response, lambda raw: xml.parse_many(raw, tag, convert))

    def _action(
        self, action: str, *, headers: Headers = None, query: Query = None, timeout: float | None = None
    ) -> ActionResult:
        response = self.connection.request(
            "POST",
            f"{self.path}/{action}",
            body=xml.build_action(),
            headers=headers,
            query=query,
            timeout=timeout,
        )
        return xml.parse_action(response.content)


class EntityService(Service):
    """A service for one entity (a backup, a checkpoint, a transfer): the last path segment is its id,
    and it has no sub-services to locate."""

    @property
    def id(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def service(self, path: str | None) -> Service:
        if not path:
            return self
        raise NotFoundError(f"no service at {self.path}/{path}")
