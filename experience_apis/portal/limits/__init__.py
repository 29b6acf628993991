"""What the portal refuses or hides before and while a query runs (depth, aliases,
masked errors, ...): the schema's extensions, in one list."""

from __future__ import annotations

from collections.abc import Callable

from graphql import GraphQLError
from strawberry.extensions import MaskErrors, MaxAliasesLimiter, QueryDepthLimiter, SchemaExtension

from experience_apis.portal.upstream import PortalError

MAX_DEPTH = 8
MAX_ALIASES = 30  # each aliased order is an upstream call


def _mask(error: GraphQLError) -> bool:
    """Hide the text of unexpected exceptions; keep GraphQL's own and ours."""
    original = error.original_error
    return original is not None and not isinstance(original, (PortalError, GraphQLError))


def portal_extensions() -> list[Callable[[], SchemaExtension]]:
    return [
        lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        lambda: MaskErrors(should_mask_error=_mask, error_message="Internal error."),
    ]
