"""Query cost: computed before execution from connection sizes, refused above the
budget, and reported with the cost actually incurred (like Shopify's
``extensions.cost``).

Requested cost (the operation that would run, with its variables):
- a leaf field (scalar, enum, ``__typename``) costs 0;
- an object field costs 1 per object it may return, plus the cost of its selection
  for each of them: 1 for a single object or a list without a size;
- a field with ``first`` or ``last`` is sized: a list returns that many objects; a
  Relay connection (a type with ``edges`` or ``nodes``) is one object whose
  ``edges``/``nodes`` return that many, while ``pageInfo`` and ``totalCount`` count
  once; an edge and its ``node`` are one object. The size is the argument (a literal, a variable, the variable's default, the
  argument's default, else 20), cut to the portal's page size of 100, at least 0.
Fragments are counted with the fields they add; ``@skip``/``@include`` are honoured.
Introspection (``__schema``, ``__type``) costs nothing: its own setting governs it.

Actual cost: the same rule over the response, counting each object that resolved (a
null counts 0, a list as many as it holds). A list without a size is requested as one
object, so an order with many lines can cost more than was requested."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    BooleanValueNode,
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLNamedType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionNode,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    get_named_type,
    get_operation_ast,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
)
from graphql.pyutils import Undefined
from graphql.type import SchemaMetaFieldDef, TypeMetaFieldDef
from graphql.type.definition import GraphQLInterfaceType, GraphQLObjectType
from strawberry.extensions import SchemaExtension

from experience_apis.portal.limits.guard import (
    DEFAULT_CONNECTION_SIZE,
    MAX_CONNECTION_SIZE,
    Guard,
)
from experience_apis.portal.upstream import PortalError

SIZE_ARGUMENTS = ("first", "last")
ITEM_FIELDS = frozenset({"edges", "nodes"})

Fields = dict[str, tuple[GraphQLNamedType, list[FieldNode]]]
Plan = list[tuple[str, int, GraphQLNamedType, SelectionSetNode]]


class _Walk:
    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: Mapping[str, Any],
    ) -> None:
        self.schema = schema
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.variables = dict(variables)
        # The same selection is walked once per object of the response: remembered.
        self._collected: dict[tuple[int, int], tuple[SelectionSetNode, Fields]] = {}
        self._merges: dict[tuple[int, ...], SelectionSetNode | None] = {}
        self._plans: dict[tuple[int, int], tuple[SelectionSetNode, Plan]] = {}
        for definition in operation.variable_definitions or ():
            name = definition.variable.name.value
            if name not in self.variables and definition.default_value is not None:
                self.variables[name] = _literal(definition.default_value, {})

    # --- the fields a selection set asks for, merged by response key ------------------
    def collect(self, parent: GraphQLNamedType, selection_set: SelectionSetNode) -> Fields:
        key = (id(parent), id(selection_set))
        known = self._collected.get(key)
        if known is None:  # the set is kept with its fields: its id stays its own
            known = self._collected[key] = (selection_set, {})
            self._collect(parent, selection_set, known[1], frozenset())
        return known[1]

    def merged(self, nodes: list[FieldNode]) -> SelectionSetNode | None:
        key = tuple(map(id, nodes))
        if key not in self._merges:
            self._merges[key] = _merged(nodes)
        return self._merges[key]

    def _collect(
        self,
        parent: GraphQLNamedType,
        selection_set: SelectionSetNode,
        fields: Fields,
        seen: frozenset[str],
    ) -> None:
        for selection in selection_set.selections:
            if self._skipped(selection):
                continue
            if isinstance(selection, FieldNode):
                key = selection.alias.value if selection.alias else selection.name.value
                fields.setdefault(key, (parent, []))[1].append(selection)
            elif isinstance(selection, InlineFragmentNode):
                owner = self._type(selection.type_condition, parent)
                self._collect(owner, selection.selection_set, fields, seen)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in seen:
                    continue
                owner = self._type(fragment.type_condition, parent)
                self._collect(owner, fragment.selection_set, fields, seen | {name})

    def _type(self, condition: Any, parent: GraphQLNamedType) -> GraphQLNamedType:
        if condition is None:
            return parent
        found = self.schema.get_type(condition.name.value)
        return found if found is not None else parent

    def _skipped(self, selection: SelectionNode) -> bool:
        for directive in selection.directives or ():
            name = directive.name.value
            if name not in ("skip", "include"):
                continue
            condition = next(
                (a.value for a in directive.arguments or () if a.name.value == "if"), None
            )
            value = _literal(condition, self.variables) if condition is not None else None
            if name == "skip" and value is True:
                return True
            if name == "include" and value is False:
                return True
        return False

    def field(self, owner: GraphQLNamedType, node: FieldNode) -> GraphQLField | None:
        name = node.name.value
        if name == "__schema":
            return SchemaMetaFieldDef
        if name == "__type":
            return TypeMetaFieldDef
        if isinstance(owner, (GraphQLObjectType, GraphQLInterfaceType)):
            found: GraphQLField | None = owner.fields.get(name)
            return found
        return None

    def size(self, definition: GraphQLField, nodes: list[FieldNode]) -> int | None:
        """The field's ``first``/``last`` (the larger of both), or None when unsized."""
        if not any(name in definition.args for name in SIZE_ARGUMENTS):
            return None
        sizes = []
        for name in SIZE_ARGUMENTS:
            argument = definition.args.get(name)
            if argument is None:
                continue
            value: Any = None
            for node in nodes:
                given = next((a.value for a in node.arguments or () if a.name.value == name), None)
                if given is not None:
                    value = _literal(given, self.variables)
            if value is None and argument.default_value not in (None, Undefined):
                value = argument.default_value
            if isinstance(value, int) and not isinstance(value, bool):
                sizes.append(value)
        size = max(sizes) if sizes else DEFAULT_CONNECTION_SIZE
        return min(max(size, 0), MAX_CONNECTION_SIZE)

    # --- requested ---------------------------------------------------------------------
    def requested(self, parent: GraphQLNamedType, selection_set: SelectionSetNode) -> int:
        return self._requested(parent, selection_set, None)

    def _requested(
        self, parent: GraphQLNamedType, selection_set: SelectionSetNode, items: int | None
    ) -> int:
        total = 0
        for owner, nodes in self.collect(parent, selection_set).values():
            definition = self.field(owner, nodes[0])
            if definition is None or _introspection(nodes[0]):
                continue
            named = get_named_type(definition.type)
            children = self.merged(nodes)
            if is_leaf_type(named) or children is None:
                continue
            size = self.size(definition, nodes)
            listed = _is_list(definition)
            if _edge_node(owner, nodes[0]):
                total += self._requested(named, children, None)
            elif listed:
                count = size if size is not None else (items if items is not None else 1)
                total += count * (1 + self._requested(named, children, None))
            elif size is not None and _is_connection(named):
                total += 1 + self._connection(named, children, size)
            else:
                total += 1 + self._requested(named, children, None)
        return total

    def _connection(
        self, connection: GraphQLNamedType, selection_set: SelectionSetNode, size: int
    ) -> int:
        """A connection's own selection: its edges/nodes are ``size`` objects."""
        total = 0
        for owner, nodes in self.collect(connection, selection_set).values():
            single = SelectionSetNode(selections=tuple(nodes))
            items = size if nodes[0].name.value in ITEM_FIELDS else None
            total += self._requested(owner, single, items)
        return total

    # --- actual ------------------------------------------------------------------------
    def actual(self, parent: GraphQLNamedType, selection_set: SelectionSetNode, data: Any) -> int:
        if not isinstance(data, dict):
            return 0
        total = 0
        for key, own, named, children in self.plan(parent, selection_set):
            value = data.get(key)
            if isinstance(value, dict):
                total += own + self.actual(named, children, value)
            elif isinstance(value, list):
                for item in _objects(value):
                    total += own + self.actual(named, children, item)
        return total

    def plan(self, parent: GraphQLNamedType, selection_set: SelectionSetNode) -> Plan:
        """The selection's object fields (response key, own cost, type, selection), once
        per selection: the response repeats it for every object."""
        key = (id(parent), id(selection_set))
        known = self._plans.get(key)
        if known is not None:
            return known[1]
        plan: Plan = []
        for response_key, (owner, nodes) in self.collect(parent, selection_set).items():
            definition = self.field(owner, nodes[0])
            children = self.merged(nodes)
            if definition is None or children is None or _introspection(nodes[0]):
                continue
            named = get_named_type(definition.type)
            if not is_leaf_type(named):
                own = 0 if _edge_node(owner, nodes[0]) else 1
                plan.append((response_key, own, named, children))
        self._plans[key] = (selection_set, plan)
        return plan


def _edge_node(owner: GraphQLNamedType, node: FieldNode) -> bool:
    """An edge's ``node``: the edge and its node are one object."""
    return (
        node.name.value == "node"
        and isinstance(owner, (GraphQLObjectType, GraphQLInterfaceType))
        and "cursor" in owner.fields
    )


def _introspection(node: FieldNode) -> bool:
    return node.name.value.startswith("__")


def _objects(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _objects(item)


def _merged(nodes: list[FieldNode]) -> SelectionSetNode | None:
    sets = [node.selection_set for node in nodes if node.selection_set is not None]
    if not sets:
        return None
    if len(sets) == 1:
        return sets[0]
    return SelectionSetNode(selections=tuple(s for each in sets for s in each.selections))


def _is_list(definition: GraphQLField) -> bool:
    kind = definition.type
    if is_non_null_type(kind):
        kind = kind.of_type
    return is_list_type(kind)


def _is_connection(named: GraphQLNamedType) -> bool:
    return isinstance(named, (GraphQLObjectType, GraphQLInterfaceType)) and bool(
        ITEM_FIELDS & set(named.fields)
    )


def _literal(node: ValueNode, variables: Mapping[str, Any]) -> Any:
    if isinstance(node, VariableNode):
        return variables.get(node.name.value)
    if isinstance(node, IntValueNode):
        return int(node.value)
    if isinstance(node, BooleanValueNode):
        return node.value
    return None


def _root(schema: GraphQLSchema, operation: OperationDefinitionNode) -> GraphQLObjectType | None:
    return schema.get_root_type(operation.operation)


def requested_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
) -> int | None:
    """The operation's requested cost; None when the document names no such operation."""
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return None
    root = _root(schema, operation)
    if root is None:
        return None
    return _Walk(schema, document, operation, variables or {}).requested(
        root, operation.selection_set
    )


def actual_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    data: Any,
) -> int:
    operation = get_operation_ast(document, operation_name)
    root = _root(schema, operation) if operation is not None else None
    if operation is None or root is None:
        return 0
    return _Walk(schema, document, operation, variables or {}).actual(
        root, operation.selection_set, data
    )


def cost_exceeded(requested: int, budget: int) -> PortalError:
    return PortalError(
        f"The query's cost is {requested}, above the budget of {budget}: ask for fewer "
        "items (first/last) or fewer nested connections.",
        "MAX_COST_EXCEEDED",
        cost={"requestedQueryCost": requested, "budget": budget},
    )


class QueryCost(SchemaExtension):
    """Refuses an operation above the budget before it runs; reports the cost."""

    def __init__(self, guard: Guard) -> None:
        self.budget = guard.cost_budget
        self.requested: int | None = None
        self.actual = 0

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        schema = context.schema._schema
        if document is not None:
            self.requested = requested_cost(
                schema, document, context.operation_name, context.variables
            )
        refused = self.requested is not None and self.requested > self.budget
        if refused:
            assert self.requested is not None
            context.result = ExecutionResult(
                data=None, errors=[cost_exceeded(self.requested, self.budget)]
            )
        yield
        result = context.result
        if not refused and document is not None and isinstance(result, ExecutionResult):
            self.actual = actual_cost(
                schema, document, context.operation_name, context.variables, result.data
            )

    def get_results(self) -> dict[str, Any]:
        if self.requested is None:
            return {}
        return {
            "cost": {
                "requestedQueryCost": self.requested,
                "actualQueryCost": self.actual,
                "budget": self.budget,
            }
        }
