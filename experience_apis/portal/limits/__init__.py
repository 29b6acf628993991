"""What the portal refuses or hides before and while a query runs: the schema's
extensions, in one list (decision 0037). Each is built per request from the running
app's guard (``guard.py``: the settings, see shared/settings.py):

1. persisted queries (APQ; only registered operations when the setting says so);
2. the token limit (graphql-core stops parsing past ``max_tokens``);
3. strawberry's parser cache;
4. depth, alias and (when switched off) introspection rules: strawberry's
   QueryDepthLimiter, MaxAliasesLimiter and DisableIntrospection rules, built once per
   limit so that the validation cache, keyed by the rules, hits across requests;
5. strawberry's validation cache;
6. the query cost: refused above the budget before execution, reported in
   ``extensions.cost`` (requestedQueryCost, actualQueryCost, budget);
7. errors: limit refusals coded, unexpected errors masked outside development with
   the correlation id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import cache

from graphql import ASTValidationRule, GraphQLError, NoSchemaIntrospectionCustomRule
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.extensions.max_aliases import create_validator as alias_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule

from experience_apis.portal.limits.cost import QueryCost
from experience_apis.portal.limits.errors import PortalErrors
from experience_apis.portal.limits.guard import Guard, current_guard, guarding
from experience_apis.portal.limits.persisted import PersistedQueries

__all__ = ["Guard", "current_guard", "guarding", "portal_extensions"]

PARSER_CACHE_SIZE = 256
VALIDATION_CACHE_SIZE = 256


@cache
def validation_rules(
    max_depth: int, max_aliases: int, introspection: bool
) -> tuple[type[ASTValidationRule], ...]:
    rules: list[type[ASTValidationRule]] = [
        depth_rule(max_depth, None, None),
        alias_rule(max_aliases),
    ]
    if not introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    return tuple(rules)


def _persisted() -> SchemaExtension:
    return PersistedQueries(current_guard())


def _tokens() -> SchemaExtension:
    return MaxTokensLimiter(max_token_count=current_guard().max_tokens)


class _ParserCache(ParserCache):
    """strawberry's ParserCache, except that a document that does not parse is left to
    strawberry's own parse, whose error is answered like any other (coded, logged once)
    instead of escaping the parsing step."""

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        try:
            context.graphql_document = self.cached_parse_document(
                context.query, **context.parse_options
            )
        except GraphQLError:
            context.graphql_document = None
        yield


def _parser_cache() -> SchemaExtension:
    return _ParserCache(maxsize=PARSER_CACHE_SIZE)


def _validation_rules() -> SchemaExtension:
    guard = current_guard()
    return AddValidationRules(
        list(validation_rules(guard.max_depth, guard.max_aliases, guard.introspection))
    )


def _validation_cache() -> SchemaExtension:
    return ValidationCache(maxsize=VALIDATION_CACHE_SIZE)


def _cost() -> SchemaExtension:
    return QueryCost(current_guard())


def _errors() -> SchemaExtension:
    return PortalErrors(mask=current_guard().mask_errors)


def portal_extensions() -> list[Callable[[], SchemaExtension]]:
    return [
        _persisted,
        _tokens,
        _parser_cache,
        _validation_rules,
        _validation_cache,
        _cost,
        _errors,
    ]
