"""The revocation lists' refresh: one request re-reads them, the others do not queue behind it while
the lists are less than two periods old (docs/benchmarks.md, "The p99 tail")."""

from __future__ import annotations

import asyncio
import time

import pytest

from api.auth.verifier import InvalidTokenError, TokenVerifier
from tests.conftest import Api


async def test_a_refresh_in_progress_does_not_hold_up_other_requests(api: Api) -> None:
    token = await api.token("catalog:read")
    settings = api.app.state.services.settings.model_copy(update={"auth_cache_seconds": 1.0})
    verifier = TokenVerifier(settings, api.app.state.keys, api.db)
    principal = await verifier.verify(token)  # the first load waits for the read
    assert verifier._loaded_at > float("-inf")

    async with verifier._lock:  # another request is re-reading the lists
        verifier._loaded_at = time.monotonic() - 1.5  # stale, under two periods
        assert await asyncio.wait_for(verifier.verify(token), 5) == principal
        verifier.note_revoked(principal.jti)  # what is known is still applied
        with pytest.raises(InvalidTokenError):
            await asyncio.wait_for(verifier.verify(token), 5)
        verifier.revoked.discard(principal.jti)
        verifier._loaded_at = time.monotonic() - 2.5  # two periods old: wait for the read
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(verifier.verify(token), 0.3)

    # nobody refreshing: a stale list is re-read by the request that finds it
    verifier._loaded_at = time.monotonic() - 1.5
    before = verifier._loaded_at
    assert await verifier.verify(token) == principal
    assert verifier._loaded_at > before
