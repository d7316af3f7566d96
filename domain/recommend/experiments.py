"""Online A/B experiments: traffic split between model versions by a stable hash of the shopper.

Assignment (``arm_for``): the shopper's key is ``c:<customer id>`` for a known customer, else
``a:<anonymous id>``. ``sha256(f"{experiment_id}:{key}")``, its first 8 bytes read as a big-endian
unsigned integer and divided by 2**64, is a number ``u`` uniform in [0, 1); the arm is the first
whose cumulative normalised weight exceeds ``u``. Nothing is stored per shopper and nothing
depends on the process, the Python hash seed or the time, so every API process answers the same
for the same shopper for the life of the experiment; a new experiment (a new id) reshuffles.

Starting (``start``) takes 2 to 5 arms: an experiment compares versions, and one arm would serve a
version to everyone without promotion's NDCG@10 check (promote it instead). Each arm's version
must exist, not have failed, and have a serving bundle; candidates are allowed (that is what an
experiment is for). At most one experiment runs at a time: a second ``start`` is a CONFLICT, and
the partial unique index on ``experiment.status`` decides a race. A refused call changes nothing.

The report (``report``) counts, per arm, the experiment's impressions and the events that carry
their ``recommendationId`` (``properties.recommendation_id``) and reached the server after the
answer was served: a click is an impression with at least one view, add_to_cart, favorite or
message_click event (counted once however many), a conversion one with at least one purchase
event; revenue sums those purchases' values per currency. Every figure is one SQL aggregate in
the database. Events are looked up from a day before the experiment started (``occurredAt``, the
indexed time; a client clock may be off by that much).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, distinct, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col

from domain.audit import service as audit
from domain.audit.service import Actor
from domain.columns import utcnow
from domain.errors import DomainError, FieldError
from domain.events.models import Event
from domain.recommend.models import Experiment, ModelVersion, RecommendationImpression
from domain.sql import table

_SCALE = float(1 << 64)


def unit(experiment_id: int, key: str) -> float:
    """The shopper's stable point in [0, 1) for this experiment."""
    digest = hashlib.sha256(f"{experiment_id}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def arm_for(experiment_id: int, arms: Sequence[dict[str, Any]], key: str) -> int:
    """The model version id this shopper is served under the experiment (see module docstring).
    ``arms`` is the experiment's ``[{"version_id", "weight"}]`` in stored order."""
    if not arms:
        raise ValueError("an experiment has at least one arm")
    total = sum(float(a["weight"]) for a in arms)
    point = unit(experiment_id, key) * total
    running = 0.0
    for arm in arms:
        running += float(arm["weight"])
        if point < running:
            return int(arm["version_id"])
    return int(arms[-1]["version_id"])  # float rounding at the very top


async def running(session: AsyncSession) -> Experiment | None:
    """The experiment now running, if any (at most one: a partial unique index)."""
    q = select(Experiment).where(col(Experiment.status) == "running").limit(1)
    return (await session.execute(q)).scalars().first()


# -- starting and stopping -------------------------------------------------------------------------

MIN_ARMS, MAX_ARMS = 2, 5
MAX_NAME = 200
CLICK_TYPES = ("view", "add_to_cart", "favorite", "message_click")
CONVERSION_TYPE = "purchase"
LOOKBACK = timedelta(days=1)
Z95 = 1.959963984540054
MIN_COUNT = 5  # clicks and non-clicks per arm before the normal approximation is trusted


def _who(actor: Actor) -> str:
    return f"{actor.client_id}:{actor.subject}"[:200]


def _check_arms(arms: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[FieldError]]:
    """The arms with normalised weights, or the errors (each naming the arm's index)."""
    errors: list[FieldError] = []
    if not MIN_ARMS <= len(arms) <= MAX_ARMS:
        code = "TOO_FEW" if len(arms) < MIN_ARMS else "TOO_MANY"
        message = f"an experiment has {MIN_ARMS} to {MAX_ARMS} arms"
        if len(arms) == 1:
            message += " (to serve one version to everyone, promote it)"
        return [], [FieldError(code, message, ("input", "arms"))]
    seen: set[int] = set()
    for n, arm in enumerate(arms):
        version, weight = arm.get("version_id"), arm.get("weight")
        if version in seen:
            errors.append(
                FieldError(
                    "DUPLICATE",
                    f"version {version} is in more than one arm",
                    ("input", "arms", str(n), "versionId"),
                    n,
                )
            )
        seen.add(version)  # type: ignore[arg-type]
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not math.isfinite(weight)
            or weight <= 0
        ):
            errors.append(
                FieldError(
                    "INVALID_VALUE",
                    "weight must be a finite number above 0",
                    ("input", "arms", str(n), "weight"),
                    n,
                )
            )
    if errors:
        return [], errors
    total = math.fsum(float(a["weight"]) for a in arms)
    if not math.isfinite(total):
        return [], [FieldError("INVALID_VALUE", "weights are too large", ("input", "arms"))]
    return [
        {"version_id": int(a["version_id"]), "weight": float(a["weight"]) / total} for a in arms
    ], []


async def start(
    session: AsyncSession, actor: Actor, name: str, arms: Sequence[Mapping[str, Any]]
) -> Experiment:
    """Start an experiment splitting traffic between ``arms`` (``[{"version_id", "weight"}]``;
    weights are normalised to sum 1, the first arm is the control the report compares with).
    Refused with every error found and nothing changed: name (INVALID, TOO_LONG), arms (TOO_FEW,
    TOO_MANY, DUPLICATE, INVALID_VALUE), versions (NOT_FOUND, NOT_SERVABLE), CONFLICT when one runs.
    """
    errors: list[FieldError] = []
    if not isinstance(name, str) or not name.strip():
        errors.append(FieldError("INVALID", "name must not be blank", ("input", "name")))
    elif len(name) > MAX_NAME:
        errors.append(
            FieldError("TOO_LONG", f"name is at most {MAX_NAME} characters", ("input", "name"))
        )
    normalised, arm_errors = _check_arms(arms)
    errors += arm_errors
    if normalised:
        ids = [a["version_id"] for a in normalised]
        m = table(ModelVersion)
        rows = await session.execute(
            select(m.c.id, m.c.status, m.c.serving.is_not(None)).where(m.c.id.in_(ids))
        )
        found = {int(i): (str(s), bool(has)) for i, s, has in rows}
        for n, vid in enumerate(ids):
            path = ("input", "arms", str(n), "versionId")
            if vid not in found:
                errors.append(FieldError("NOT_FOUND", f"no model version {vid}", path, n))
            elif found[vid][0] == "failed":
                errors.append(FieldError("NOT_SERVABLE", f"version {vid} failed to train", path, n))
            elif not found[vid][1]:
                errors.append(
                    FieldError(
                        "NOT_SERVABLE", f"version {vid} has no serving bundle to serve", path, n
                    )
                )
    if errors:
        raise DomainError(errors)
    current = await running(session)
    if current is not None:
        raise DomainError.one(
            "CONFLICT",
            f"experiment {current.id} ({current.name!r}) is running; stop it first",
            "input",
        )
    row = Experiment(name=name, status="running", arms=normalised, created_by=_who(actor))
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError as exc:
        # Another experiment started meanwhile (the partial unique index).
        raise DomainError.one(
            "CONFLICT", "another experiment was started at the same time; stop it first", "input"
        ) from exc
    await audit.record(
        session,
        actor,
        "experiment.start",
        "Experiment",
        row.id,
        details={"name": name, "arms": normalised},
    )
    return row


async def stop(session: AsyncSession, actor: Actor, experiment_id: int) -> Experiment:
    """Stop a running experiment (traffic goes back to the active version). NOT_FOUND for an
    unknown id, NOT_RUNNING for one already stopped; nothing changed then."""
    path = ("input", "id")
    row = await session.get(Experiment, experiment_id)
    if row is None:
        raise DomainError.one("NOT_FOUND", "no such experiment", *path)
    at = utcnow()
    x = table(Experiment)
    done = await session.execute(
        update(x)
        .where(x.c.id == experiment_id, x.c.status == "running")
        .values(status="stopped", stopped_at=at)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise DomainError.one(
            "NOT_RUNNING", f"experiment {experiment_id} is not running (already stopped)", *path
        )
    set_committed_value(row, "status", "stopped")
    set_committed_value(row, "stopped_at", at)
    await audit.record(session, actor, "experiment.stop", "Experiment", row.id, fields=["status"])
    return row


async def get(session: AsyncSession, experiment_id: int) -> Experiment | None:
    return await session.get(Experiment, experiment_id)


async def list_experiments(
    session: AsyncSession, *, status: str | None, after: int | None, first: int
) -> list[Experiment]:
    """Newest first; ``after`` is the id of the last row of the previous page."""
    q = select(Experiment)
    if status is not None:
        q = q.where(col(Experiment.status) == status)
    if after is not None:
        q = q.where(col(Experiment.id) < after)
    rows = await session.execute(q.order_by(col(Experiment.id).desc()).limit(first))
    return list(rows.scalars())


async def count_experiments(session: AsyncSession, *, status: str | None) -> int:
    q = select(func.count()).select_from(table(Experiment))
    if status is not None:
        q = q.where(table(Experiment).c.status == status)
    return int((await session.execute(q)).scalar_one())


# -- the report ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Difference:
    """CTR of an arm minus the first arm's, with its 95% interval (two-proportion normal
    approximation, unpooled); ``low``/``high`` are None with ``note`` when data are too few."""

    value: float | None
    low: float | None
    high: float | None
    note: str | None


@dataclass(frozen=True, slots=True)
class ArmReport:
    version_id: int
    weight: float
    impressions: int
    shoppers: int
    clicks: int
    conversions: int
    revenue: dict[str, Decimal]  # currency -> sum
    ctr_difference: Difference | None  # None for the first arm

    @property
    def ctr(self) -> float | None:
        return self.clicks / self.impressions if self.impressions else None

    @property
    def conversion_rate(self) -> float | None:
        return self.conversions / self.impressions if self.impressions else None


@dataclass(frozen=True, slots=True)
class Report:
    experiment: Experiment
    arms: list[ArmReport]
    # Impressions of the experiment served by a version that is not one of its arms (a fallback
    # to the active version, for instance): counted here, not in any arm.
    other_impressions: int


def difference(clicks_a: int, n_a: int, clicks_b: int, n_b: int) -> Difference:
    """CTR of b minus CTR of a with a 95% interval, or a note when the counts are too small for
    the normal approximation (fewer than 5 clicks or 5 non-clicks in either arm)."""
    if n_a == 0 or n_b == 0:
        return Difference(None, None, None, "not enough data: an arm has no impressions")
    p_a, p_b = clicks_a / n_a, clicks_b / n_b
    small = min(clicks_a, n_a - clicks_a, clicks_b, n_b - clicks_b)
    if small < MIN_COUNT:
        return Difference(
            p_b - p_a,
            None,
            None,
            f"not enough data: each arm needs at least {MIN_COUNT} clicks and {MIN_COUNT} "
            "impressions without a click",
        )
    se = math.sqrt(p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b)
    d = p_b - p_a
    return Difference(d, d - Z95 * se, d + Z95 * se, None)


async def report(session: AsyncSession, experiment_id: int) -> Report | None:
    """Per arm: impressions, shoppers, clicks, conversions, revenue and the CTR difference to the
    first arm (see the module docstring for what counts). None for an unknown experiment."""
    exp = await session.get(Experiment, experiment_id)
    if exp is None:
        return None
    i, e = table(RecommendationImpression), table(Event)
    version = i.c.model_version_id
    served = (
        select(
            version,
            func.count(),
            func.count(distinct(i.c.customer_id))
            + func.count(distinct(case((i.c.customer_id.is_(None), i.c.anonymous_id)))),
        )
        .where(i.c.experiment_id == experiment_id)
        .group_by(version)
    )
    counts = {v: (int(n), int(s)) for v, n, s in await session.execute(served)}
    rid = e.c.properties["recommendation_id"].as_string()
    attributed = (
        select(
            rid.label("rid"),
            e.c.type.label("type"),
            e.c.value.label("value"),
            e.c.currency.label("currency"),
            e.c.received_at.label("received_at"),
        )
        .where(
            e.c.type.in_((*CLICK_TYPES, CONVERSION_TYPE)),
            e.c.occurred_at >= exp.started_at - LOOKBACK,
            rid.is_not(None),
        )
        .subquery()
    )
    joined = i.join(
        attributed,
        and_(attributed.c.rid == i.c.id, attributed.c.received_at >= i.c.served_at),
    )
    is_click = attributed.c.type.in_(CLICK_TYPES)
    is_purchase = attributed.c.type == CONVERSION_TYPE
    outcomes = (
        select(
            version,
            func.count(distinct(case((is_click, i.c.id)))),
            func.count(distinct(case((is_purchase, i.c.id)))),
        )
        .select_from(joined)
        .where(i.c.experiment_id == experiment_id)
        .group_by(version)
    )
    results = {v: (int(c), int(p)) for v, c, p in await session.execute(outcomes)}
    money = (
        select(version, attributed.c.currency, func.sum(attributed.c.value))
        .select_from(joined)
        .where(
            i.c.experiment_id == experiment_id,
            is_purchase,
            attributed.c.currency.is_not(None),
        )
        .group_by(version, attributed.c.currency)
    )
    revenue: dict[int | None, dict[str, Decimal]] = {}
    for v, currency, total in await session.execute(money):
        revenue.setdefault(v, {})[str(currency)] = Decimal(str(total)).quantize(Decimal("0.01"))
    arms: list[ArmReport] = []
    for arm in exp.arms:
        vid = int(arm["version_id"])
        n, shoppers = counts.get(vid, (0, 0))
        clicks, conversions = results.get(vid, (0, 0))
        diff = None
        if arms:
            first = arms[0]
            diff = difference(first.clicks, first.impressions, clicks, n)
        arms.append(
            ArmReport(
                version_id=vid,
                weight=float(arm["weight"]),
                impressions=n,
                shoppers=shoppers,
                clicks=clicks,
                conversions=conversions,
                revenue=dict(sorted(revenue.get(vid, {}).items())),
                ctr_difference=diff,
            )
        )
    arm_ids = {a.version_id for a in arms}
    other = sum(n for v, (n, _) in counts.items() if v not in arm_ids)
    return Report(exp, arms, other)
