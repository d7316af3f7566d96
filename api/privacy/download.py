"""``GET /privacy/exports/{export_id}``: the export document, for the client that requested it.

Needs a bearer token with ``privacy:manage`` of the SAME client that requested the export; anyone
else, an unknown id, an export not ready yet and an expired one all get the same 404. The body is the
stored gzip stream, served as ``application/json`` with ``Content-Encoding: gzip``. Each download is
audited (``data_export.download``).
"""

from __future__ import annotations

import uuid

from authlib.oauth2.rfc6750.errors import InvalidTokenError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from domain.audit import service as audit
from domain.audit.service import Actor
from domain.privacy.export import downloadable, for_client


def _error(status: int, code: str, message: str) -> Response:
    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": code}}]},
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


async def download_export(request: Request) -> Response:
    services = request.app.state.services
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _error(401, "UNAUTHENTICATED", "use `Authorization: Bearer <access token>`")
    try:
        principal = await services.verifier.verify(token.strip())
    except InvalidTokenError:
        return _error(401, "UNAUTHENTICATED", "the access token is invalid, expired or revoked")
    not_found = _error(404, "NOT_FOUND", "no such export")
    if not principal.has("privacy:manage") or principal.customer_id is not None:
        return not_found
    export_id = request.path_params["export_id"]
    actor = Actor(
        client_id=principal.client_id, subject=principal.subject, request_id=uuid.uuid4().hex
    )
    async with services.db.unit_of_work() as session:
        export = await for_client(session, export_id, principal.client_id, content=True)
        if export is None or export.content_gzip is None or not downloadable(export):
            return not_found
        content = export.content_gzip
        await audit.record(
            session,
            actor,
            "data_export.download",
            "DataExport",
            export.id,
            details={"customer_id": export.customer_id, "size": export.size_bytes},
        )
    return Response(
        content,
        media_type="application/json",
        headers={
            "Content-Encoding": "gzip",
            "Content-Disposition": f'attachment; filename="precis-export-{export_id}.json"',
            "Cache-Control": "no-store",
            "X-Content-SHA256": export.sha256 or "",
        },
    )
