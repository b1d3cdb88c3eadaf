"""The wire format between a sidecar and the operator's allowance endpoint. Pure data.

``POST /v1/namespaces/{namespace}/allowances`` with ``Authorization: Bearer <the pod's ServiceAccount
token>`` (audience ``pilotfish``). Each ask reports what the sidecar used of one limit of one counter (a
Budget, or a ModelClass member's provider quota: ``kind``) in one window since its last report, and may
ask for more. The operator answers each ask with a grant
(possibly of 0 units, ``exhausted``). A sidecar can only report and ask; it never sets a limit or a
counter, and the operator takes the namespace from the reviewed token, never from the body.

msgspec Structs, not pydantic models: the sidecar encodes a request and decodes a reply every
``REPORT_SECONDS``, and the serving process should not load pydantic for it (docs/benchmarks.md, "What
the idle RSS is made of"). Constructors do not validate (our own code builds these); ``decode_request``
and ``decode_reply`` do, with the bounds below, as the pydantic models did: unknown fields refused,
camelCase names, ``strict=False`` for the scalars pydantic's lax mode took (``"5"`` for an int).
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from pilotfish.budgets import windows
from pilotfish.specs import budget as budget_specs  # `budget` is a field name below
from pilotfish.specs import structs as specs_structs
from pilotfish.wire import structs

PATH = "/v1/namespaces/{namespace}/allowances"
AUDIENCE = "pilotfish"  # the projected token's audience: useless against the API server itself
MAX_ASKS = 256  # one per (budget, limit): a namespace with more budgets than this is not a real one
MAX_BODY_BYTES = 64 * 1024
MAX_UNITS = 10**15


class Message(specs_structs.Spec, frozen=True, kw_only=True, omit_defaults=True):
    """The runtime specs' shape (camelCase, unknown fields refused); fields at their defaults are left out
    (``omit_defaults``): a Budget's ask or grant reads as it did before quotas, so a sidecar and an
    operator of different versions still understand each other."""


class Counter(Message, frozen=True, kw_only=True):
    """Which counter an ask or a grant is about; the defaults keep a Budget-only sidecar's wire unchanged."""

    kind: budget_specs.CountedKind = budget_specs.CountedKind.BUDGET
    budget: Annotated[str, msgspec.Meta(min_length=1, max_length=253)]  # the Budget, or a quota's ModelClass
    member: Annotated[str, msgspec.Meta(max_length=512)] = ""  # a quota's member id (credential/model)

    def counted(self) -> budget_specs.Counted:
        return budget_specs.Counted(self.kind, self.budget, self.member)


class Ask(Counter, frozen=True, kw_only=True):
    limit: budget_specs.Limit
    window: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    used: Annotated[int, msgspec.Meta(ge=0, le=MAX_UNITS)]  # units used in window since the last report
    balance: Annotated[int, msgspec.Meta(ge=-MAX_UNITS, le=MAX_UNITS)]  # the local allowance left (negative: debt)
    want: bool  # whether to top the allowance up to one grant


class AllowanceRequest(Message, frozen=True, kw_only=True):
    pod: Annotated[str, msgspec.Meta(max_length=253)] = ""  # for the operator's log; not trusted
    asks: Annotated[list[Ask], msgspec.Meta(max_length=MAX_ASKS)]


class Grant(Counter, frozen=True, kw_only=True):
    limit: budget_specs.Limit
    window: str
    amount: Annotated[int, msgspec.Meta(ge=0)]  # units added to the sidecar's allowance (debt first)
    exhausted: bool  # the namespace has spent this window's limit
    retry_after: Annotated[float, msgspec.Meta(ge=0)]  # seconds until the window ends

    @classmethod
    def answering(cls, ask: Ask, window: windows.Window, *, amount: int, exhausted: bool, wall: float) -> Grant:
        """The answer to ``ask`` in ``window``, the operator's and the local counters' alike."""
        return cls(
            kind=ask.kind,
            budget=ask.budget,
            member=ask.member,
            limit=ask.limit,
            window=window.key,
            amount=amount,
            exhausted=exhausted,
            retry_after=float(max(0.0, window.ends_at - wall)),  # a float on the wire ("50.0"), as ever
        )


class AllowanceReply(Message, frozen=True, kw_only=True):
    grants: list[Grant]


class Malformed(ValueError):
    """A body that is not a valid message; the text names the field at fault (``asks[0].used: ...``)."""


_request = msgspec.json.Decoder(AllowanceRequest, strict=False)
_reply = msgspec.json.Decoder(AllowanceReply, strict=False)


def decode_request(body: bytes) -> AllowanceRequest:
    """What a sidecar sent, validated; raises ``Malformed``."""
    try:
        return _request.decode(body)
    except msgspec.DecodeError as exc:
        raise Malformed(_phrased(exc)) from exc


def decode_reply(body: bytes) -> AllowanceReply:
    """What the operator answered, validated; raises ``Malformed``."""
    try:
        return _reply.decode(body)
    except msgspec.DecodeError as exc:
        raise Malformed(_phrased(exc)) from exc


def encode(message: AllowanceRequest | AllowanceReply) -> bytes:
    """The JSON body: the bytes ``orjson.dumps(to_wire(message))`` gives, without the dict between."""
    return msgspec.json.encode(message)


def to_wire(message: AllowanceRequest | AllowanceReply) -> dict[str, object]:
    """The JSON object, without the fields at their defaults (``Message``)."""
    wire: dict[str, object] = msgspec.to_builtins(message)
    return wire


def _phrased(exc: msgspec.DecodeError) -> str:
    detail, path = structs.problem(exc) if isinstance(exc, msgspec.ValidationError) else (str(exc), "")
    return f"{path}: {detail}" if path else detail
