"""Choosing the VMs of a fleet run: shards (a property test over many ids and N), names, globs."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ovbackup.engine.model import Vm
from ovbackup.errors import ConfigError
from ovbackup.jobs.selection import Shard, excluded, parse_shard, shard_of

ids = st.lists(st.uuids(version=4).map(str), min_size=1, max_size=300, unique=True)


@settings(max_examples=200, deadline=None)
@given(ids, st.integers(min_value=1, max_value=64))
def test_shards_are_disjoint_and_cover_the_fleet(vm_ids: list[str], n: int) -> None:
    shards = [[i for i in vm_ids if shard_of(i, n) == k] for k in range(n)]
    flat = [i for shard in shards for i in shard]
    assert sorted(flat) == sorted(vm_ids)  # covering, and no VM in two shards
    assert len(set(flat)) == len(flat)


@settings(max_examples=100, deadline=None)
@given(ids, st.integers(min_value=1, max_value=64))
def test_a_vms_shard_depends_only_on_its_id(vm_ids: list[str], n: int) -> None:
    first = {i: shard_of(i, n) for i in vm_ids}
    again = {i: shard_of(i, n) for i in reversed(vm_ids)}
    assert first == again
    assert all(shard_of(i.upper(), n) == k for i, k in first.items())  # the engine's ids are lower case


def test_shards_are_stable_across_machines_and_python_runs() -> None:
    # SHA-256 of the id, not hash() (salted per process): every backup host computes the same split.
    # Pinned values: changing the function would silently move VMs between hosts of a running fleet.
    counts = (2, 3, 5, 7, 10, 16)
    assert [shard_of("6f1e2c4a-8d3b-4e5f-9a7b-0c1d2e3f4a5b", n) for n in counts] == [1, 0, 3, 2, 3, 11]
    assert [shard_of("00000000-0000-4000-8000-000000000001", n) for n in counts] == [0, 1, 2, 3, 2, 0]
    assert shard_of("6f1e2c4a-8d3b-4e5f-9a7b-0c1d2e3f4a5b", 1) == 0


def test_shards_are_roughly_balanced() -> None:
    vm_ids = [str(uuid.UUID(int=i * 7919 + 13, version=4)) for i in range(6000)]
    sizes = [sum(1 for i in vm_ids if shard_of(i, 6) == k) for k in range(6)]
    assert min(sizes) > 800 and max(sizes) < 1200


@pytest.mark.parametrize("text", ["1", "3/3", "-1/2", "a/b", "1/0", "0/-1", ""])
def test_bad_shards_are_usage_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_shard(text)


def test_good_shard() -> None:
    assert parse_shard("2/5") == Shard(2, 5)
    assert str(parse_shard("0/1")) == "0/1"


def test_exclude_globs_match_names_and_ids() -> None:
    vm = Vm(id="1b2c", name="db-prod-01")
    assert excluded(vm, ["db-*"]) and excluded(vm, ["*-01"]) and excluded(vm, ["1b2c"])
    assert not excluded(vm, ["DB-*"]) and not excluded(vm, ["web*"]) and not excluded(vm, [])
