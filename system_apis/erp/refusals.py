"""How a refusal of the ERP reaches the caller."""

from __future__ import annotations

from shared.problems import ProblemError
from system_apis.erp.port import Conflict, ErpRefusal, NotFound

_STATUS: dict[type[ErpRefusal], int] = {NotFound: 404, Conflict: 409}


def problem(exc: ErpRefusal) -> ProblemError:
    return ProblemError(_STATUS.get(type(exc), 422), exc.slug, str(exc))
