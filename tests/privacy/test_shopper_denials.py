"""A shopper token reaches no privacy, audit or consent-admin field and no export download."""

from __future__ import annotations

from tests.conftest import Api, count_rows, error_codes
from tests.me.helpers import shopper_token
from tests.privacy.helpers import make_customers

DOCUMENTS = [
    "{ auditLog { nodes { id } } }",
    "{ privacyRequests { nodes { id } } }",
    '{ dataExport(id: "x") { id } }',
    '{ user(externalId: "c-2") { consents { current { purpose } } } }',
    'mutation { createPrivacyRequest(input: {type: ACCESS, userExternalId: "c-2"}) '
    "{ errors { code } } }",
    'mutation { requestDataExport(input: {userExternalId: "c-2"}) { errors { code } } }',
    'mutation { eraseUser(input: {userExternalId: "c-2"}) { errors { code } } }',
    'mutation { setConsents(input: {userExternalId: "c-2", consents: [{purpose: EMAIL, '
    'granted: true, source: "x", policyVersion: "1"}]}) { errors { code } } }',
]


async def test_shopper_tokens_are_refused(api: Api) -> None:
    await make_customers(api, "c-1", "c-2")
    manage = await api.token("privacy:manage")
    made = await api.gql(
        'mutation { requestDataExport(input: {userExternalId: "c-2"}) { dataExport { id } } }',
        token=manage,
    )
    export_id = made["data"]["requestDataExport"]["dataExport"]["id"]
    await api.app.state.services.queue.drain()
    token = await shopper_token(api, "c-1")
    rows = {t: await count_rows(api.db, t) for t in ("consent", "privacy_request", "data_export")}
    for document in DOCUMENTS:
        body = await api.gql(document, token=token)
        assert error_codes(body) == ["FORBIDDEN"], (document, body)
        assert "c-2@example.com" not in str(body)
    download = await api.client.get(
        f"/privacy/exports/{export_id}", headers={"Authorization": f"Bearer {token}"}
    )
    assert download.status_code == 404
    assert {t: await count_rows(api.db, t) for t in rows} == rows
    assert await count_rows(api.db, "customer") == 2
