"""Which VMs a fleet run backs up: names or ids, ``--all``, ``--search``, ``--exclude`` globs, ``--shard``.

Every VM with its disks comes from one request (``follow=disk_attachments.disk``, ovirt-api.md §11.5).
Shards are chosen on a stable hash of the VM **id** (never its name, which can change, and never
Python's ``hash()``, which is salted per process): N backup hosts each running ``--shard i/N`` cover
the selection exactly once, on every machine and in every run.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from ovbackup.engine.model import Vm
from ovbackup.engine.services import VmsService
from ovbackup.errors import ConfigError, NotFoundError

FOLLOW_DISKS = "disk_attachments.disk"


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class Selection:
    names: tuple[str, ...] = ()
    all: bool = False
    search: str | None = None
    exclude: tuple[str, ...] = ()
    shard: Shard | None = None


def parse_shard(text: str) -> Shard:
    """``I/N`` with 0 ≤ I < N (``$JOB_COMPLETION_INDEX/N`` in a Kubernetes Indexed Job)."""
    index, sep, count = text.partition("/")
    try:
        shard = Shard(int(index), int(count))
    except ValueError:
        raise ConfigError(f"--shard must be I/N, e.g. 0/3, not {text!r}") from None
    if not sep or shard.count < 1 or not 0 <= shard.index < shard.count:
        raise ConfigError(f"--shard {text}: need 0 <= I < N")
    return shard


def shard_of(vm_id: str, count: int) -> int:
    """The shard a VM belongs to: the first 8 bytes of SHA-256 of its lower-case id, modulo ``count``."""
    digest = hashlib.sha256(vm_id.strip().lower().encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def excluded(vm: Vm, patterns: Sequence[str]) -> bool:
    """Shell globs on the VM's name (case-sensitive, as the engine's names are); an id matches too."""
    return any(fnmatch.fnmatchcase(vm.name or "", p) or vm.id == p for p in patterns)


def select_vms(service: VmsService, selection: Selection) -> list[Vm]:
    """The VMs to back up, in the order given (names) or the engine's order (``--all``/``--search``).

    Unknown names fail before anything starts, all of them in one error (exit 4).
    """
    if not (selection.names or selection.all or selection.search):
        raise ConfigError("name the VMs to back up, or pass --all or --search QUERY")
    if selection.names and (selection.all or selection.search):
        raise ConfigError("VM names cannot be combined with --all or --search")
    listed = service.list(search=selection.search, follow=FOLLOW_DISKS)
    if selection.names:
        by_key: dict[str, Vm] = {}
        for vm in listed:
            by_key.setdefault(vm.id.lower(), vm)
            if vm.name:
                by_key.setdefault(vm.name, vm)
        missing = [n for n in selection.names if n not in by_key and n.lower() not in by_key]
        if missing:
            raise NotFoundError(
                f"VM {', '.join(repr(m) for m in missing)} not found",
                hint="`ovbackup vms` lists the VMs you can see; nothing was started",
            )
        picked = [by_key.get(n) or by_key[n.lower()] for n in selection.names]
    else:
        picked = listed
    unique = list({vm.id: vm for vm in picked}.values())
    chosen = [vm for vm in unique if not excluded(vm, selection.exclude)]
    if selection.shard is not None:
        shard = selection.shard
        chosen = [vm for vm in chosen if shard_of(vm.id, shard.count) == shard.index]
    return chosen
