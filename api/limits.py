"""Abuse limits in one place: depth, aliases, tokens, query cost, introspection in prod.

The validation rule classes are built once per schema, not per request, so Strawberry's validation
cache (keyed on the rule classes) keeps hitting.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from graphql import (
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
)
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql.validation import NoSchemaIntrospectionCustomRule
from graphql.validation.rules.max_introspection_depth_rule import MaxIntrospectionDepthRule
from strawberry.extensions import SchemaExtension
from strawberry.extensions.max_aliases import create_validator as aliases_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule

from domain.auth.scopes import ADMIN_SCOPE
from domain.settings import Settings

DEFAULT_LIST_SIZE = 20


class QueryCost:
    """Cost = fields counted, list fields multiplying their children by ``first``."""

    def __init__(self, limit: int, cache_size: int = 1024) -> None:
        self.limit = limit
        self._cache: OrderedDict[Any, int] = OrderedDict()
        self._cache_size = cache_size

    def check(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation_name: str | None,
        variables: dict[str, Any] | None,
    ) -> GraphQLError | None:
        ints = tuple(sorted((k, v) for k, v in (variables or {}).items() if type(v) is int))
        key = (id(document), operation_name, ints)
        cost = self._cache.get(key)
        if cost is None:
            cost = self.compute(schema, document, operation_name, variables or {})
            self._cache[key] = cost
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
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
    """Everything the per-request extension needs, built once per schema."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.rules = (
            depth_rule(settings.max_depth, None, None),
            aliases_rule(settings.max_aliases),
            MaxIntrospectionDepthRule,
        )
        self.closed_rules = (*self.rules, NoSchemaIntrospectionCustomRule)
        self.cost = QueryCost(settings.max_cost)

    def extension(self) -> LimitsExtension:
        return LimitsExtension(self)


class LimitsExtension(SchemaExtension):
    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    def on_operation(self) -> Iterator[None]:
        ctx = self.execution_context
        ctx.parse_options["max_tokens"] = self.limits.settings.max_tokens
        context = ctx.context
        admin = context is not None and context.has(ADMIN_SCOPE)
        extra = (
            self.limits.closed_rules
            if self.limits.settings.is_prod and not admin
            else self.limits.rules
        )
        ctx.validation_rules = ctx.validation_rules + extra
        yield

    def on_execute(self) -> Iterator[None]:
        # Cost depends on variables, so it is checked once validation has passed; setting a result
        # here makes Strawberry skip execution entirely.
        ctx = self.execution_context
        if ctx.graphql_document is not None:
            error = self.limits.cost.check(
                ctx.schema._schema, ctx.graphql_document, ctx.operation_name, ctx.variables
            )
            if error is not None:
                ctx.result = GraphQLExecutionResult(data=None, errors=[error])
        yield
