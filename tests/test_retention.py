"""The keep policy (store/retention.py) on hand-made timestamps: restic's own golden cases and documented
examples, several points a day, ISO weeks, the oldest-kept rule, --keep-within; then chains."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ovbackup.errors import ConfigError
from ovbackup.store.catalog import DiskRecord, RestorePoint
from ovbackup.store.retention import (
    Duration,
    Policy,
    apply_policy,
    bytes_alone,
    chain_depth,
    plan_prune,
    point_time,
)

GOLDEN = json.loads((Path(__file__).parent / "data" / "restic_forget_golden.json").read_text())
NOW = datetime(2030, 1, 1, tzinfo=UTC)


def t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=UTC)


def kept(
    times: list[datetime], policy: Policy, now: datetime = NOW
) -> list[tuple[datetime, tuple[str, ...]]]:
    keep, remove = apply_policy(times, lambda x: x, policy, now=now)
    assert len(keep) + len(remove) == len(times)
    return keep


def restic_reason(reason: str) -> str:
    """restic says 'daily snapshot', 'oldest yearly snapshot', 'within 1y1m1d'; ovbackup drops 'snapshot'."""
    return reason.removesuffix(" snapshot")


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=lambda c: c["golden"])
def test_restic_golden_cases(case: dict[str, object]) -> None:
    policy_spec = dict(case["policy"])  # type: ignore[call-overload]
    within = policy_spec.pop("within", None)
    policy = Policy(**policy_spec, within=Duration.parse(within) if within else Duration())
    times = [t(x) for x in GOLDEN["snapshots"]]
    got = [(m.isoformat(), list(r)) for m, r in kept(times, policy)]
    want = [
        (t(when).isoformat(), [restic_reason(r) for r in reasons])
        for when, reasons in case["keep"]  # type: ignore[attr-defined]
    ]
    assert got == want


# restic doc/060_forget.rst: backups every weekday for two weeks, an extra one on Fridays, Wednesday missed.
DOC_TIMES = [
    "2025-04-21 11:00",
    "2025-04-22 11:00",
    "2025-04-23 11:00",
    "2025-04-24 11:00",
    "2025-04-25 11:00",
    "2025-04-25 23:00",
    "2025-04-28 11:00",
    "2025-04-29 11:00",
    "2025-05-01 11:00",
    "2025-05-02 11:00",
    "2025-05-02 23:00",
]


def test_restic_doc_keep_daily_5_reaches_back_over_the_missed_day() -> None:
    times = [t(x) for x in DOC_TIMES]
    assert [m for m, _ in kept(times, Policy(daily=5))] == [
        t("2025-05-02 23:00"),
        t("2025-05-01 11:00"),
        t("2025-04-29 11:00"),
        t("2025-04-28 11:00"),
        t("2025-04-25 23:00"),
    ]


def test_restic_doc_one_backup_a_day_for_100_years() -> None:
    """'--keep-daily 7 --keep-weekly 5 --keep-monthly 12 --keep-yearly 75 would keep the most recent 7 daily
    snapshots and 4 last-day-of-the-week ones (since the 7 dailies already include 1 weekly). Additionally,
    12 or 11 last-day-of-the-month snapshots ... 75 or 74 last-day-of-the-year snapshots'."""
    end = datetime(2029, 12, 30, 12, tzinfo=UTC)  # a Sunday: the 7 dailies hold exactly one week's end
    times = [end - timedelta(days=i) for i in range(36525)]
    keep = kept(times, Policy(daily=7, weekly=5, monthly=12, yearly=75))
    only = lambda rule: [m for m, r in keep if rule in r and not {"daily"} & set(r)]  # noqa: E731
    assert sum("daily" in r for _, r in keep) == 7
    assert len(only("weekly")) == 4
    assert sum("monthly" in r for _, r in keep) == 12 and sum("yearly" in r for _, r in keep) == 75
    assert 7 + 4 + 11 + 74 <= len(keep) <= 7 + 4 + 12 + 75
    weekly = [m for m, r in keep if "weekly" in r]
    assert all(m.isoweekday() == 7 for m in weekly[1:])  # last day of the week: Sunday
    yearly = [m for m, r in keep if "yearly" in r]
    assert all((m.month, m.day) == (12, 31) for m in yearly[1:])


def test_several_points_a_day_keep_the_newest_of_each_day() -> None:
    times = [t("2026-03-02 08:00"), t("2026-03-02 12:00"), t("2026-03-02 23:59"), t("2026-03-03 01:00")]
    assert [m for m, _ in kept(times, Policy(daily=2))] == [t("2026-03-03 01:00"), t("2026-03-02 23:59")]
    # buckets are UTC days: 23:59 and 00:30 the next morning are two days whatever the local zone
    assert len(kept([t("2026-03-02 23:59"), t("2026-03-03 00:30")], Policy(daily=2))) == 2


def test_iso_weeks_span_the_new_year_and_start_on_monday() -> None:
    # 2026-12-28 (Mon) .. 2027-01-03 (Sun) is ISO week 2026-W53; 2027-01-04 (Mon) starts 2027-W01
    times = [t("2026-12-28 10:00"), t("2027-01-01 10:00"), t("2027-01-03 23:59"), t("2027-01-04 00:00")]
    keep = kept(times, Policy(weekly=2))
    assert keep == [(t("2027-01-04 00:00"), ("weekly",)), (t("2027-01-03 23:59"), ("weekly",))]


def test_a_rule_with_counts_left_at_the_oldest_point_keeps_it() -> None:
    times = [t("2026-12-28 10:00"), t("2027-01-01 10:00"), t("2027-01-03 23:59"), t("2027-01-04 00:00")]
    keep = kept(times, Policy(weekly=3))
    assert keep[-1] == (t("2026-12-28 10:00"), ("oldest weekly",))
    assert t("2027-01-01 10:00") not in [m for m, _ in keep]
    # with no counts left, the oldest goes
    assert t("2026-12-28 10:00") not in [m for m, _ in kept(times, Policy(weekly=2))]
    # unlimited always has counts left
    assert kept(times, Policy(weekly=-1))[-1] == (t("2026-12-28 10:00"), ("oldest weekly",))


def test_rules_are_or_ed_and_a_point_may_satisfy_several() -> None:
    times = [t("2026-05-01 10:00"), t("2026-05-02 10:00"), t("2026-05-03 10:00")]
    keep = kept(times, Policy(last=1, daily=2, monthly=2))
    assert keep[0] == (t("2026-05-03 10:00"), ("last", "daily", "monthly"))
    assert keep[1] == (t("2026-05-02 10:00"), ("daily",))
    assert len(keep) == 3 and keep[2][1] == ("oldest monthly",)


def test_keep_within_counts_back_from_the_newest_point_not_from_now() -> None:
    newest = t("2026-06-30 12:00")
    times = [
        newest,
        newest - timedelta(days=17) + timedelta(minutes=1),
        newest - timedelta(days=17),  # exactly on the limit: not newer, removed (restic: After)
        newest - timedelta(days=40),
    ]
    keep = kept(times, Policy(within=Duration.parse("2w3d")), now=newest + timedelta(days=300))
    assert [m for m, _ in keep] == times[:2] and keep[0][1] == ("within 17d",)
    # a point in the future (a skewed clock) is kept but is not "the newest" the limit counts from
    future = newest + timedelta(days=100)
    keep = kept([*times, future], Policy(within=Duration.parse("1d")), now=newest + timedelta(hours=1))
    assert [m for m, _ in keep] == [future, newest]


def test_durations_subtract_like_go_adddate() -> None:
    assert Duration.parse("1m").before(t("2026-03-31 10:00")) == t("2026-03-03 10:00")
    assert Duration.parse("1y2m3d4h").before(t("2026-05-10 10:00")) == t("2025-03-07 06:00")
    assert str(Duration.parse("1d1y")) == "1y1d"
    for bad in ("", "2", "1x", "-1d", "1d 2h"):
        with pytest.raises(ConfigError, match="bad duration"):
            Duration.parse(bad)


def test_policy_from_config_values() -> None:
    policy = Policy.from_values({"keep_daily": "7", "keep_weekly": "unlimited", "keep_within": "1w"})
    assert (policy.daily, policy.weekly, policy.within) == (7, -1, Duration(days=7))
    assert Policy.from_values({}).empty and not policy.empty
    with pytest.raises(ConfigError, match="--keep-daily must be a number"):
        Policy.from_values({"keep_daily": "seven"})
    with pytest.raises(ConfigError, match="negative"):
        Policy.from_values({"keep_last": "-1"})


# -- chains ------------------------------------------------------------------------------------------------


def disk(name: str, backing: str | None = None, disk_id: str = "d1") -> DiskRecord:
    return DiskRecord(
        id=disk_id,
        alias="os",
        mode="incremental" if backing else "full",
        format="qcow2",
        virtual_size=1,
        file=f"{name}.{disk_id}",
        backing_file=f"{backing}.{disk_id}" if backing else None,
    )


def point(day: int, backing: int | None = None, *, complete: bool = True) -> RestorePoint:
    name = f"202601{day:02d}T120000.000Z"
    parent = f"202601{backing:02d}T120000.000Z" if backing else None
    return RestorePoint(
        name=name,
        backup_id=f"b{day}",
        mode="incremental" if backing else "full",
        format="qcow2",
        started="",
        finished="",
        from_checkpoint_id=None,
        to_checkpoint_id=None,
        engine_url="",
        vm_id="vm",
        vm_name="web01",
        complete=complete,
        disks=(disk(name, parent),),
    )


def files_of(points: list[RestorePoint], size: int = 100) -> dict[str, int]:
    return {d.file: size for p in points for d in p.disks}


# full on the 1st, incrementals 2-4 on it; full on the 5th, incremental 6 on it
CHAIN = [point(1), point(2, 1), point(3, 2), point(4, 3), point(5), point(6, 5)]


def by_name(plan_points: object) -> dict[str, tuple[str, ...]]:
    return {d.point.name[6:8]: d.reasons for d in plan_points}  # type: ignore[attr-defined]


def test_a_kept_point_keeps_its_backing_chain() -> None:
    plan = plan_prune(CHAIN, files_of(CHAIN), Policy(last=1), now=NOW)
    assert by_name(plan.kept) == {"05": ("needed by 20260106T120000.000Z",), "06": ("last",)}
    assert set(by_name(plan.removed)) == {"01", "02", "03", "04"}
    assert plan.merges == () and len(plan.delete) == 4
    plan = plan_prune(CHAIN, files_of(CHAIN), Policy(daily=1, last=3), now=NOW)
    assert set(by_name(plan.kept)) == {"01", "02", "03", "04", "05", "06"}
    assert by_name(plan.kept)["01"] == ("needed by 20260104T120000.000Z",)


def test_merge_folds_the_removed_chain_into_the_oldest_kept_point() -> None:
    plan = plan_prune(CHAIN, files_of(CHAIN), Policy(last=3), now=NOW, merge=True)
    assert set(by_name(plan.kept)) == {"04", "05", "06"}
    (m,) = plan.merges
    assert m.point.endswith("04T120000.000Z") and m.backing is None
    assert [f[6:8] for f in m.folded] == ["03", "02", "01"] and m.children == ()
    assert {f[6:8] for f in plan.delete} == {"01", "02", "03", "04"}  # 04's old file, once merged


def test_merge_between_two_kept_points_rebases_onto_the_lower_one_and_repoints_children() -> None:
    points = [point(1), point(2, 1), point(3, 2), point(4, 3), point(5, 4)]
    files = files_of(points)
    # keep 5 (last) and the 1st (oldest daily... via a second rule): 2 and 3 go, 4 takes their data
    plan = plan_prune(points, files, Policy(last=2, yearly=2), now=NOW, merge=True)
    assert set(by_name(plan.kept)) == {"01", "04", "05"}
    (m,) = plan.merges
    assert m.point[6:8] == "04" and m.backing is not None and m.backing.file[6:8] == "01"
    assert [f[6:8] for f in m.folded] == ["03", "02"] and [c[6:8] for c in m.children] == ["05"]


def test_incomplete_points_and_orphans_are_removed_and_reserved_names_are_not() -> None:
    points = [point(1), point(2, 1), point(3, 2, complete=False)]
    files = {**files_of(points), "stray.qcow2.partial": 5, "catalog.json": 1, ".lock": 0}
    plan = plan_prune(points, files, Policy(last=5), now=NOW, reserved=("catalog.json", ".lock"))
    assert by_name(plan.removed) == {"03": ("incomplete",)}
    assert plan.orphans == ("stray.qcow2.partial",)
    assert set(plan.delete) == {points[2].disks[0].file, "stray.qcow2.partial"}


def test_an_empty_policy_is_refused() -> None:
    with pytest.raises(ConfigError, match="empty policy"):
        plan_prune(CHAIN, files_of(CHAIN), Policy(), now=NOW)


def test_a_broken_chain_is_kept_whole_rather_than_merged() -> None:
    files = files_of(CHAIN)
    del files[CHAIN[4].disks[0].file]  # the full of the second chain is gone
    plan = plan_prune(CHAIN, files, Policy(last=1), now=NOW, merge=True)
    assert plan.merges == () and "05" in by_name(plan.kept)


def test_chain_depth_and_bytes_held_alone() -> None:
    files = files_of(CHAIN)
    assert [chain_depth(p, CHAIN) for p in CHAIN] == [0, 1, 2, 3, 0, 1]
    assert [bytes_alone(p, CHAIN, files) for p in CHAIN] == [0, 0, 0, 100, 0, 100]


def test_point_time_is_the_utc_name() -> None:
    assert point_time(CHAIN[0]) == t("2026-01-01 12:00")
