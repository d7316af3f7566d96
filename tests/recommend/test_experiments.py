"""Online A/B experiments: stable assignment of shoppers to model versions, starting and stopping
(validation changes nothing), and the report from impressions and the events that carry their
recommendationId (both databases; the API over HTTP)."""

from __future__ import annotations

import asyncio
import hashlib
import math
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import insert, select

from api.ids import encode_id
from domain.audit.models import AuditEntry
from domain.audit.service import Actor
from domain.catalog.models import Product
from domain.consents.models import Consent
from domain.db import Database
from domain.errors import DomainError
from domain.events.models import Event
from domain.recommend import experiments
from domain.recommend.models import Experiment, ModelVersion, RecommendationImpression
from domain.settings import Settings
from domain.sql import table
from domain.users.models import Customer
from tests.conftest import Api, error_codes
from tests.me.helpers import user_id
from tests.recommend.test_serving_api import add_version, seeded, serving_blob

__all__ = ["serving_blob"]  # the session fixture (a bundle trained once), shared with serving tests

ARMS = [{"version_id": 7, "weight": 0.7}, {"version_id": 9, "weight": 0.3}]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Serving reads the newest state on every request and writes impressions in the request.
    return settings.model_copy(
        update={
            "recommend_reload_seconds": 0,
            "recommend_catalog_max_age_ms": 0,
            "recommend_impression_flush_ms": 0,
        }
    )


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


# -- starting, stopping, listing -------------------------------------------------------------------

ADMIN = Actor(client_id="ops", subject="ops")
MODELS = "models:write"
READ = "recommendations:read"
START = """mutation($input: StartExperimentInput!) { startExperiment(input: $input) {
  experiment { id number name status arms { versionId versionNumber weight } createdBy }
  errors { code field message index } } }"""
STOP = """mutation($id: ID!) { stopExperiment(input: {id: $id}) {
  experiment { id status stoppedAt } errors { code field message } } }"""
REPORT = """query($id: ID!) { experimentReport(id: $id) {
  experiment { number status }
  otherImpressions
  arms { versionNumber weight impressions shoppers clicks ctr conversions conversionRate
         revenue { amount currency } ctrDifference { value low high note } } } }"""
TRACK = """mutation($events: [EventInput!]!) { trackEvents(input: {events: $events}) {
  accepted rejected unlinked errors { code field index } } }"""


def vid(pk: int) -> str:
    return encode_id("ModelVersion", pk)


async def make_versions(db: Database) -> dict[str, int]:
    """An active and a candidate version with serving bundles, a failed one, one without a
    bundle, and another candidate: ``{name: id}``."""
    specs = {
        "active": ("active", b"bundle"),
        "candidate": ("candidate", b"bundle"),
        "failed": ("failed", None),
        "unservable": ("candidate", None),
        "other": ("candidate", b"bundle"),
    }
    out = {}
    async with db.unit_of_work() as session:
        for name, (status, serving) in specs.items():
            row = ModelVersion(algorithm="popularity", status=status, serving=serving)
            session.add(row)
            await session.flush()
            assert row.id is not None
            out[name] = row.id
    return out


async def experiment_state(db: Database) -> tuple[list[tuple[str, str]], list[str]]:
    async with db.read_only() as session:
        x, a = table(Experiment), table(AuditEntry)
        rows = await session.execute(select(x.c.name, x.c.status).order_by(x.c.id))
        audits = await session.execute(
            select(a.c.action).where(a.c.action.like("experiment.%")).order_by(a.c.id)
        )
        return [(str(n), str(s)) for n, s in rows], [str(x) for x in audits.scalars()]


def arms(*pairs: tuple[str, float]) -> list[dict[str, object]]:
    return [{"versionId": v, "weight": w} for v, w in pairs]


async def test_start_refuses_bad_input_and_changes_nothing(api: Api, db: Database) -> None:
    v = await make_versions(db)
    ok = (vid(v["active"]), 1.0)
    cases: list[tuple[dict[str, object], list[tuple[str, list[str], int | None]]]] = [
        ({"name": "x", "arms": arms(ok)}, [("TOO_FEW", ["input", "arms"], None)]),
        (
            {"name": "x", "arms": arms(*[ok] * 6)},
            [("TOO_MANY", ["input", "arms"], None)],
        ),
        (
            {"name": "x", "arms": arms(ok, ok)},
            [("DUPLICATE", ["input", "arms", "1", "versionId"], 1)],
        ),
        (
            {"name": "x", "arms": arms(ok, (vid(v["candidate"]), 0.0))},
            [("INVALID_VALUE", ["input", "arms", "1", "weight"], 1)],
        ),
        (
            {"name": "x", "arms": arms((vid(v["candidate"]), -2.0), ok)},
            [("INVALID_VALUE", ["input", "arms", "0", "weight"], 0)],
        ),
        (
            {"name": "x", "arms": arms(ok, ("not-an-id", 1.0))},
            [("INVALID_VALUE", ["input", "arms", "1", "versionId"], 1)],
        ),
        (
            {"name": "x", "arms": arms(ok, (encode_id("Product", v["candidate"]), 1.0))},
            [("INVALID_VALUE", ["input", "arms", "1", "versionId"], 1)],
        ),
        (
            {"name": "x", "arms": arms(ok, (vid(99999), 1.0))},
            [("NOT_FOUND", ["input", "arms", "1", "versionId"], 1)],
        ),
        (
            {"name": "x", "arms": arms((vid(v["failed"]), 1.0), (vid(v["unservable"]), 1.0))},
            [
                ("NOT_SERVABLE", ["input", "arms", "0", "versionId"], 0),
                ("NOT_SERVABLE", ["input", "arms", "1", "versionId"], 1),
            ],
        ),
        (
            {"name": "  ", "arms": arms(ok, (vid(v["candidate"]), 1.0))},
            [("INVALID", ["input", "name"], None)],
        ),
        (
            {"name": "n" * 201, "arms": arms(ok, (vid(v["candidate"]), 1.0))},
            [("TOO_LONG", ["input", "name"], None)],
        ),
    ]
    for given, expected in cases:
        body = await api.gql(START, {"input": given}, scopes=MODELS)
        payload = body["data"]["startExperiment"]
        assert payload["experiment"] is None, given
        got = [(e["code"], e["field"], e["index"]) for e in payload["errors"]]
        assert got == expected, given
    assert await experiment_state(db) == ([], [])
    # A token without models:write is refused outright; nothing changed either.
    denied = await api.gql(
        START,
        {"input": {"name": "x", "arms": arms(ok, (vid(v["candidate"]), 1.0))}},
        scopes="events:write recommendations:read",
    )
    assert error_codes(denied) == ["FORBIDDEN"] and denied["data"] is None
    assert await experiment_state(db) == ([], [])


async def test_start_stop_list_and_one_running_at_a_time(api: Api, db: Database) -> None:
    v = await make_versions(db)
    given = {
        "name": "candidate vs active",
        "arms": arms((vid(v["active"]), 3), (vid(v["candidate"]), 1)),
    }
    body = await api.gql(START, {"input": given}, scopes=MODELS)
    started = body["data"]["startExperiment"]
    assert started["errors"] == []
    exp = started["experiment"]
    assert exp["name"] == "candidate vs active" and exp["status"] == "RUNNING"
    assert [(a["versionNumber"], a["weight"]) for a in exp["arms"]] == [
        (v["active"], 0.75),
        (v["candidate"], 0.25),
    ]
    assert exp["arms"][0]["versionId"] == vid(v["active"])
    assert exp["createdBy"].count(":") == 1  # client:subject of the token
    async with db.read_only() as session:
        now = await experiments.running(session)
        assert now is not None and now.id == exp["number"]
        assert now.arms == [
            {"version_id": v["active"], "weight": 0.75},
            {"version_id": v["candidate"], "weight": 0.25},
        ]
    # A second one while the first runs: CONFLICT, nothing changed.
    again = {"name": "second", "arms": arms((vid(v["other"]), 1), (vid(v["candidate"]), 1))}
    body = await api.gql(START, {"input": again}, scopes=MODELS)
    assert [e["code"] for e in body["data"]["startExperiment"]["errors"]] == ["CONFLICT"]
    assert await experiment_state(db) == (
        [("candidate vs active", "running")],
        ["experiment.start"],
    )
    # Stopping: bad and unknown ids are refused; then stopped once, not twice.
    for bad, code in (("nope", "INVALID_VALUE"), (encode_id("Experiment", 999), "NOT_FOUND")):
        body = await api.gql(STOP, {"id": bad}, scopes=MODELS)
        assert [e["code"] for e in body["data"]["stopExperiment"]["errors"]] == [code]
    body = await api.gql(STOP, {"id": exp["id"]}, scopes=MODELS)
    stopped = body["data"]["stopExperiment"]
    assert stopped["errors"] == [] and stopped["experiment"]["status"] == "STOPPED"
    assert stopped["experiment"]["stoppedAt"] is not None
    body = await api.gql(STOP, {"id": exp["id"]}, scopes=MODELS)
    assert [e["code"] for e in body["data"]["stopExperiment"]["errors"]] == ["NOT_RUNNING"]
    async with db.read_only() as session:
        assert await experiments.running(session) is None
    # Now the second may start.
    body = await api.gql(START, {"input": again}, scopes=MODELS)
    assert body["data"]["startExperiment"]["errors"] == []
    assert await experiment_state(db) == (
        [("candidate vs active", "stopped"), ("second", "running")],
        ["experiment.start", "experiment.stop", "experiment.start"],
    )
    listing = """query($status: ExperimentStatus, $after: String) {
      experiments(first: 1, status: $status, after: $after) {
        totalCount nodes { name status } pageInfo { hasNextPage endCursor } } }"""
    page = (await api.gql(listing, scopes=MODELS))["data"]["experiments"]
    assert page["totalCount"] == 2 and page["nodes"] == [{"name": "second", "status": "RUNNING"}]
    assert page["pageInfo"]["hasNextPage"]
    after = page["pageInfo"]["endCursor"]
    page = (await api.gql(listing, {"after": after}, scopes=MODELS))["data"]["experiments"]
    assert page["nodes"] == [{"name": "candidate vs active", "status": "STOPPED"}]
    page = (await api.gql(listing, {"status": "STOPPED"}, scopes=MODELS))["data"]["experiments"]
    assert page["totalCount"] == 1
    denied = await api.gql(listing, scopes="recommendations:read")
    assert error_codes(denied) == ["FORBIDDEN"]


async def test_two_starts_at_once_one_wins_the_other_conflicts(db: Database, backend: str) -> None:
    if backend != "postgres":
        pytest.skip("SQLite runs one writer at a time: starts cannot overlap")
    v = await make_versions(db)
    two = [{"version_id": v["active"], "weight": 1}, {"version_id": v["candidate"], "weight": 1}]
    async with db.unit_of_work() as first:
        await experiments.start(first, ADMIN, "first", two)

        async def second() -> str:
            try:
                async with db.unit_of_work() as session:
                    await experiments.start(session, ADMIN, "second", two)
            except DomainError as exc:
                return exc.errors[0].code
            return "started"

        racing = asyncio.create_task(second())
        await asyncio.sleep(0.3)  # the second waits on the first's uncommitted running row
        assert not racing.done()
    assert await racing == "CONFLICT"
    assert await experiment_state(db) == ([("first", "running")], ["experiment.start"])


# -- the report ------------------------------------------------------------------------------------


def test_ctr_difference_interval() -> None:
    # Given 100/1000 and 150/1000 clicks: d = 0.05, se = sqrt(.1*.9/1000 + .15*.85/1000).
    d = experiments.difference(100, 1000, 150, 1000)
    se = math.sqrt(0.1 * 0.9 / 1000 + 0.15 * 0.85 / 1000)
    assert d.value == pytest.approx(0.05) and d.note is None
    assert d.low == pytest.approx(0.05 - 1.959964 * se) and d.high == pytest.approx(
        0.05 + 1.959964 * se
    )
    assert d.low is not None and d.low > 0  # this difference is significant
    few = experiments.difference(2, 10, 3, 10)
    assert few.value == pytest.approx(0.1) and few.low is None and few.high is None
    assert few.note is not None and few.note.startswith("not enough data")
    empty = experiments.difference(0, 0, 1, 10)
    assert empty.value is None and empty.note is not None


async def seed_shop(db: Database) -> None:
    now = datetime.now(UTC)
    async with db.unit_of_work() as session:
        await session.execute(
            insert(table(Product)),
            [
                {
                    "id": n,
                    "external_id": f"p{n}",
                    "title": f"product {n}",
                    "description": "",
                    "price": Decimal("9.90"),
                    "currency": "EUR",
                    "active": True,
                    "attributes": {},
                    "created_at": now,
                    "updated_at": now,
                }
                for n in (1, 2, 3)
            ],
        )
        await session.execute(
            insert(table(Customer)),
            [
                {
                    "id": n,
                    "external_id": f"c{n}",
                    "attributes": {},
                    "created_at": now,
                    "updated_at": now,
                }
                for n in (1, 2, 3, 4)
            ],
        )


async def test_report_counts_attributed_clicks_conversions_and_revenue(
    api: Api, db: Database
) -> None:
    await seed_shop(db)
    v = await make_versions(db)
    body = await api.gql(
        START,
        {
            "input": {
                "name": "ab",
                "arms": arms((vid(v["active"]), 1), (vid(v["candidate"]), 1)),
            }
        },
        scopes=MODELS,
    )
    exp = body["data"]["startExperiment"]["experiment"]
    eid = exp["number"]
    now = datetime.now(UTC)
    async with db.unit_of_work() as session:
        old = Experiment(name="old", status="stopped", arms=ARMS, stopped_at=now)
        session.add(old)
        await session.flush()
        old_id = old.id
        session.add(
            Consent(
                customer_id=3,
                purpose="analytics",
                granted=False,
                source="test",
                policy_version="1",
                actor_client_id="test",
            )
        )

    def imp(
        version: int, experiment: int | None, customer: int | None = None, anon: str | None = None
    ) -> RecommendationImpression:
        return RecommendationImpression(
            id=uuid.uuid4().hex,
            customer_id=customer,
            anonymous_id=anon,
            surface="recommendations",
            scenario="HOME",
            model_version_id=version,
            experiment_id=experiment,
            personal=True,
            product_ids=[1, 2, 3],
        )

    a1 = imp(v["active"], eid, customer=1)
    a2 = imp(v["active"], eid, customer=1)  # same shopper again
    a3 = imp(v["active"], eid, anon="anon-1")
    b1 = imp(v["candidate"], eid, customer=2)
    b2 = imp(v["candidate"], eid, customer=3)
    later = imp(v["candidate"], eid, customer=4)
    later.served_at = now + timedelta(hours=1)  # events received before it do not count
    other_version = imp(v["other"], eid, customer=4)  # a fallback outside the arms
    no_experiment = imp(v["active"], None, customer=1)
    old_experiment = imp(v["active"], old_id, customer=1)
    rows = [a1, a2, a3, b1, b2, later, other_version, no_experiment, old_experiment]
    async with db.unit_of_work() as session:
        session.add_all(rows)

    n = iter(range(1000))

    def ev(kind: str, rid: str, user: str | None = None, **extra: object) -> dict[str, object]:
        item: dict[str, object] = {"clientEventId": f"e{next(n)}", "type": kind}
        if user is not None:
            item["userExternalId"] = user
        else:
            item["anonymousId"] = "anon-1"
        if kind in ("view", "add_to_cart", "favorite"):
            item["productExternalId"] = "p1"
        item["recommendationId"] = rid
        item.update(extra)
        return item

    eur = {"value": "10.00", "currency": "EUR"}
    events = [
        ev("view", a1.id, "c1"),
        ev("add_to_cart", a1.id, "c1"),  # a second click on a1: counted once
        ev("view", a1.id, "c1"),
        ev("purchase", a1.id, "c1", **eur),
        ev("view", a3.id),
        ev("purchase", a3.id, value="5.50", currency="EUR"),
        ev("favorite", b1.id, "c2"),
        ev("purchase", b1.id, "c2", value="20.00", currency="EUR"),
        ev("purchase", b1.id, "c2", value="2.50", currency="USD"),
        ev("search", b2.id, "c3", query="shoes"),  # not a click
        ev("view", b2.id, "c3"),  # c3 refused analytics: stored unlinked, not attributed
        ev("view", later.id, "c4"),
        ev("purchase", later.id, "c4", **eur),
        ev("view", other_version.id, "c4"),
        ev("view", no_experiment.id, "c1"),
        ev("purchase", no_experiment.id, "c1", **eur),
        ev("view", old_experiment.id, "c1"),
        ev("view", uuid.uuid4().hex, "c1"),  # no such impression
        ev("view", "NOT-A-RECOMMENDATION", "c1"),  # refused
        ev("view", a2.id.upper(), "c1"),  # refused: lowercase hex only
    ]
    body = await api.gql(TRACK, {"events": events}, scopes="events:write")
    tracked = body["data"]["trackEvents"]
    assert tracked["accepted"] == len(events) - 2 and tracked["rejected"] == 2
    assert tracked["errors"] == [
        {"code": "INVALID_VALUE", "field": ["events", "18", "recommendationId"], "index": 18},
        {"code": "INVALID_VALUE", "field": ["events", "19", "recommendationId"], "index": 19},
    ]
    assert tracked["unlinked"] == 2  # both of c3's events
    async with db.read_only() as session:
        stored = await session.execute(
            select(table(Event).c.properties).where(table(Event).c.client_event_id == "e0")
        )
        assert stored.scalar_one() == {"recommendation_id": a1.id}

    body = await api.gql(REPORT, {"id": exp["id"]}, scopes=MODELS)
    report = body["data"]["experimentReport"]
    assert report["experiment"] == {"number": eid, "status": "RUNNING"}
    assert report["otherImpressions"] == 1
    first, second = report["arms"]
    assert first == {
        "versionNumber": v["active"],
        "weight": 0.5,
        "impressions": 3,
        "shoppers": 2,
        "clicks": 2,
        "ctr": pytest.approx(2 / 3),
        "conversions": 2,
        "conversionRate": pytest.approx(2 / 3),
        "revenue": [{"amount": "15.50", "currency": "EUR"}],
        "ctrDifference": None,
    }
    diff = second.pop("ctrDifference")
    assert second == {
        "versionNumber": v["candidate"],
        "weight": 0.5,
        "impressions": 3,
        "shoppers": 3,
        "clicks": 1,
        "ctr": pytest.approx(1 / 3),
        "conversions": 1,
        "conversionRate": pytest.approx(1 / 3),
        "revenue": [
            {"amount": "20.00", "currency": "EUR"},
            {"amount": "2.50", "currency": "USD"},
        ],
    }
    assert diff["value"] == pytest.approx(1 / 3 - 2 / 3)
    assert diff["low"] is None and diff["high"] is None
    assert diff["note"].startswith("not enough data")
    # Unknown experiment: null; malformed id: a client error; shopper scopes: refused.
    body = await api.gql(REPORT, {"id": encode_id("Experiment", 999)}, scopes=MODELS)
    assert body["data"]["experimentReport"] is None
    body = await api.gql(REPORT, {"id": "garbage"}, scopes=MODELS)
    assert error_codes(body) == ["BAD_USER_INPUT"]
    body = await api.gql(REPORT, {"id": exp["id"]}, scopes="recommendations:read")
    assert error_codes(body) == ["FORBIDDEN"]


async def test_served_answers_and_tracked_events_make_the_report(
    api: Api, db: Database, serving_blob: bytes
) -> None:
    """The whole loop over HTTP: start an experiment, ask for recommendations (each shopper gets
    its hashed arm), send views and purchases carrying the returned recommendationIds, read the
    report."""
    customers = await seeded(db)
    control = await add_version(db, serving_blob)
    challenger = await add_version(db, serving_blob, status="candidate")
    body = await api.gql(
        START,
        {"input": {"name": "loop", "arms": arms((vid(control), 1), (vid(challenger), 1))}},
        scopes=MODELS,
    )
    exp = body["data"]["startExperiment"]["experiment"]
    ask = """query($input: RecommendationsInput!) { recommendations(input: $input) {
      recommendationId modelVersion items { product { id } } } }"""
    served: Counter[int] = Counter()
    shoppers: dict[int, set[int]] = {control: set(), challenger: set()}
    clicks: Counter[int] = Counter()
    buys: Counter[int] = Counter()
    both = [{"version_id": control, "weight": 0.5}, {"version_id": challenger, "weight": 0.5}]
    events: list[dict[str, object]] = []
    for n in range(16):
        customer = customers[f"c{n}"]
        body = await api.gql(ask, {"input": {"userId": user_id(customer)}}, scopes=READ)
        answer = body["data"]["recommendations"]
        version = answer["modelVersion"]
        assert version == experiments.arm_for(exp["number"], both, f"c:{customer}")
        served[version] += 1
        shoppers[version].add(customer)
        rid = answer["recommendationId"]
        if n % 2 == 0:  # viewed twice: one click
            clicks[version] += 1
            events += [
                {
                    "clientEventId": f"v{n}-{k}",
                    "type": "view",
                    "userExternalId": f"c{n}",
                    "productExternalId": "p1",
                    "recommendationId": rid,
                }
                for k in range(2)
            ]
        if n % 4 == 0:
            buys[version] += 1
            events.append(
                {
                    "clientEventId": f"b{n}",
                    "type": "purchase",
                    "userExternalId": f"c{n}",
                    "value": "12.50",
                    "currency": "EUR",
                    "recommendationId": rid,
                }
            )
    assert served[control] and served[challenger], "both arms served some of the 16 shoppers"
    body = await api.gql(TRACK, {"events": events}, scopes="events:write")
    assert body["data"]["trackEvents"]["accepted"] == len(events)
    body = await api.gql(REPORT, {"id": exp["id"]}, scopes=MODELS)
    report = body["data"]["experimentReport"]
    got = {
        a["versionNumber"]: (a["impressions"], a["shoppers"], a["clicks"], a["conversions"])
        for a in report["arms"]
    }
    assert got == {
        v: (served[v], len(shoppers[v]), clicks[v], buys[v]) for v in (control, challenger)
    }
    for a in report["arms"]:
        n = buys[a["versionNumber"]]
        assert a["revenue"] == ([{"amount": f"{12.5 * n:.2f}", "currency": "EUR"}] if n else [])
    assert report["otherImpressions"] == 0
