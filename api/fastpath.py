"""A compiled fast path for POST /graphql documents that ask only for ``recommendations``.

Storefronts ask for recommendations on every page, with one document and different variables.
Through Strawberry's view and graphql-core's executor such a request costs the GraphQL floor
(context, the extension pipeline, execution context: about 0.2 ms on the 2-core benchmark machine)
plus the completion of every item's object fields with a ``GraphQLResolveInfo`` each. Here a
recognised document is compiled once into a plan, and the answer is serialised by the plan straight
from the domain ``Answer`` with the readers ``payload`` uses (``recommend.ANSWER_FIELDS``), below
it with the fields' own readers (``api.execution._reader``), and the same output coercion of each
leaf's type; refusals (and a document with a field those readers lack) are written from the
payload objects the field would return. A product's part is written once per plan and catalogue
row object (``ProductMemo``). The variables are coerced with coercers built for the plan.

What is recognised (everything else, or anything unusual, goes to the generic path unchanged, which
then produces the same answer or the errors):

* POST with a JSON content type, a body of at most 32 KB that names ``recommendations`` or a
  persisted query (other bodies are not parsed twice) and holds no ``\\u0000`` (the generic path
  refuses NUL), a single operation object with ``query`` (or an automatic persisted query found
  in this process's local APQ cache), ``variables``, ``operationName``; no streaming ``Accept``;
* a document that parses and validates under the same limits as ``RequestPipeline`` (depth,
  aliases, tokens; the prod rules of a caller without the admin scope, which are the stricter
  set, so they hold for every caller) and whose cost is within the limit (the cost does not depend
  on the variables here: no field with a ``first`` argument can be in a plan);
* one query operation, no directives anywhere, fragments and inline fragments through
  graphql-core's own ``collect_fields`` (at compile time); root fields: exactly one
  ``recommendations`` (aliased or not) and any ``__typename``;
* below it only fields without arguments read without ``info`` (plain Strawberry attribute fields
  and ``fast_resolver`` functions), ``__typename`` anywhere, and ``Product.category`` of an item's
  product, read from the recommendation server's catalogue cache (the generic path's loader is
  primed with the same rows by ``payload``);
* per request: a bearer token that verifies, with the field's scopes; variables that coerce.

A plan's answer is ranked once (``server.answer``). If serialising it meets a value the generic
path would report as an error (``null`` in a non-null field, a value a scalar refuses), the
request goes to the generic path with the ranked answer in its scope
(``api.recommend.serving.PRECOMPUTED``), which uses it instead of ranking again: one impression.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import orjson
from authlib.oauth2.rfc6750.errors import InvalidTokenError
from graphql import (
    DirectiveNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLError,
    GraphQLField,
    GraphQLFloat,
    GraphQLID,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    GraphQLString,
    OperationDefinitionNode,
    OperationType,
    Visitor,
    is_leaf_type,
    parse,
    specified_rules,
    visit,
)
from graphql.execution.collect_fields import (
    FieldDetails,
    FragmentDetails,
    collect_fields,
    collect_subfields,
)
from graphql.execution.get_variable_signature import get_variable_signature
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values
from graphql.pyutils import Undefined
from starlette.requests import ClientDisconnect, Request
from starlette.types import Message, Receive, Scope, Send
from strawberry.http.parse_content_type import parse_content_type
from strawberry.permission import PermissionExtension
from strawberry.schema.schema import validate_document
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

from api.auth.permissions import _ScopePermission
from api.context import Context
from api.execution import _reader
from api.input_coercion import coercer
from api.limits import LRU, Limits
from api.persisted import HASH
from api.recommend import serving as recommend
from domain.settings import Settings

if TYPE_CHECKING:
    from api.app import PrecisGraphQL

log = logging.getLogger("precis.api")

ROOT_FIELD = "recommendations"
ROOT_FIELD_BYTES = ROOT_FIELD.encode()
MAX_QUERY_CHARS = 10_000  # longer documents are not compiled (nor kept in the plan cache)
MAX_BODY_BYTES = 32_768  # a recommendations request is about 1 KB
PLAN_CACHE_SIZE = 256
# Serialised products kept (all plans together): a product's part of an answer is the same for
# every request until its catalogue row is replaced; about 1-2 KB each.
PRODUCT_MEMO_SIZE = 8192
CONTENT_TYPES_KEPT = 64  # content-type header values whose parse is remembered
NO_VARIABLES = VariableValues({}, {})
JSON_HEADERS = b"content-type", b"application/json"

Serialise = Callable[[Any], Any]


class _Bail(Exception):
    """A value the generic path must complete: it reports the error, with path and location."""


@dataclass(frozen=True, slots=True)
class Plan:
    """One compiled document: what to coerce per request and how to write the answer."""

    operation: OperationDefinitionNode
    field: GraphQLField  # Query.recommendations
    node: FieldNode  # its first field node: the arguments
    scopes: tuple[str, ...]  # the field's RequireScopes
    # response names in order, each with its constant (``__typename``) or None (the field)
    root: tuple[tuple[str, str | None], ...]
    payload: Serialise  # RecommendationsPayload -> dict
    # domain ``Answer`` -> the same dict (``payload`` skipped); None if a field needs ``payload``
    answer: Serialise | None
    # the variables' coercers, when no variable has a default: (name, non-null, coerce)
    variables: tuple[tuple[str, bool, Callable[[Any], Any]], ...] | None


@dataclass(slots=True)
class _Info:
    """What ``api.recommend.serving`` reads of a resolver's ``info``: the request's context
    (``ask_for`` reads only the caller: ``_Caller``)."""

    context: Context | _Caller


@dataclass(slots=True)
class _Caller:
    principal: Any


class ProductMemo:
    """Serialised products, per serialiser (one per plan and place) and catalogue row object.

    ``Catalog.refresh`` puts a new row object in place of a product that changed, so the row's
    identity is its version: an entry holds its row (the id cannot be reused while it is kept)
    and answers only for that very object. Bounded; the oldest entries go first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: dict[tuple[int, int], tuple[Any, Any]] = {}
        self.slots = 0

    def wrap(self, serialise: Serialise) -> Serialise:
        self.slots += 1
        slot = self.slots
        entries = self.entries

        def memoised(row: Any) -> Any:
            if row is None:
                return serialise(row)
            key = (slot, id(row))
            found = entries.get(key)
            if found is not None and found[0] is row:
                return found[1]
            written = serialise(row)  # raises (nothing kept) where the generic path is needed
            if len(entries) >= self.size:
                del entries[next(iter(entries))]
            entries[key] = (row, written)
            return written

        return memoised


class FastGraphQL:
    """The ``/graphql`` endpoint: compiled plans first, else the Strawberry app ``graphql``."""

    def __init__(self, graphql: PrecisGraphQL, settings: Settings) -> None:
        self.graphql = graphql
        self.settings = settings
        self.schema: GraphQLSchema = graphql.schema._schema  # type: ignore[attr-defined]
        self.limits = Limits(settings)
        self.rules = tuple(specified_rules) + (
            self.limits.closed_rules if settings.is_prod else self.limits.rules
        )
        self.plans: LRU[tuple[str, str | None], Plan | Literal[False]] = LRU(PLAN_CACHE_SIZE)
        self.products = ProductMemo(PRODUCT_MEMO_SIZE)
        # "fast": answered here; "generic": not recognised; "handed_over": ranked here, answered
        # by the generic path (a value it reports as an error).
        self.counts: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not _json_request(scope):
            await self.graphql(scope, receive, send)
            return
        body = await _read_body(receive)
        try:
            answer = await self._answer(scope, receive, body)
        except Exception:  # never a 500 from here: the generic path answers
            log.exception("recommendations fast path failed; answered by the generic path")
            answer = None
        if answer is None:
            self.counts["generic"] += 1
            await self.graphql(scope, _replay(body, receive), send)
            return
        self.counts["fast"] += 1
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(answer)).encode()), JSON_HEADERS],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    async def _answer(self, scope: Scope, receive: Receive, body: bytes) -> bytes | None:
        """The response body from a plan; None: the generic path answers (nothing was ranked,
        or the ranked answer is in the scope for it)."""
        if (
            len(body) > MAX_BODY_BYTES
            or (ROOT_FIELD_BYTES not in body and b"persistedQuery" not in body)
            or b"\\u0000" in body
        ):
            return (
                None  # cheaply: other operations (a large trackEvents batch) are not parsed twice
            )
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if type(data) is not dict:
            return None
        query = self._query(data)
        operation_name = data.get("operationName")
        variables = data.get("variables")
        if (
            query is None
            or not (operation_name is None or type(operation_name) is str)
            or not (variables is None or type(variables) is dict)
        ):
            return None
        plan = self._plan(query, operation_name)
        if plan is None:
            return None
        services = self.graphql.services
        server = services.recommend
        if server is None:
            return None
        principal = await _principal(scope, services)
        if principal is None or principal.missing(plan.scopes):
            return None
        coerced = self._variables(plan, variables or {})
        if coerced is None:
            return None
        try:
            arguments = get_argument_values(plan.field, plan.node, coerced)
        except GraphQLError:
            return None
        try:
            ask = recommend.ask_for(
                _Info(_Caller(principal)), recommend.input_of(arguments["input"])
            )
        except recommend.Refused as exc:
            return self._write(scope, plan, plan.payload, exc.payload, None)
        answer = await server.answer(ask)
        if plan.answer is not None:
            # straight from the domain answer: no Context (nothing here opens a session or
            # reads PII), no ``payload`` objects
            return self._write(scope, plan, plan.answer, answer, (ask, answer))
        context = Context(
            request=Request(scope, receive),
            response=None,
            services=services,
            principal=principal,
        )
        info = _Info(context)
        try:
            payload = recommend.payload(info, answer)  # type: ignore[arg-type]
            # the end of the request's unit of work, as ``RequestPipeline`` does for a query
            # (nothing here opens a session or reads PII: a no-op unless that changes)
            await context.finish(commit=False)
        except Exception:
            log.exception("recommendations fast path failed after ranking")
            return self._hand_over(scope, (ask, answer))
        return self._write(scope, plan, plan.payload, payload, (ask, answer))

    def _variables(self, plan: Plan, given: dict[str, Any]) -> VariableValues | None:
        """The coerced variables as graphql-core's ``get_variable_values`` makes them (None: it
        reports errors), with the plan's coercers where it has them."""
        if plan.variables is None:
            coerced = get_variable_values(
                self.schema, plan.operation.variable_definitions or (), given
            )
            return None if isinstance(coerced, list) else coerced
        values: dict[str, Any] = {}
        try:
            for name, non_null, coerce in plan.variables:
                value = given.get(name, Undefined)
                if value is Undefined and not non_null:
                    continue  # not given, nullable: omitted
                value = coerce(value)  # Undefined: an error (non-null not given, invalid)
                if value is Undefined:
                    return None
                values[name] = value
        except RecursionError:  # graphql-core reports nesting too deep for it
            return None
        return VariableValues({}, values)

    def _write(
        self,
        scope: Scope,
        plan: Plan,
        serialise: Serialise,
        value: Any,
        ranked: tuple[Any, Any] | None,
    ) -> bytes | None:
        """The answer's bytes (``value`` written by ``serialise``, one of the plan's); on a value
        the generic path must report, the ranked answer is handed over to it (None)."""
        try:
            written = serialise(value)
            data = {name: written if value is None else value for name, value in plan.root}
            return orjson.dumps({"data": data})
        except (_Bail, GraphQLError, TypeError, ValueError) as exc:
            log.debug("recommendations fast path: %r, answered by the generic path", exc)
        except Exception:
            log.exception("recommendations fast path failed after ranking")
        return self._hand_over(scope, ranked)

    def _hand_over(self, scope: Scope, ranked: tuple[Any, Any] | None) -> bytes | None:
        """None (the generic path answers), with the ranked answer in the scope for it."""
        if ranked is not None:
            scope[recommend.PRECOMPUTED] = ranked
            self.counts["handed_over"] += 1
        return None

    def _query(self, data: dict[str, Any]) -> str | None:
        """The document's text: ``query``, or an APQ hash found in this process's local cache
        (storing a document, Redis and the protocol's errors are the generic path's)."""
        query = data.get("query")
        extensions = data.get("extensions")
        if extensions is None:
            return query if type(query) is str else None
        if (
            type(extensions) is not dict
            or query is not None
            or extensions.keys() != {"persistedQuery"}
        ):
            return None
        persisted = extensions["persistedQuery"]
        if type(persisted) is not dict or persisted.get("version") != 1:
            return None
        digest = persisted.get("sha256Hash")
        if type(digest) is not str or not HASH.match(digest):
            return None
        local = self.graphql.services.persisted._local
        found = local.get(digest)
        if found is not None:
            local.move_to_end(digest)
        return found

    def _plan(self, query: str, operation_name: str | None) -> Plan | None:
        if len(query) > MAX_QUERY_CHARS:
            return None
        key = (query, operation_name)
        plan = self.plans.get(key)
        if plan is None:
            try:
                plan = self._compile(query, operation_name) or False
            except Exception:  # a document this compiler did not foresee: the generic path's
                log.exception("recommendations fast path: compiling a document failed")
                plan = False
            self.plans.put(key, plan)
        return plan or None

    def _compile(self, query: str, operation_name: str | None) -> Plan | None:
        schema = self.schema
        try:
            document = parse(query, max_tokens=self.limits.max_tokens)
        except GraphQLError:
            return None
        if validate_document(schema, document, self.rules):
            return None
        if self.limits.cost.check(schema, document, operation_name, None) is not None:
            return None
        if _has_directives(document):
            return None
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if operation_name is None:
            # Strawberry runs the first operation when no name is given (graphql-core would not)
            operation = operations[0] if operations else None
        else:
            operation = next(
                (o for o in operations if o.name and o.name.value == operation_name), None
            )
        if operation is None or operation.operation is not OperationType.QUERY:
            return None
        fragments = {}
        for definition in document.definitions:
            if isinstance(definition, FragmentDefinitionNode):
                if definition.variable_definitions:
                    return None
                fragments[definition.name.value] = FragmentDetails(definition)
        query_type = schema.query_type
        assert query_type is not None
        grouped = collect_fields(
            schema, fragments, NO_VARIABLES, query_type, operation
        ).grouped_field_set
        root: list[tuple[str, str | None]] = []
        target: tuple[GraphQLField, list[FieldDetails]] | None = None
        for response_name, details in grouped.items():
            name = details[0].node.name.value
            if name == "__typename":
                root.append((response_name, query_type.name))
            elif name == ROOT_FIELD and target is None:
                root.append((response_name, None))
                target = (query_type.fields[name], details)
            else:
                return None
        if target is None:
            return None
        field, details = target
        scopes = _scopes(field)
        if scopes is None:
            return None
        compiler = _Compiler(schema, fragments, operation, self._category, self.products)
        payload = compiler.output(field.type, details, parent=None)
        if payload is None:
            return None
        compiler.answers = recommend.ANSWER_FIELDS
        answer = compiler.output(field.type, details, parent=None)
        variables = _coercers(schema, operation)
        return Plan(
            operation, field, details[0].node, scopes, tuple(root), payload, answer, variables
        )

    def _category(self, product: Any) -> Any:
        """``Product.category`` of a recommended product: the catalogue's row, which ``payload``
        primes the generic path's loader with; a category not in the catalogue is the loader's."""
        category_id = product.category_id
        if category_id is None:
            return None
        server = self.graphql.services.recommend
        node = None if server is None else server.catalog.categories.get(int(category_id))
        if node is None:
            raise _Bail("category not in the catalogue cache")
        return node.row


class _Compiler:
    """Turns a selection into nested serialisers (closures), or None where the generic path
    is needed.

    With ``answers`` (``recommend.ANSWER_FIELDS``) the types found there are read from the
    domain objects (``Answer``, ``Item``) with those readers instead of ``payload``'s; a field of
    such a type that is not there makes no serialiser (None). Products are memoised."""

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDetails],
        operation: OperationDefinitionNode,
        category: Callable[[Any], Any],
        products: ProductMemo,
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.operation = operation
        self.category = category
        self.products = products
        self.answers: dict[tuple[str, str], Callable[[Any], Any]] = {}
        self.domain_types = {"RecommendationsPayload", "RecommendedItem"}

    def output(
        self, type_: GraphQLOutputType, details: list[FieldDetails], parent: tuple[str, str] | None
    ) -> Serialise | None:
        """A serialiser of a value of ``type_`` (``null`` included): one closure per level."""
        non_null = isinstance(type_, GraphQLNonNull)
        inner = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
        if isinstance(inner, GraphQLList):
            item = self.output(inner.of_type, details, parent)
            return None if item is None else _list(item, non_null)
        if is_leaf_type(inner):
            return _leaf(inner, non_null)
        if isinstance(inner, GraphQLObjectType):
            return self.object(inner, details, parent, non_null)
        return None  # interfaces and unions: graphql-core resolves the type

    def object(
        self,
        type_: GraphQLObjectType,
        details: list[FieldDetails],
        parent: tuple[str, str] | None,
        non_null: bool,
    ) -> Serialise | None:
        grouped = collect_subfields(
            self.schema, self.fragments, NO_VARIABLES, self.operation, type_, details
        ).grouped_field_set
        fields: list[tuple[str, Callable[[Any], Any], Serialise]] = []
        domain = bool(self.answers) and type_.name in self.domain_types
        for response_name, sub in grouped.items():
            name = sub[0].node.name.value
            if name == "__typename":
                fields.append((response_name, _constant(type_.name), _same))
                continue
            field = type_.fields.get(name)
            if field is None or field.args:
                return None
            if domain:
                read = self.answers.get((type_.name, name))
            else:
                read = self.reader(type_, name, field, parent)
            if read is None:
                return None
            write = self.output(field.type, sub, (type_.name, name))
            if write is None:
                return None
            fields.append((response_name, read, write))
        # the domain objects are what the field returns, by construction: no type check
        is_type_of = None if domain else type_.is_type_of
        frozen = tuple(fields)

        def serialise(source: Any) -> dict[str, Any] | None:
            if source is None:
                if non_null:
                    raise _Bail("null in a non-null field")
                return None
            if is_type_of is not None and not is_type_of(source, None):  # type: ignore[arg-type]
                raise _Bail(f"not a {type_.name}")
            return {name: write(read(source)) for name, read, write in frozen}

        if type_.name == "Product":
            return self.products.wrap(serialise)
        return serialise

    def reader(
        self,
        type_: GraphQLObjectType,
        name: str,
        field: GraphQLField,
        parent: tuple[str, str] | None,
    ) -> Callable[[Any], Any] | None:
        if (type_.name, name) == ("Product", "category"):
            # primed for the items' products only (not for reasonProduct's)
            return self.category if parent == ("RecommendedItem", "product") else None
        resolve = field.resolve
        if resolve is None or asyncio.iscoroutinefunction(resolve):
            return None
        return _reader(field)


def _list(item: Serialise, non_null: bool) -> Serialise:
    def serialise(value: Any) -> Any:
        if value is None:
            if non_null:
                raise _Bail("null in a non-null field")
            return None
        if type(value) is not list and type(value) is not tuple:
            raise _Bail("not a list")
        return [item(v) for v in value]

    return serialise


# Built-in scalars that return a value of exactly this type unchanged (graphql-core's
# ``serialize_string``, ``serialize_boolean``, ``serialize_id``): no call for those.
_UNCHANGED: dict[Any, type] = {GraphQLString: str, GraphQLBoolean: bool, GraphQLID: str}


def _leaf(type_: Any, non_null: bool) -> Serialise:
    coerce = type_.coerce_output_value
    unchanged = _UNCHANGED.get(type_)
    # finite floats: graphql-core's ``serialize_float`` returns them as they are
    is_float = type_ is GraphQLFloat
    # an enum's names by value (members of a Python enum: few, hashable), found once
    names: dict[Any, str] | None = {} if isinstance(type_, GraphQLEnumType) else None

    def serialise(value: Any) -> Any:
        if value is None:
            if non_null:
                raise _Bail("null in a non-null field")
            return None
        if type(value) is unchanged:
            return value
        if is_float and type(value) is float and value - value == 0.0:
            return value
        if names is not None:
            found = names.get(value)
            if found is not None:
                return found
        coerced = coerce(value)
        if coerced is None or coerced is Undefined:
            raise _Bail("a value the scalar refuses")
        if names is not None and len(names) < 64:
            names[value] = coerced
        return coerced

    return serialise


def _constant(value: str) -> Callable[[Any], str]:
    return lambda _source: value


def _same(value: Any) -> Any:
    return value


def _coercers(
    schema: GraphQLSchema, operation: OperationDefinitionNode
) -> tuple[tuple[str, bool, Callable[[Any], Any]], ...] | None:
    """The operation's variables with ``api.input_coercion``'s coercer of each type, built once
    (``get_variable_values`` resolves the types and builds the wrappers' coercers per request);
    None where a variable has a default (then graphql-core coerces)."""
    found = []
    for definition in operation.variable_definitions or ():
        signature = get_variable_signature(schema, definition)
        if isinstance(signature, GraphQLError) or definition.default_value is not None:
            return None
        non_null = isinstance(signature.type, GraphQLNonNull)
        found.append((signature.name, non_null, coercer(signature.type)))
    return tuple(found)


def _scopes(field: GraphQLField) -> tuple[str, ...] | None:
    """The scopes the field's permission classes require; None if it has other extensions or
    permissions (then the generic path checks them)."""
    definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if not isinstance(definition, StrawberryField) or any(
        not isinstance(e, PermissionExtension) for e in definition.extensions
    ):
        return None
    scopes: list[str] = []
    for cls in definition.permission_classes:
        if not issubclass(cls, _ScopePermission):
            return None
        scopes.extend(cls.scopes)
    return tuple(scopes)


def _has_directives(document: Any) -> bool:
    found = False

    class Finder(Visitor):
        def enter_directive(self, node: DirectiveNode, *_: Any) -> None:
            nonlocal found
            found = True

    visit(document, Finder())
    return found


_JSON_TYPES: dict[bytes, bool] = {}  # content-type header -> a JSON body (parsed once)


def _json_request(scope: Scope) -> bool:
    """A JSON body as Strawberry reads it, and no streaming transport asked for."""
    content_type = None
    for name, value in scope["headers"]:
        if name == b"content-type" and content_type is None:
            content_type = value
        elif name == b"accept" and (b"multipart" in value or b"event-stream" in value):
            return False
    if content_type is None:
        return False
    found = _JSON_TYPES.get(content_type)
    if found is None:
        media_type, _ = parse_content_type(content_type.decode("latin-1"))
        found = "application/json" in media_type
        if len(_JSON_TYPES) < CONTENT_TYPES_KEPT:
            _JSON_TYPES[content_type] = found
    return found


async def _principal(scope: Scope, services: Any) -> Any:
    """The caller as ``PrecisGraphQL.get_context`` verifies it; None for anything but a valid
    bearer token (the generic path reports those)."""
    header = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            header = value.decode("latin-1")
            break
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    try:
        return await services.verifier.verify(token.strip())
    except InvalidTokenError:
        return None


async def _read_body(receive: Receive) -> bytes:
    """The whole body (the ``BodyLimit`` middleware's receive raises past its limit)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks)
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect()


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the already-read body to the generic path once, then waits on
    the connection as before (disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
