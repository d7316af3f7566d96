"""Abuse limits in one place: depth, aliases, tokens, query cost, introspection in prod; and the
per-schema caches that keep parsing and validation out of the request path.

Rule classes are built once per schema, not per request. Documents are cached by query text; the
validation result and the cost by document *identity*. (Strawberry's ``ValidationCache`` keys on the
document itself, and an AST node hashes by walking its whole tree on every request.) A cache entry
holds its document, so a reused ``id()`` can never match a different document.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    parse,
)
from graphql.validation import NoSchemaIntrospectionCustomRule
from graphql.validation.rules.max_introspection_depth_rule import MaxIntrospectionDepthRule
from strawberry.extensions.max_aliases import create_validator as aliases_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from strawberry.schema.schema import validate_document

from domain.auth.scopes import ADMIN_SCOPE
from domain.settings import Settings

if TYPE_CHECKING:
    from strawberry.types import ExecutionContext

DEFAULT_LIST_SIZE = 20
K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    """A bounded least-recently-used map (one event loop per process, so no locking)."""

    def __init__(self, size: int) -> None:
        self._data: OrderedDict[K, V] = OrderedDict()
        self._size = size

    def get(self, key: K) -> V | None:
        found = self._data.get(key)
        if found is not None:
            self._data.move_to_end(key)
        return found

    def put(self, key: K, value: V) -> None:
        self._data[key] = value
        if len(self._data) > self._size:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


class QueryCost:
    """Cost = fields counted, list fields multiplying their children by ``first``."""

    def __init__(self, limit: int, cache_size: int = 1024) -> None:
        self.limit = limit
        self._cache: LRU[Any, tuple[DocumentNode, int]] = LRU(cache_size)

    def check(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation_name: str | None,
        variables: dict[str, Any] | None,
    ) -> GraphQLError | None:
        ints = tuple(sorted((k, v) for k, v in (variables or {}).items() if type(v) is int))
        key = (id(document), operation_name, ints)
        hit = self._cache.get(key)
        if hit is not None and hit[0] is document:
            cost = hit[1]
        else:
            cost = self.compute(schema, document, operation_name, variables or {})
            self._cache.put(key, (document, cost))
        if cost > self.limit:
            return GraphQLError(
                f"query cost {cost} exceeds the limit of {self.limit}; ask for fewer items",
                extensions={"code": "QUERY_TOO_COMPLEX", "cost": cost, "limit": self.limit},
            )
        return None

    def compute(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation_name: str | None,
        variables: dict[str, Any],
    ) -> int:
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        op = next(
            (
                o
                for o in operations
                if operation_name is None or (o.name and o.name.value == operation_name)
            ),
            None,
        )
        if op is None:
            return 0
        root = schema.get_root_type(op.operation)
        if root is None:
            return 0

        def size(field: FieldNode, definition: Any) -> int:
            for arg in field.arguments or ():
                if arg.name.value == "first":
                    if isinstance(arg.value, IntValueNode):
                        return max(int(arg.value.value), 1)
                    if isinstance(arg.value, VariableNode):
                        value = variables.get(arg.value.name.value)
                        return max(value, 1) if isinstance(value, int) else DEFAULT_LIST_SIZE
            first = definition.args.get("first") if definition is not None else None
            if first is not None and isinstance(first.default_value, int):
                return max(first.default_value, 1)
            return 1

        def walk(selection_set: SelectionSetNode, parent: Any, seen: frozenset[str]) -> int:
            total = 0
            for sel in selection_set.selections:
                if isinstance(sel, FieldNode):
                    total += 1
                    if sel.selection_set is None:
                        continue
                    fields = getattr(parent, "fields", {})
                    definition = fields.get(sel.name.value)
                    child = get_named_type(definition.type) if definition is not None else None
                    total += size(sel, definition) * walk(sel.selection_set, child, seen)
                elif isinstance(sel, InlineFragmentNode):
                    target = (
                        schema.get_type(sel.type_condition.name.value)
                        if sel.type_condition
                        else parent
                    )
                    total += walk(sel.selection_set, target, seen)
                elif isinstance(sel, FragmentSpreadNode):
                    name = sel.name.value
                    fragment = fragments.get(name)
                    if fragment is None or name in seen:
                        continue
                    target = schema.get_type(fragment.type_condition.name.value)
                    total += walk(fragment.selection_set, target, seen | {name})
            return total

        assert isinstance(root, GraphQLObjectType)
        return walk(op.selection_set, root, frozenset())


class Limits:
    """Everything the per-request work needs, built once per schema."""

    def __init__(self, settings: Settings, cache_size: int = 512) -> None:
        self.settings = settings
        self.max_tokens = settings.max_tokens
        self.rules: tuple[type[ASTValidationRule], ...] = (
            depth_rule(settings.max_depth, None, None),
            aliases_rule(settings.max_aliases),
            MaxIntrospectionDepthRule,
        )
        self.closed_rules = (*self.rules, NoSchemaIntrospectionCustomRule)
        self.cost = QueryCost(settings.max_cost)
        self._documents: LRU[str, DocumentNode] = LRU(cache_size)
        self._validated: LRU[Any, tuple[DocumentNode, list[GraphQLError]]] = LRU(cache_size)

    def parse(self, query: str) -> DocumentNode:
        """Parse with the token limit, cached by query text; raises ``GraphQLError``."""
        document = self._documents.get(query)
        if document is None:
            document = parse(query, max_tokens=self.max_tokens)
            self._documents.put(query, document)
        return document

    def validate(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        rules: tuple[type[ASTValidationRule], ...],
    ) -> list[GraphQLError]:
        """Strawberry's validation (the spec's rules, its own and ``rules``), cached."""
        key = (id(document), rules)
        hit = self._validated.get(key)
        if hit is not None and hit[0] is document:
            return list(hit[1])
        errors = validate_document(schema, document, rules)
        self._validated.put(key, (document, errors))
        return list(errors)

    def prepare(self, ctx: ExecutionContext) -> None:
        """Before parsing: pick the rules for this caller, parse and validate from the caches,
        then check the cost. Setting ``graphql_document`` and ``pre_execution_errors`` makes
        Strawberry skip its own parsing and validation, and report the errors without executing.
        A syntax error is left for Strawberry to raise and report as usual.
        """
        ctx.parse_options["max_tokens"] = self.max_tokens
        context = ctx.context
        admin = context is not None and context.has(ADMIN_SCOPE)
        extra = self.closed_rules if self.settings.is_prod and not admin else self.rules
        rules = ctx.validation_rules + extra
        ctx.validation_rules = rules
        if ctx.query is None or ctx.graphql_document is not None:
            return
        try:
            document = self.parse(ctx.query)
        except GraphQLError:
            return
        ctx.graphql_document = document
        errors = self.validate(ctx.schema._schema, document, rules)
        if not errors:
            # Only a valid document has a cost (which depends on the variables, so not cached).
            error = self.cost.check(ctx.schema._schema, document, ctx.operation_name, ctx.variables)
            if error is not None:
                errors = [error]
        ctx.pre_execution_errors = errors
