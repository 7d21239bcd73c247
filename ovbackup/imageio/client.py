"""The imageio client: moving a disk's bytes between ovirt-imageio and a local image (both ways), and
checking them (imageio's ``/checksum`` of a remote disk, ``client.checksum`` of a local chain).

The copying itself is done by ``ovirt_imageio.client`` (oVirt's own client, an optional extra): it reads
the extents map so zero areas are never transferred, copies dirty extents only for incremental disks,
and writes qcow2 overlays through a local qemu-nbd. It needs ``qemu-img``/``qemu-nbd`` (Debian
``qemu-utils``). Everything here is imported only by the commands that move data.
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ovbackup.errors import ConfigError, SpaceError, TransferError


def require_tools(
    what: str = "downloading", *, imageio: bool = True, tools: tuple[str, ...] = ("qemu-img", "qemu-nbd")
) -> None:
    """Fail with install instructions (exit 2) when the optional data-plane pieces are missing."""
    missing = []
    if imageio:
        try:
            import ovirt_imageio.client  # noqa: F401
        except ImportError:
            missing.append("the ovirt-imageio client: pip install 'ovbackup[transfer]'")
    for tool in tools:
        if shutil.which(tool) is None:
            missing.append(f"{tool}: apt install qemu-utils (dnf install qemu-img)")
    if missing:
        raise ConfigError(f"{what} needs " + "; ".join(missing))


class Progress:
    """The ``progress`` object ovirt_imageio.client expects (a ``size`` and ``update(n)``).

    The client reports skipped and zeroed extents too, so this measures progress through the image,
    not bytes on the wire; bytes on the wire come from the extents (:func:`data_bytes`).
    """

    def __init__(self, on_update: Callable[[int, int | None], None] | None = None) -> None:
        self.size: int | None = None
        self.done = 0
        self._lock = threading.Lock()
        self._on_update = on_update

    def update(self, n: int) -> None:
        with self._lock:
            self.done += n
            done, size = self.done, self.size
        if self._on_update:
            self._on_update(done, size)


@dataclass(frozen=True)
class Extents:
    size: int  # the image's virtual size
    data: int  # bytes that will cross the wire


class ImageioSession:
    """HTTP calls to the imageio server's image resource (extents, checksum)."""

    def __init__(self, url: str, *, cafile: str | None, secure: bool, timeout: float = 60.0) -> None:
        import requests

        self.url = url
        self.timeout = timeout
        self.session = requests.Session()
        # Given on every request: a session's verify loses to REQUESTS_CA_BUNDLE (psf/requests#3829).
        self.verify: bool | str = (cafile or True) if secure else False

    def close(self) -> None:
        self.session.close()

    def _get_json(self, suffix: str) -> Any:
        import requests

        try:
            response = self.session.get(self.url + suffix, timeout=self.timeout, verify=self.verify)
        except requests.RequestException as e:
            raise TransferError(f"imageio request {suffix} failed: {e}") from None
        if response.status_code != 200:
            raise TransferError(
                f"imageio answered {response.status_code} to {suffix}: {response.text.strip()[:200]}"
            )
        try:
            return response.json()
        except ValueError:
            raise TransferError(f"imageio sent no JSON for {suffix}") from None

    def extents(self, *, incremental: bool) -> Extents:
        """Bytes to fetch: data extents (full), or dirty data extents (incremental)."""
        context = "dirty" if incremental else "zero"
        items = self._get_json(f"/extents?context={context}")
        if not isinstance(items, list) or not items:
            raise TransferError("imageio sent an empty extents map")
        size = int(items[-1]["start"]) + int(items[-1]["length"])
        if incremental:
            data = sum(int(e["length"]) for e in items if e.get("dirty") and not e.get("zero", False))
        else:
            data = sum(int(e["length"]) for e in items if not e.get("zero"))
        return Extents(size=size, data=data)

    def checksum(self) -> dict[str, Any]:
        result = self._get_json("/checksum")
        if not isinstance(result, dict) or "checksum" not in result:
            raise TransferError("imageio sent no checksum")
        return result


def download(
    transfer_url: str,
    dest: Path,
    *,
    proxy_url: str | None,
    cafile: str | None,
    secure: bool,
    incremental: bool,
    backing_file: str | None,
    backing_format: str | None,
    fmt: str,
    max_workers: int,
    progress: Progress | None,
) -> None:
    from ovirt_imageio import client

    from ovbackup.imageio.tuning import page_cache_images

    page_cache_images()
    try:
        with WriteBehind(dest):
            client.download(
                transfer_url,
                str(dest),
                cafile,
                fmt=fmt,
                incremental=incremental,
                secure=secure,
                progress=progress,
                proxy_url=proxy_url,
                max_workers=max_workers,
                backing_file=backing_file,
                backing_format=backing_format,
            )
    except Exception as e:  # imageio raises its own error types (http errors, nbd errors) too
        if no_space_left(e):
            raise SpaceError(f"no space left on the device writing {dest}") from None
        if isinstance(e, (OSError, RuntimeError, ValueError)):
            raise TransferError(f"download of {dest.name} failed: {e}") from None
        raise TransferError(f"download of {dest.name} failed: {type(e).__name__}: {e}") from None


class WriteBehind:
    """Flush the file being downloaded every ``interval`` seconds while the download runs.

    qemu-nbd writes the local image through the page cache (:mod:`ovbackup.imageio.tuning`), so the
    file hash right after the download reads memory, not the disk; this makes the kernel write the
    image back while the download runs, so the final fsync finds little left to do.
    """

    def __init__(self, path: Path, interval: float = 1.0) -> None:
        self.path = path
        self.interval = interval
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"flush-{path.name[:20]}", daemon=True)

    def __enter__(self) -> WriteBehind:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        fd = -1
        try:
            while not self._done.wait(self.interval):
                if fd < 0:
                    try:
                        fd = os.open(self.path, os.O_RDONLY)
                    except FileNotFoundError:
                        continue  # qemu-nbd has not created it yet
                os.fdatasync(fd)
        except OSError:
            return  # only an optimisation: the final fsync reports real write errors
        finally:
            if fd >= 0:
                os.close(fd)


def no_space_left(e: BaseException) -> bool:
    """ENOSPC, from our own writes or reported by qemu-nbd through imageio's NBD client (its
    ``ReplyError: Writing to file failed: [Error 28] No space left on device`` carries no errno)."""
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        return True
    return os.strerror(errno.ENOSPC) in str(e)


def upload(
    path: Path,
    transfer_url: str,
    *,
    proxy_url: str | None,
    cafile: str | None,
    secure: bool,
    max_workers: int,
    disk_is_zero: bool,
    progress: Progress | None,
) -> None:
    """Send the guest-visible data of ``path`` (its qcow2 backing chain included, so the top file of a
    restore point gives the whole disk) into an upload transfer (ovirt-api.md §11.3).

    ``disk_is_zero``: the target is a new disk that reads as zeroes (file storage, or qcow2 on block),
    so zero areas are skipped instead of written.
    """
    from ovirt_imageio import client

    try:
        client.upload(
            str(path),
            transfer_url,
            cafile,
            secure=secure,
            progress=progress,
            proxy_url=proxy_url,
            max_workers=max_workers,
            backing_chain=True,
            disk_is_zero=disk_is_zero,
        )
    except (OSError, RuntimeError, ValueError) as e:
        raise TransferError(f"upload of {path.name} failed: {e}") from None
    except Exception as e:  # imageio raises its own error types (http errors, nbd errors)
        raise TransferError(f"upload of {path.name} failed: {type(e).__name__}: {e}") from None


def image_checksum(path: Path, *, algorithm: str, block_size: int) -> str:
    """imageio's checksum of the guest-visible image (backing chain included)."""
    from ovirt_imageio import client

    result: dict[str, Any] = client.checksum(str(path), block_size=block_size, algorithm=algorithm)
    return str(result["checksum"])
