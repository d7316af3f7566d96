"""Task functions shared by the ARQ worker and the in-process runner. Each takes ids, opens its
own unit of work and calls domain services; each is safe to run twice."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from domain.imports.service import run_import


async def import_file(ctx: dict[str, Any], task_id: str) -> dict[str, Any]:
    """Run an import task recorded in ``task_run`` (users, products, orders or events)."""
    return await run_import(ctx["db"], task_id)


async def build_export(ctx: dict[str, Any], export_id: str) -> str:
    """Build a requested data export (one shopper's complete JSON document, gzip-compressed)."""
    from domain.keys import build_keys
    from domain.privacy.export import build_export as build

    settings = ctx["settings"]
    keys = ctx.get("keys") or build_keys(settings)
    return await build(ctx["db"], keys, export_id, ttl_days=settings.export_ttl_days)


async def purge_exports(ctx: dict[str, Any]) -> int:
    """Delete data exports past their expiry; returns how many."""
    from domain.privacy.export import purge_expired

    async with ctx["db"].unit_of_work() as session:
        return await purge_expired(session)


async def purge_events(ctx: dict[str, Any]) -> dict[str, Any]:
    """Roll up raw events past retention into daily aggregates and delete them (per day, each
    in one transaction: safe to interrupt and to run twice)."""
    from domain.events.retention import purge

    return (await purge(ctx["db"], ctx["settings"])).as_dict()


async def recompute_profiles(ctx: dict[str, Any]) -> dict[str, Any]:
    """Recompute every shopper profile (RFM, lifecycle, CLV, interests); returns the summary with
    the fitted CLV model's parameters. Each chunk commits on its own: safe to interrupt and rerun."""
    import logging

    from domain.profiles.service import recompute

    result = (await recompute(ctx["db"], ctx["settings"])).summary()
    logging.getLogger("precis.profiles").info("profiles recomputed %s", result)
    # Segments on profile fields (RFM, lifecycle, CLV, spend level) follow the new profiles.
    from domain.segments.membership import refresh_all

    result["segments"] = (await refresh_all(ctx["db"], only=lambda c: c.deps.profile)).as_dict()
    return result


async def refresh_segments(
    ctx: dict[str, Any], segment_ids: list[int] | None = None
) -> dict[str, Any]:
    """Refresh every active dynamic segment's membership (or only ``segment_ids``), each segment in
    its own transaction: safe to interrupt and to run twice."""
    import logging

    from domain.segments.membership import refresh_all

    summary = await refresh_all(ctx["db"], segment_ids=segment_ids, skip_locked=True)
    result = summary.as_dict()
    logging.getLogger("precis.segments").info("segments refreshed %s", result)
    return result


async def reevaluate_segments(
    ctx: dict[str, Any], who: dict[str, Any], changes: dict[str, Any]
) -> dict[str, int]:
    """Re-evaluate the segments ``changes`` can affect for the shoppers ``who`` names (queued by
    the API after a commit; see ``domain.segments.membership.queue_reevaluation``)."""
    from domain.segments.membership import reevaluate_job

    return await reevaluate_job(ctx["db"], who, changes)


async def refresh_model(ctx: dict[str, Any], task_id: str | None = None) -> dict[str, Any]:
    """Build the interactions, train and evaluate the hybrid and store a candidate model version
    (``trainModel`` passes its task id; the schedule runs without one and gets a task named after
    the job). Progress and the outcome are on the ``task_run`` row."""
    from domain.recommend.service import run_refresh

    ident = task_id or f"refresh_model:{ctx.get('job_id') or 'manual'}"
    return await run_refresh(ctx["db"], ctx["settings"], ident[:128])


TASKS: list[Callable[..., Awaitable[Any]]] = [
    import_file,
    build_export,
    purge_exports,
    purge_events,
    recompute_profiles,
    refresh_segments,
    reevaluate_segments,
    refresh_model,
]
