"""The Strawberry schema: queries and mutations of every noun, plus the request-level extensions."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
import strawberry
from graphql import (
    FieldNode,
    GraphQLError,
    OperationDefinitionNode,
    StringValueNode,
    Visitor,
    visit,
)
from graphql import OperationType as GraphQLOperationType
from strawberry.extensions import SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry.types import Info
from strawberry.types.graphql import OperationType

from api import execution, input_coercion, input_depth
from api.audit.queries import AuditQueries
from api.auth.permissions import Forbidden, Unauthenticated
from api.catalog.mutations import CatalogMutations
from api.catalog.queries import CatalogQueries
from api.consents.mutations import ConsentMutations
from api.events.mutations import EventMutations
from api.events.mutations import install_fast_path as install_track_events_fast_path
from api.events.queries import EventQueries
from api.ids import BadId, decode_id
from api.limits import Limits
from api.me.mutations import MeRootMutations
from api.me.queries import MeQueries
from api.orders.mutations import OrderMutations
from api.orders.queries import OrderQueries
from api.privacy.mutations import PrivacyMutations
from api.privacy.queries import PrivacyQueries
from api.recommend.experiments import ExperimentMutations, ExperimentQueries
from api.recommend.mutations import RecommendMutations
from api.recommend.queries import RecommendQueries
from api.recommend.serving import FAST_RESOLVERS as RECOMMEND_FAST_RESOLVERS
from api.recommend.serving import ServingQueries
from api.recommend.serving import install_fast_path as install_recommendations_fast_path
from api.relay import Node
from api.scalars import OVERRIDES as SCALAR_OVERRIDES
from api.segments.mutations import SegmentMutations
from api.segments.queries import SegmentQueries
from api.tasks.queries import TaskQueries
from api.users.mutations import UserMutations
from api.users.queries import UserQueries
from api.users.types import FAST_RESOLVERS as USER_FAST_RESOLVERS
from domain.settings import Settings

log = logging.getLogger("precis.api")

EXPECTED_CODES = frozenset({"UNAUTHENTICATED", "FORBIDDEN", "BAD_USER_INPUT", "QUERY_TOO_COMPLEX"})
NODE_SCOPES = {
    "User": ("users:read",),
    "Product": ("catalog:read",),
    "Category": ("catalog:read",),
    "Order": ("users:read",),
    "Segment": ("segments:read",),
}


def is_unexpected(error: GraphQLError) -> bool:
    """Validation errors and our coded errors are meant for the client; anything else is a bug."""
    if (error.extensions or {}).get("code") in EXPECTED_CODES:
        return False
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


def mask_unexpected(result: Any) -> None:
    """In prod, replace unexpected errors (bugs) by a bare "Unexpected error." with the same
    locations and path, as Strawberry's ``MaskErrors`` does."""
    errors = getattr(result, "errors", None)
    if errors and any(is_unexpected(e) for e in errors):
        result.errors = [
            GraphQLError(
                "Unexpected error.",
                nodes=e.nodes,
                source=e.source,
                positions=e.positions,
                path=e.path,
                original_error=None,
            )
            if is_unexpected(e)
            else e
            for e in errors
        ]


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_holds_nul(v) for v in value)
    return False


def has_nul(ctx: Any) -> bool:
    """Whether a variable or a string literal holds a NUL character: PostgreSQL text and JSONB
    cannot store one, so it is refused before anything runs (one C call over the variables; the
    document is walked only if it contains an escape at all)."""
    if ctx.variables:
        dumped = orjson.dumps(ctx.variables, default=str, option=orjson.OPT_NON_STR_KEYS)
        # the bytes also match the text "\\u0000" (a backslash sent as such): then look closer
        if b"\\u0000" in dumped and _holds_nul(ctx.variables):
            return True
    query = ctx.query or ""
    if "\\u" not in query:
        return False
    found = False

    class Finder(Visitor):
        def enter_string_value(self, node: StringValueNode, *_: Any) -> None:
            nonlocal found
            found = found or "\x00" in node.value

    visit(ctx.graphql_document, Finder())
    return found


def refused_variables(ctx: Any) -> str | None:
    """Why the request is refused before anything runs, if it is."""
    try:
        nul = has_nul(ctx)
    except orjson.JSONEncodeError:  # nested past orjson's 254 levels (graphql-core allows 200)
        return "variable values are nested too deeply"
    return "strings must not contain NUL characters" if nul else None


def several_root_fields(ctx: Any) -> bool:
    """Whether a query may run more than one root field at once (fragments: assume so)."""
    document = ctx.graphql_document
    if document is None:
        return False
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    op = next(
        (
            o
            for o in operations
            if ctx.operation_name is None or (o.name and o.name.value == ctx.operation_name)
        ),
        None,
    )
    if op is None or op.operation is not GraphQLOperationType.QUERY:
        return False
    selections = [
        s
        for s in op.selection_set.selections
        if not (isinstance(s, FieldNode) and s.name.value == "__typename")
    ]
    return len(selections) > 1 or any(not isinstance(s, FieldNode) for s in selections)


class RequestPipeline(SchemaExtension):
    """Everything done per request, in one extension with one hook: Strawberry builds context
    managers for every hook of every extension on every request, which costs more than the work
    itself on small documents.

    Before the operation: the caller's limits, parsing and validation from the caches, the cost
    check. After it: the unit of work (commit a mutation's work only if the whole operation
    succeeded, then send its jobs; otherwise roll back), then, in prod, masking unexpected errors.
    """

    def __init__(self, limits: Limits, *, mask: bool) -> None:
        self.limits = limits
        self.mask = mask

    async def on_operation(self) -> AsyncIterator[None]:  # type: ignore[override]
        ctx = self.execution_context
        self.limits.prepare(ctx)
        if ctx.graphql_document is not None and not ctx.pre_execution_errors:
            problem = refused_variables(ctx)
            if problem is not None:
                ctx.pre_execution_errors = [
                    GraphQLError(problem, extensions={"code": "BAD_USER_INPUT"})
                ]
        ok = False
        try:
            if (
                not ctx.pre_execution_errors
                and ctx.context is not None
                and several_root_fields(ctx)
            ):
                # A query's root fields run at once on the request's one session; two of them
                # must not both start its connection (SQLAlchemy refuses: "provisioning a new
                # connection"), so it is connected first.
                await ctx.context.session.connection()
            yield
            result = ctx.result
            ok = result is not None and not getattr(result, "errors", None)
        finally:
            commit = ok and ctx.operation_type is OperationType.MUTATION
            if ctx.context is not None:
                await ctx.context.finish(commit=commit)
        if self.mask:
            mask_unexpected(ctx.result)


@strawberry.type
class NodeQueries:
    @strawberry.field(description="Any object by its global id (needs the scope of its type).")
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        principal = info.context.principal
        if principal is None:
            raise Unauthenticated(info.context.auth_error or "a valid access token is required")
        try:
            type_name, pk = decode_id(id)
        except BadId as exc:
            raise GraphQLError(str(exc), extensions={"code": "BAD_USER_INPUT"}) from exc
        scopes = NODE_SCOPES.get(type_name)
        if scopes is None:
            return None
        missing = principal.missing(scopes)
        if missing:
            raise Forbidden("missing scope(s): " + " ".join(missing))
        from api.catalog.loaders import category_loader, product_loader
        from api.orders.loaders import order_loader
        from api.segments.loaders import segment_loader
        from api.users.loaders import user_loader

        loader = {
            "User": user_loader,
            "Product": product_loader,
            "Category": category_loader,
            "Order": order_loader,
            "Segment": segment_loader,
        }[type_name]
        found: Any = await info.context.loader(type_name.lower(), loader).load(pk)
        return found  # type: ignore[no-any-return]


Query = merge_types(
    "Query",
    (
        NodeQueries,
        UserQueries,
        CatalogQueries,
        TaskQueries,
        MeQueries,
        AuditQueries,
        PrivacyQueries,
        EventQueries,
        OrderQueries,
        SegmentQueries,
        RecommendQueries,
        ServingQueries,
        ExperimentQueries,
    ),
)
Mutation = merge_types(
    "Mutation",
    (
        UserMutations,
        CatalogMutations,
        ConsentMutations,
        MeRootMutations,
        PrivacyMutations,
        EventMutations,
        OrderMutations,
        SegmentMutations,
        RecommendMutations,
        ExperimentMutations,
    ),
)


class _NoHooks:
    """A stage no extension hooks into: nothing to enter or leave."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


_NO_HOOKS = _NoHooks()


class LeanRunner(SchemaExtensionsRunner):
    """Strawberry's runner builds context managers and exit stacks for every stage of every
    request, even for stages no extension hooks into (here: parsing, validation, execution);
    those get a shared no-op instead. A stage an extension does hook into runs as before."""

    def _bare(self, hook: str) -> bool:
        default = getattr(SchemaExtension, hook)
        return all(getattr(type(e), hook) is default for e in self.extensions)

    def parsing(self) -> Any:
        return _NO_HOOKS if self._bare("on_parse") else super().parsing()

    def validation(self) -> Any:
        return _NO_HOOKS if self._bare("on_validate") else super().validation()

    def executing(self) -> Any:
        return _NO_HOOKS if self._bare("on_execute") else super().executing()


class PrecisSchema(strawberry.Schema):
    def create_extensions_runner(
        self, execution_context: Any, extensions: list[SchemaExtension]
    ) -> SchemaExtensionsRunner:
        return LeanRunner(execution_context=execution_context, extensions=extensions)

    def process_errors(
        self, errors: list[GraphQLError], execution_context: Any | None = None
    ) -> None:
        """Log what is a bug, with its traceback; errors meant for the client are not ours to log."""
        for error in errors:
            if is_unexpected(error):
                log.error("unexpected error in %s", error.path, exc_info=error.original_error)


def build_schema(settings: Settings) -> strawberry.Schema:
    """One schema per distinct limits configuration (building one takes a while)."""
    key = (
        settings.env,
        settings.max_depth,
        settings.max_aliases,
        settings.max_tokens,
        settings.max_cost,
    )
    return _build_schema(key)


@functools.cache
def _build_schema(key: tuple[str, int, int, int, int]) -> strawberry.Schema:
    env, max_depth, max_aliases, max_tokens, max_cost = key
    settings = Settings(
        env=env,  # type: ignore[arg-type]
        max_depth=max_depth,
        max_aliases=max_aliases,
        max_tokens=max_tokens,
        max_cost=max_cost,
        _env_file=None,  # type: ignore[call-arg]
    )
    limits = Limits(settings)
    mask = settings.is_prod
    schema = PrecisSchema(
        query=Query,
        mutation=Mutation,
        extensions=[lambda: RequestPipeline(limits, mask=mask)],
        scalar_overrides=SCALAR_OVERRIDES,
        config=StrawberryConfig(disable_field_suggestions=settings.is_prod),
    )
    execution.install(schema._schema, {**USER_FAST_RESOLVERS, **RECOMMEND_FAST_RESOLVERS})
    input_depth.install()
    input_coercion.install()
    install_track_events_fast_path(schema._schema)
    install_recommendations_fast_path(schema._schema)
    schema.execution_context_class = execution.executor_for(schema._schema)
    return schema
