"""Consent: events of a shopper without analytics consent are stored unlinked (no customer, no
anonymous id, no properties) and counted as such; the latest record wins; the default for "no
record" is a setting."""

from __future__ import annotations

from typing import Any

from domain.consents.policy import analytics_withheld
from tests.conftest import Api, serve
from tests.events.helpers import TRACK, W, consent, profile, seed, stored, track, view


async def test_events_without_analytics_consent_are_stored_unlinked(
    api: Api, settings: Any
) -> None:
    ids = await seed(api.db, settings)
    await consent(api.db, ids["c-2"], False)
    result = await track(
        api,
        [
            view(1, properties={"page": "/p/1"}),
            view(2, userExternalId="c-2", anonymousId="b-2", properties={"page": "/p/1"}),
            {
                "clientEventId": "e-3",
                "type": "review",
                "userExternalId": "c-2",
                "productExternalId": "p-1",
                "rating": 5,
                "properties": {"text": "lovely"},
            },
        ],
    )
    assert (result["accepted"], result["unlinked"]) == (3, 2)
    rows = {e.client_event_id: e for e in await stored(api.db)}
    assert rows["e-1"].customer_id == ids["c-1"] and rows["e-1"].properties == {"page": "/p/1"}
    for key in ("e-2", "e-3"):
        assert (rows[key].customer_id, rows[key].anonymous_id) == (None, None)
        assert rows[key].product_id == ids["p-1"]  # product counts stay right
    assert rows["e-2"].properties == {}
    assert rows["e-3"].properties == {"rating": 5}
    assert await profile(api.db, ids["c-2"]) is None


async def test_the_latest_consent_record_wins(api: Api, settings: Any) -> None:
    ids = await seed(api.db, settings)
    await consent(api.db, ids["c-1"], False)
    await consent(api.db, ids["c-1"], True)
    await consent(api.db, ids["c-2"], True)
    await consent(api.db, ids["c-2"], False)
    async with api.db.read_only() as session:
        withheld = await analytics_withheld(session, {ids["c-1"], ids["c-2"], ids["c-3"]}, settings)
    assert withheld == {ids["c-2"]}
    strict = settings.model_copy(update={"analytics_consent_default": False})
    async with api.db.read_only() as session:
        withheld = await analytics_withheld(session, {ids["c-1"], ids["c-2"], ids["c-3"]}, strict)
    assert withheld == {ids["c-2"], ids["c-3"]}


async def test_opt_in_setting_unlinks_shoppers_without_a_record(api: Api, settings: Any) -> None:
    ids = await seed(api.db, settings)
    await consent(api.db, ids["c-1"], True)
    token = await api.token(W)
    async with serve(settings, analytics_consent_default=False) as client:
        response = await client.post(
            "/graphql",
            json={
                "query": TRACK,
                "variables": {"events": [view(1), view(2, userExternalId="c-3")]},
            },
            headers={"Authorization": f"Bearer {token}"},
        )
    result = response.json()["data"]["trackEvents"]
    assert (result["accepted"], result["unlinked"]) == (2, 1)
    owners = {e.client_event_id: e.customer_id for e in await stored(api.db)}
    assert owners == {"e-1": ids["c-1"], "e-2": None}


async def test_identify_into_a_shopper_without_consent_unlinks_the_past(
    api: Api, settings: Any
) -> None:
    from tests.events.test_identify import anon, identify

    ids = await seed(api.db, settings)
    await consent(api.db, ids["c-1"], False)
    await track(api, [anon(1)])
    result = await identify(api, anonymousId="browser-1", userExternalId="c-1")
    assert (result["eventsMoved"], result["errors"]) == (0, [])
    row = (await stored(api.db))[0]
    assert (row.customer_id, row.anonymous_id, row.properties) == (None, None, {})
    assert await profile(api.db, ids["c-1"]) is None
