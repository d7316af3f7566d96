"""The Starlette application: GraphQL, OAuth endpoints, health checks."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from authlib.oauth2.rfc6750.errors import InvalidTokenError
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLRequestData
from strawberry.types import ExecutionResult

from api.auth.server import PrecisAuthorizationServer
from api.auth.verifier import TokenVerifier
from api.context import Context
from api.fastpath import FastGraphQL
from api.persisted import PersistedQueries, PersistedQueryError
from api.privacy.download import download_export
from api.schema import build_schema
from domain.db import Database
from domain.keys import Keys, build_keys
from domain.profiles.live import TouchBuffer
from domain.recommend.serving import RecommendationServer
from domain.settings import Settings, get_settings
from jobs.queue import ArqQueue, InProcessQueue, Queue, make_queue
from jobs.schedule import InProcessScheduler

log = logging.getLogger("precis.api")
READY_TIMEOUT = 2.0  # seconds each readiness check may take


_heap_frozen = False


def freeze_startup_heap(young_threshold: int = 0) -> None:
    """Once per process, after start-up: take what start-up allocated (modules, the schema,
    SQLAlchemy's mappers, ...) out of the cyclic garbage collector's reach. Otherwise every full
    collection walks all of it (about 120,000 objects: 90 ms on the 2-core benchmark machine) while
    every request in flight waits; these objects live as long as the process anyway.

    ``young_threshold`` (if > 0) replaces Python's 700 container allocations between two
    young-generation collections (``PRECIS_GC_THRESHOLD``): a 500-event trackEvents request
    allocates thousands of dicts, lists and rows, nearly all freed by reference counting, and at
    700 the collector runs several times per request, each time walking what the requests in
    flight hold (measured: docs/benchmarks.md, "Ingesting events")."""
    global _heap_frozen
    if not _heap_frozen:
        _heap_frozen = True
        gc.collect()
        gc.freeze()
        if young_threshold > 0:
            gc.set_threshold(young_threshold, *gc.get_threshold()[1:])


@dataclass
class Services:
    """Process-wide parts, built once at start-up and shared by every request."""

    settings: Settings
    db: Database
    keys: Keys
    verifier: TokenVerifier
    auth: PrecisAuthorizationServer
    queue: Queue
    persisted: PersistedQueries
    # Write-behind of the profile counters (None: written in each request's unit of work).
    touch: TouchBuffer | None = None
    # Recommendations: the active model's bundle, the catalogue cache, impressions written behind.
    recommend: RecommendationServer | None = None


class PrecisGraphQL(GraphQL[Context, None]):
    def __init__(self, services: Services, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.services = services

    async def get_context(self, request: Any, response: Any) -> Context:
        principal = None
        error = None
        header = request.headers.get("authorization")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token:
                error = "use `Authorization: Bearer <access token>`"
            else:
                try:
                    principal = await self.services.verifier.verify(token.strip())
                except InvalidTokenError:
                    error = "the access token is invalid, expired or revoked"
        return Context(
            request=request,
            response=response,
            services=self.services,
            principal=principal,
            auth_error=error,
        )

    async def execute_single(  # type: ignore[override]
        self,
        request: Any,
        request_adapter: Any,
        sub_response: Any,
        context: Context,
        root_value: Any,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        persisted = (request_data.extensions or {}).get("persistedQuery")
        if persisted is not None:
            try:
                request_data.query = await self.services.persisted.resolve(
                    request_data.query, persisted
                )
            except PersistedQueryError as exc:
                return ExecutionResult(data=None, errors=[exc.error])
        return await super().execute_single(
            request, request_adapter, sub_response, context, root_value, request_data
        )

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes (413), whether or not Content-Length is sent."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    too_big = True
                if too_big:
                    await self._refuse(scope, receive, send)
                    return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._refuse(scope, receive, send)
        except ClientDisconnect:
            # The client went away before its body was read (a load generator stopping, a
            # browser tab closed): nothing to answer and nothing wrong with the server. uvicorn
            # already knows the connection is gone, so returning without a response is quiet.
            log.debug("client disconnected before the request was read: %s", scope.get("path"))

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {
                "errors": [
                    {
                        "message": f"request body over {self.limit} bytes",
                        "extensions": {"code": "PAYLOAD_TOO_LARGE"},
                    }
                ]
            },
            status_code=413,
        )
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()
    keys = build_keys(settings)
    db = Database(settings)
    verifier = TokenVerifier(settings, keys, db)
    auth = PrecisAuthorizationServer(settings, keys, db, verifier)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        queue = await make_queue(settings, db)
        redis = queue.pool if isinstance(queue, ArqQueue) else None
        persisted = PersistedQueries(redis, settings.queue_name)
        touch = None
        if settings.profile_touch_flush_ms > 0:
            touch = TouchBuffer(db, settings.profile_touch_flush_ms)
            touch.start()
        recommend = RecommendationServer(db, settings)
        recommend.start()
        services = Services(settings, db, keys, verifier, auth, queue, persisted, touch, recommend)
        graphql.services = services
        app.state.services = services
        scheduler = None
        if isinstance(queue, InProcessQueue) and settings.scheduler == "auto":
            scheduler = InProcessScheduler(queue)
            scheduler.start()
        app.state.scheduler = scheduler
        freeze_startup_heap(settings.gc_threshold)
        try:
            yield
        finally:
            if scheduler is not None:
                await scheduler.stop()
            if touch is not None:
                await touch.stop()  # the last tallies, before the pool closes
            await recommend.stop()  # the last impressions
            await queue.close()
            await db.dispose()

    graphql = PrecisGraphQL(
        services=None,  # type: ignore[arg-type]  # set in lifespan
        schema=build_schema(settings),
        graphql_ide=None if settings.is_prod else "graphiql",
        allow_queries_via_get=False,
    )

    async def metadata(request: Request) -> Response:
        return JSONResponse(auth.metadata())

    async def jwks(request: Request) -> Response:
        return JSONResponse(keys.public_jwks, headers={"Cache-Control": "public, max-age=300"})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        checks: dict[str, str] = {}
        ok = True
        try:
            async with asyncio.timeout(READY_TIMEOUT), db.read_only() as session:
                await session.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:  # report, never crash the probe
            checks["database"] = f"error: {type(exc).__name__}"
            ok = False
        if settings.redis_url:
            try:
                queue = request.app.state.services.queue
                async with asyncio.timeout(READY_TIMEOUT):
                    await queue.pool.ping()
                checks["redis"] = "ok"
            except Exception as exc:
                checks["redis"] = f"error: {type(exc).__name__}"
                ok = False
        recommend = getattr(request.app.state, "services", None)
        if recommend is not None and recommend.recommend is not None:
            # Reported, never failing the probe: a degraded model still serves non-personal
            # results, and a failing readiness check would take every process out of rotation.
            checks["recommendations"] = recommend.recommend.health()
        return JSONResponse(
            {"status": "ok" if ok else "unavailable", "checks": checks},
            status_code=200 if ok else 503,
        )

    # The compiled recommendations path in front of Strawberry (api/fastpath.py), unless turned off.
    endpoint: ASGIApp = FastGraphQL(graphql, settings) if settings.graphql_fast_path else graphql
    routes = [
        Route("/graphql", endpoint, methods=["GET", "POST"]),
        Route("/oauth/token", auth.token, methods=["POST"]),
        Route("/oauth/introspect", auth.introspect, methods=["POST"]),
        Route("/oauth/revoke", auth.revoke, methods=["POST"]),
        Route("/.well-known/oauth-authorization-server", metadata, methods=["GET"]),
        Route("/.well-known/jwks.json", jwks, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route(
            "/privacy/exports/{export_id}",
            download_export,
            methods=["GET"],
            name="privacy_export",
        ),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)  # type: ignore[arg-type]
    app.state.auth = auth
    app.state.db = db
    app.state.keys = keys
    app.state.graphql = endpoint
    return app
