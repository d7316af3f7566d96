"""Online A/B experiments: stable assignment of shoppers to model versions, starting and stopping
(validation changes nothing), and the report from impressions and the events that carry their
recommendationId (both databases; the API over HTTP)."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest

from domain.db import Database
from domain.recommend import experiments
from domain.recommend.models import Experiment

ARMS = [{"version_id": 7, "weight": 0.7}, {"version_id": 9, "weight": 0.3}]


def test_assignment_is_the_documented_hash() -> None:
    # Given the documented recipe, when computed by hand, then arm_for agrees with it.
    for key in ("c:1", "c:2", "a:visitor-xyz", "c:123456"):
        u = int.from_bytes(hashlib.sha256(f"5:{key}".encode()).digest()[:8], "big") / 2**64
        assert experiments.unit(5, key) == u
        assert experiments.arm_for(5, ARMS, key) == (7 if u < 0.7 else 9)


def test_assignment_is_stable_and_follows_the_weights() -> None:
    keys = [f"c:{n}" for n in range(5000)] + [f"a:anon-{n}" for n in range(5000)]
    first = [experiments.arm_for(3, ARMS, k) for k in keys]
    assert first == [experiments.arm_for(3, ARMS, k) for k in keys]  # same key, same arm
    split = Counter(first)
    assert set(split) == {7, 9}
    assert abs(split[7] / len(keys) - 0.7) < 0.02
    # Unnormalised weights give the same answer as their normalised form.
    scaled = [{"version_id": 7, "weight": 7.0}, {"version_id": 9, "weight": 3.0}]
    assert first == [experiments.arm_for(3, scaled, k) for k in keys]
    # Another experiment reshuffles: not the same assignment.
    other = [experiments.arm_for(4, ARMS, k) for k in keys]
    assert other != first and abs(Counter(other)[7] / len(keys) - 0.7) < 0.02
    three = [{"version_id": v, "weight": w} for v, w in ((1, 0.5), (2, 0.25), (3, 0.25))]
    split3 = Counter(experiments.arm_for(11, three, k) for k in keys)
    for v, w in ((1, 0.5), (2, 0.25), (3, 0.25)):
        assert abs(split3[v] / len(keys) - w) < 0.02
    assert {experiments.arm_for(1, [{"version_id": 5, "weight": 1.0}], k) for k in keys} == {5}
    with pytest.raises(ValueError):
        experiments.arm_for(1, [], "c:1")


async def test_running_is_the_one_running_experiment(db: Database) -> None:
    async with db.read_only() as session:
        assert await experiments.running(session) is None
    async with db.unit_of_work() as session:
        session.add(Experiment(name="old", status="stopped", arms=ARMS))
        session.add(Experiment(name="now", status="running", arms=ARMS))
    async with db.read_only() as session:
        found = await experiments.running(session)
        assert found is not None and found.name == "now" and found.arms == ARMS
