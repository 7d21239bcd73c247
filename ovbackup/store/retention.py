"""The keep policy of ``prune``: restic's ``forget`` rules, then the chains on top. Pure: no files, no clock.

:func:`apply_policy` follows restic's ``ApplyPolicy`` (internal/data/snapshot_policy.go) step for step:
points newest first; ``--keep-last`` keeps each point, the calendar rules keep the newest point of each of
their N most recent buckets that hold a point (hour, day, ISO week, month, year); a rule that still has
counts left when it reaches the oldest point keeps that one too ("oldest daily"); ``--keep-within D`` keeps
points newer than the newest point (ignoring points in the future) minus D; the rules are OR-ed.
Differences, documented in the README: buckets are UTC (restic uses each snapshot's own zone) and a
duration may use ``w`` (7 days; restic knows only y, m, d, h).

:func:`plan_prune` adds what restic has no need for: a kept point keeps the points whose files its
images back onto (``needed by <point>``), unless ``merge`` folds them forward into it; the newest
complete point is always kept; incomplete points and files no point references are removed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

from ovbackup.errors import ConfigError
from ovbackup.store.catalog import DiskRecord, RestorePoint

T = TypeVar("T")
UNLIMITED = -1
RULES = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
CONFIG_KEYS = (*(f"keep_{r}" for r in RULES), "keep_within")
_UNIT = re.compile(r"(\d+)([ymwdh])")
_STAMP = re.compile(r"(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)(?:\.(\d{3}))?Z")


@dataclass(frozen=True)
class Duration:
    """restic's duration: years, months, days and hours, subtracted as calendar arithmetic."""

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0

    @classmethod
    def parse(cls, text: str) -> Duration:
        text = text.strip()
        parts = _UNIT.findall(text)
        if not text or "".join(n + u for n, u in parts) != text:
            raise ConfigError(
                f"bad duration {text!r}", hint="a number of years, months, weeks, days, hours: 1y2m3w4d5h"
            )
        values = {"y": 0, "m": 0, "w": 0, "d": 0, "h": 0}
        for number, unit in parts:
            values[unit] = int(number)  # restic: a repeated unit replaces the earlier one
        return cls(values["y"], values["m"], values["w"] * 7 + values["d"], values["h"])

    @property
    def zero(self) -> bool:
        return not (self.years or self.months or self.days or self.hours)

    def before(self, moment: datetime) -> datetime:
        """``moment`` minus this duration, normalising like Go's ``AddDate`` (31 March - 1m = 3 March)."""
        months = moment.year * 12 + (moment.month - 1) - self.years * 12 - self.months
        first = date(months // 12, months % 12 + 1, 1)
        day = first + timedelta(days=moment.day - 1 - self.days)
        return datetime.combine(day, moment.timetz()) - timedelta(hours=self.hours)

    def __str__(self) -> str:
        units = ((self.years, "y"), (self.months, "m"), (self.days, "d"), (self.hours, "h"))
        return "".join(f"{n}{u}" for n, u in units if n)


@dataclass(frozen=True)
class Policy:
    """Counts per rule (0: off, -1: unlimited) and an optional ``within`` duration."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within: Duration = field(default_factory=Duration)

    @property
    def empty(self) -> bool:
        return not any(getattr(self, r) for r in RULES) and self.within.zero

    @classmethod
    def from_values(cls, values: Mapping[str, str | None]) -> Policy:
        """From config-style keys (``keep_daily``: ``7`` or ``unlimited``, ``keep_within``: ``2w3d``)."""
        counts: dict[str, int] = {}
        for rule in RULES:
            text = values.get(f"keep_{rule}")
            if text is None or not str(text).strip():
                continue
            counts[rule] = parse_count(str(text), f"--keep-{rule}")
        within = values.get("keep_within")
        return cls(**counts, within=Duration.parse(within) if within else Duration())

    def __str__(self) -> str:
        parts = [f"{'all' if n == UNLIMITED else n} {rule}" for rule in RULES if (n := getattr(self, rule))]
        if not self.within.zero:
            parts.append(f"within {self.within} of the newest")
        return "keep " + ", ".join(parts) if parts else "keep nothing"


def parse_count(text: str, what: str) -> int:
    if text.strip().lower() == "unlimited":
        return UNLIMITED
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{what} must be a number or 'unlimited', not {text!r}") from None
    if value < 0:
        raise ConfigError(f"{what} must not be negative (use 'unlimited' to keep all)")
    return value


def _buckets(moment: datetime) -> tuple[int, ...]:
    """The hour, day, ISO week, month and year a moment (UTC) falls in, as comparable numbers."""
    iso = moment.isocalendar()
    return (
        moment.year * 1_000_000 + moment.month * 10_000 + moment.day * 100 + moment.hour,
        moment.year * 10_000 + moment.month * 100 + moment.day,
        iso.year * 100 + iso.week,
        moment.year * 100 + moment.month,
        moment.year,
    )


def apply_policy(
    items: Sequence[T], when: Callable[[T], datetime], policy: Policy, *, now: datetime
) -> tuple[list[tuple[T, tuple[str, ...]]], list[T]]:
    """restic's ApplyPolicy: (kept items newest first with their reasons, removed items newest first)."""
    stamped = sorted(((when(i).astimezone(UTC), i) for i in items), key=lambda ti: ti[0], reverse=True)
    if not stamped:  # sorted newest first, stable like restic's sort.Stable
        return [], []
    times = [moment for moment, _ in stamped]
    ordered = [item for _, item in stamped]
    past = [t for t in times if t < now]  # restic: the newest point, but never one in the future
    within_limit = None
    if not policy.within.zero:
        within_limit = policy.within.before(max(past)) if past else datetime.min.replace(tzinfo=UTC)
    counts = [getattr(policy, r) for r in RULES]
    seen: list[int | None] = [None] * len(RULES)
    keep: list[tuple[T, tuple[str, ...]]] = []
    remove: list[T] = []
    oldest = len(ordered) - 1
    for nr, (item, moment) in enumerate(zip(ordered, times, strict=True)):
        reasons: list[str] = []
        if within_limit is not None and moment > within_limit:
            reasons.append(f"within {policy.within}")
        buckets = (nr, *_buckets(moment))  # --keep-last: every point is a bucket of its own
        for i, rule in enumerate(RULES):
            if counts[i] == 0:
                continue
            if buckets[i] != seen[i] or nr == oldest:
                reasons.append(f"oldest {rule}" if buckets[i] == seen[i] else rule)
                seen[i] = buckets[i]
                if counts[i] > 0:
                    counts[i] -= 1
        if reasons:
            keep.append((item, tuple(reasons)))
        else:
            remove.append(item)
    return keep, remove


def point_time(point: RestorePoint) -> datetime:
    """When a point was taken: its name is the UTC time to the millisecond (20261127T153000.123Z)."""
    match = _STAMP.fullmatch(point.name)
    if match is None:
        return datetime.fromisoformat(point.started).astimezone(UTC)
    y, mo, d, h, mi, sec, ms = (int(g or 0) for g in match.groups())  # strptime: 10x slower
    return datetime(y, mo, d, h, mi, sec, ms * 1000, tzinfo=UTC)


@dataclass(frozen=True)
class Decision:
    point: RestorePoint
    keep: bool
    reasons: tuple[str, ...]
    size: int  # bytes of the point's own files


@dataclass(frozen=True)
class Merge:
    """Fold the removed files under ``disk``'s file into a new file for it, backed by ``backing``."""

    point: str
    disk: DiskRecord
    backing: DiskRecord | None  # the nearest kept file below, None: the new file is a full image
    folded: tuple[str, ...]  # removed files whose data goes into the new file, newest first
    children: tuple[str, ...]  # kept files backed by ``disk.file``: re-pointed with rebase -u


@dataclass(frozen=True)
class PrunePlan:
    decisions: tuple[Decision, ...]  # catalog order
    merges: tuple[Merge, ...]  # bottom of each chain first
    orphans: tuple[str, ...]  # files no point references
    delete: tuple[str, ...]  # every file to delete once the catalog no longer needs it

    @property
    def kept(self) -> list[Decision]:
        return [d for d in self.decisions if d.keep]

    @property
    def removed(self) -> list[Decision]:
        return [d for d in self.decisions if not d.keep]


def own_files(point: RestorePoint) -> list[str]:
    """The files a point brought: its disks' images, its restore configuration (``.config.json``)."""
    return [*(d.file for d in point.disks), point.config_file]


def _chain(disk: DiskRecord, by_file: Mapping[str, DiskRecord]) -> list[DiskRecord]:
    """``disk`` and its recorded backing files, newest first."""
    chain = [disk]
    while chain[-1].backing_file and (parent := by_file.get(chain[-1].backing_file)) is not None:
        chain.append(parent)
        if len(chain) > len(by_file):  # a loop in a damaged catalog
            break
    return chain


def plan_prune(
    points: Sequence[RestorePoint],
    files: Mapping[str, int],
    policy: Policy,
    *,
    now: datetime,
    merge: bool = False,
    reserved: Iterable[str] = (),
) -> PrunePlan:
    """What ``prune`` keeps, removes and merges. ``files``: every file in the VM's directory with its
    allocated bytes; ``reserved``: names that are never orphans (the manifest, the lock, the journal)."""
    if policy.empty:
        raise ConfigError(
            "empty policy: prune would remove every restore point",
            hint="give at least one --keep-* option, or keep_* keys in the config section",
        )
    complete = [p for p in points if p.complete]
    kept_by_policy, _ = apply_policy(complete, point_time, policy, now=now)
    reasons: dict[str, list[str]] = {p.name: list(r) for p, r in kept_by_policy}
    if complete and complete[-1].name not in reasons:
        reasons[complete[-1].name] = ["newest complete"]
    owner = {d.file: p.name for p in points for d in p.disks}
    by_file = {d.file: d for p in complete for d in p.disks}
    merges: list[Merge] = []
    chains = {
        d.file: _chain(d, by_file) for p in complete if p.name in reasons for d in p.disks
    }  # chains of the policy's points
    whole = {f: not c[-1].backing_file and all(x.file in files for x in c) for f, c in chains.items()}
    by_name = {p.name: p for p in complete}
    for name in list(reasons):
        for disk in by_name[name].disks:
            if merge and whole[disk.file]:
                continue
            for parent in chains[disk.file][1:]:
                if owner[parent.file] != name:
                    reasons.setdefault(owner[parent.file], []).append(f"needed by {name}")
    kept_files = {d.file for p in complete if p.name in reasons for d in p.disks}
    if merge:
        children_of: dict[str, list[str]] = {}
        for f, d in by_file.items():
            if d.backing_file and f in kept_files:
                children_of.setdefault(d.backing_file, []).append(f)
        done: set[str] = set()
        for file, chain in sorted(chains.items(), key=lambda fc: len(fc[1])):
            if not whole[file]:
                continue
            for i in range(len(chain) - 1, -1, -1):  # bottom of the chain first
                record = chain[i]
                if record.file not in kept_files or record.file in done:
                    continue
                done.add(record.file)
                below = chain[i + 1 :]
                folded = []
                backing = None
                for parent in below:
                    if parent.file in kept_files:
                        backing = parent
                        break
                    folded.append(parent.file)
                if folded:
                    children = tuple(sorted(children_of.get(record.file, ())))
                    merges.append(Merge(owner[record.file], record, backing, tuple(folded), children))
    decisions = []
    for p in points:
        size = sum(files.get(f, 0) for f in own_files(p))
        if p.name in reasons:
            decisions.append(Decision(p, True, tuple(dict.fromkeys(reasons[p.name])), size))
        else:
            why = "incomplete" if not p.complete else "not kept by the policy"
            decisions.append(Decision(p, False, (why,), size))
    referenced = {f for p in points for f in own_files(p)}
    skip = set(reserved)
    orphans = tuple(sorted(f for f in files if f not in referenced and f not in skip))
    delete = [f for d in decisions if not d.keep for f in own_files(d.point) if f in files]
    delete += [m.disk.file for m in merges]
    return PrunePlan(tuple(decisions), tuple(merges), orphans, tuple(dict.fromkeys([*delete, *orphans])))


def chain_depth(point: RestorePoint, points: Sequence[RestorePoint]) -> int:
    """How many backing files the point's deepest disk chain has (0: every disk is a full image)."""
    by_file = {d.file: d for p in points for d in p.disks}
    return max((len(_chain(d, by_file)) - 1 for d in point.disks), default=0)


def bytes_alone(point: RestorePoint, points: Sequence[RestorePoint], files: Mapping[str, int]) -> int:
    """Bytes only this point holds: its own files that no other point's chain needs."""
    by_file = {d.file: d for p in points for d in p.disks}
    needed = {x.file for p in points if p.name != point.name for d in p.disks for x in _chain(d, by_file)}
    return sum(files.get(f, 0) for f in own_files(point) if f not in needed)
