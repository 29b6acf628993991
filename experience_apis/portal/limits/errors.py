"""What an error says to the client.

- Every refusal of a limit carries a stable ``extensions.code`` (MAX_DEPTH_EXCEEDED,
  MAX_ALIASES_EXCEEDED, MAX_TOKENS_EXCEEDED, INTROSPECTION_DISABLED; MAX_COST_EXCEEDED
  and the persisted-query codes are raised with theirs).
- Outside development, an unexpected exception (not a PortalError, not GraphQL's own)
  is masked: "Internal error." with code INTERNAL_SERVER_ERROR and the request's
  correlation id in ``extensions.correlation_id``, the id its log line carries. In
  development the exception's own message is shown."""

from __future__ import annotations

from graphql import GraphQLError
from strawberry.extensions import MaskErrors

from experience_apis.portal.upstream import PortalError
from shared.correlation import correlation_id

MASKED_MESSAGE = "Internal error."

# graphql-core's and strawberry's wording of each limit's refusal -> its code.
_LIMIT_CODES = (
    ("exceeds maximum operation depth", "MAX_DEPTH_EXCEEDED"),
    ("aliases found. Allowed:", "MAX_ALIASES_EXCEEDED"),
    ("tokens. Parsing aborted", "MAX_TOKENS_EXCEEDED"),
    ("introspection has been disabled", "INTROSPECTION_DISABLED"),
)


def unexpected(error: GraphQLError) -> bool:
    original = error.original_error
    return original is not None and not isinstance(original, (PortalError, GraphQLError))


def limit_code(error: GraphQLError) -> str | None:
    if error.original_error is not None or (error.extensions or {}).get("code"):
        return None
    message = error.message
    return next((code for text, code in _LIMIT_CODES if text in message), None)


class PortalErrors(MaskErrors):
    """Masks unexpected errors (when ``mask``), codes the limits' refusals."""

    def __init__(self, *, mask: bool) -> None:
        super().__init__(should_mask_error=self._should_mask, error_message=MASKED_MESSAGE)
        self.mask = mask

    def _should_mask(self, error: GraphQLError) -> bool:
        return self.mask and unexpected(error)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        masked = super().anonymise_error(error)
        masked.extensions = {
            "code": "INTERNAL_SERVER_ERROR",
            "correlation_id": correlation_id.get(),
        }
        return masked

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        processed = super()._process_errors(errors)
        for error in processed:
            code = limit_code(error)
            if code is not None:
                error.extensions = {**(error.extensions or {}), "code": code}
        return processed
