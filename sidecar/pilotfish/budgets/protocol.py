"""The wire format between a sidecar and the operator's allowance endpoint. Pure data.

``POST /v1/namespaces/{namespace}/allowances`` with ``Authorization: Bearer <the pod's ServiceAccount
token>`` (audience ``pilotfish``). Each ask reports what the sidecar used of one budget's limit in one
window since its last report, and may ask for more. The operator answers each ask with a grant
(possibly of 0 units, ``exhausted``). A sidecar can only report and ask; it never sets a limit or a
counter, and the operator takes the namespace from the reviewed token, never from the body.
"""

from __future__ import annotations

import pydantic

from pilotfish.api import base
from pilotfish.api import budget as budget_api  # `budget` is a field name below

PATH = "/v1/namespaces/{namespace}/allowances"
AUDIENCE = "pilotfish"  # the projected token's audience: useless against the API server itself
MAX_ASKS = 256  # one per (budget, limit): a namespace with more budgets than this is not a real one
MAX_BODY_BYTES = 64 * 1024


class Ask(base.ApiModel):
    budget: str = pydantic.Field(min_length=1, max_length=253)
    limit: budget_api.Limit
    window: str = pydantic.Field(min_length=1, max_length=32)
    used: int = pydantic.Field(ge=0, le=10**15, description="Units used in window since the last report.")
    balance: int = pydantic.Field(ge=-(10**15), le=10**15, description="The local allowance left (negative: debt).")
    want: bool = pydantic.Field(description="Whether to top the allowance up to one grant.")


class AllowanceRequest(base.ApiModel):
    pod: str = pydantic.Field(default="", max_length=253, description="For the operator's log; not trusted.")
    asks: list[Ask] = pydantic.Field(max_length=MAX_ASKS)


class Grant(base.ApiModel):
    budget: str
    limit: budget_api.Limit
    window: str
    amount: int = pydantic.Field(ge=0, description="Units added to the sidecar's allowance (debt first).")
    exhausted: bool = pydantic.Field(description="The namespace has spent this window's limit.")
    retry_after: float = pydantic.Field(ge=0, description="Seconds until the window ends.")


class AllowanceReply(base.ApiModel):
    grants: list[Grant]
