"""The allowance protocol's bytes, pinned: sidecars and operators of different versions meet during a
rollout, so what one sends the other must read, and a Budget-only message must read as before quotas.

The JSON below is what main produced at 64ca42f, when the messages were pydantic models
(``orjson.dumps(model_dump(by_alias=True, exclude_defaults=True, mode="json"))``).
"""

from __future__ import annotations

import orjson
import pytest

from pilotfish.api import budget
from pilotfish.budgets import protocol, windows

MINUTE = "2026-12-02T01:35"
BUDGET_ASK = protocol.Ask(budget="team", limit=budget.Limit.REQUESTS, window=MINUTE, used=3, balance=-2, want=True)
QUOTA_ASK = protocol.Ask(
    kind=budget.CountedKind.QUOTA,
    budget="chat",
    member="primary/gpt-5-mini",
    limit=budget.Limit.TOKENS,
    window=MINUTE,
    used=1200,
    balance=0,
    want=False,
)
BUDGET_GRANT = protocol.Grant(
    budget="team", limit=budget.Limit.SPEND, window="2026-12-02", amount=5000, exhausted=False, retry_after=81890.0
)
QUOTA_GRANT = protocol.Grant(
    kind=budget.CountedKind.QUOTA,
    budget="chat",
    member="primary/gpt-5-mini",
    limit=budget.Limit.REQUESTS,
    window=MINUTE,
    amount=0,
    exhausted=True,
    retry_after=49.75,
)
PINNED: list[tuple[protocol.AllowanceRequest | protocol.AllowanceReply, bytes]] = [
    (
        protocol.AllowanceRequest(asks=[BUDGET_ASK]),
        b'{"asks":[{"budget":"team","limit":"requests","window":"2026-12-02T01:35","used":3,"balance":-2,"want":true}]}',
    ),
    (
        protocol.AllowanceRequest(pod="app-7d9f-x2", asks=[BUDGET_ASK, QUOTA_ASK]),
        b'{"pod":"app-7d9f-x2","asks":[{"budget":"team","limit":"requests","window":"2026-12-02T01:35","used":3,'
        b'"balance":-2,"want":true},{"kind":"quota","budget":"chat","member":"primary/gpt-5-mini","limit":"tokens",'
        b'"window":"2026-12-02T01:35","used":1200,"balance":0,"want":false}]}',
    ),
    (
        protocol.AllowanceReply(grants=[BUDGET_GRANT]),
        b'{"grants":[{"budget":"team","limit":"spend","window":"2026-12-02","amount":5000,"exhausted":false,'
        b'"retryAfter":81890.0}]}',
    ),
    (
        protocol.AllowanceReply(grants=[BUDGET_GRANT, QUOTA_GRANT]),
        b'{"grants":[{"budget":"team","limit":"spend","window":"2026-12-02","amount":5000,"exhausted":false,'
        b'"retryAfter":81890.0},{"kind":"quota","budget":"chat","member":"primary/gpt-5-mini","limit":"requests",'
        b'"window":"2026-12-02T01:35","amount":0,"exhausted":true,"retryAfter":49.75}]}',
    ),
    (protocol.AllowanceRequest(asks=[]), b'{"asks":[]}'),
    (protocol.AllowanceReply(grants=[]), b'{"grants":[]}'),
]


@pytest.mark.parametrize(("message", "pinned"), PINNED)
def test_messages_are_the_bytes_main_sent_before_msgspec(message, pinned):
    assert protocol.encode(message) == pinned
    assert orjson.dumps(protocol.to_wire(message)) == pinned


@pytest.mark.parametrize(("message", "pinned"), PINNED)
def test_what_a_peer_of_the_pydantic_version_sends_is_read_as_it_meant(message, pinned):
    decode = protocol.decode_request if isinstance(message, protocol.AllowanceRequest) else protocol.decode_reply
    assert decode(pinned) == message


def test_a_budget_grant_of_an_older_operator_is_a_budgets_and_its_counters_match_the_ask():
    grant = protocol.decode_reply(PINNED[2][1]).grants[0]
    assert grant.counted() == budget.Counted.of_budget("team")
    assert protocol.decode_request(PINNED[1][1]).asks[1].counted() == budget.Counted.of_quota(
        "chat", "primary/gpt-5-mini"
    )


@pytest.mark.parametrize(
    "ask",
    [
        {
            "kind": "budget",
            "member": "",
            "budget": "t",
            "limit": "requests",
            "window": "w",
            "used": 1,
            "balance": 0,
            "want": True,
        },
        {"budget": "t", "limit": "requests", "window": "w", "used": "1", "balance": 0.0, "want": "true"},
    ],
)
def test_what_pydantic_read_from_a_sidecar_is_still_read(ask):
    """Defaults written out, and the scalars pydantic's lax mode took."""
    got = protocol.decode_request(orjson.dumps({"asks": [ask]})).asks[0]
    assert (got.kind, got.member, got.used, got.balance, got.want) == (budget.CountedKind.BUDGET, "", 1, 0, True)


def test_a_grant_says_how_long_to_wait_as_a_float_whatever_the_clock_gives():
    ask = protocol.decode_request(PINNED[0][1]).asks[0]
    grant = protocol.Grant.answering(ask, windows.Window(MINUTE, 100), amount=1, exhausted=False, wall=50)
    assert b'"retryAfter":50.0' in protocol.encode(protocol.AllowanceReply(grants=[grant]))


def ask_body(**fields: object) -> bytes:
    ask = {"budget": "t", "limit": "requests", "window": "w", "used": 1, "balance": 0, "want": True} | fields
    return orjson.dumps({"asks": [ask]})


EDGES = {  # the largest values each bound admits
    "budget": "b" * 253,
    "member": "m" * 512,
    "window": "w" * 32,
    "used": 10**15,
    "balance": -(10**15),
}


@pytest.mark.parametrize(("field", "value"), EDGES.items())
def test_the_bounds_admit_their_edge(field, value):
    assert getattr(protocol.decode_request(ask_body(**{field: value})).asks[0], field) == value


def test_a_pod_name_and_the_number_of_asks_admit_their_edge():
    body = orjson.dumps({"pod": "p" * 253, "asks": [orjson.loads(ask_body())["asks"][0]] * protocol.MAX_ASKS})
    assert len(protocol.decode_request(body).asks) == protocol.MAX_ASKS


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (ask_body(budget=""), "asks[0].budget"),
        (ask_body(budget="b" * 254), "asks[0].budget"),
        (ask_body(member="m" * 513), "asks[0].member"),
        (ask_body(window=""), "asks[0].window"),
        (ask_body(window="w" * 33), "asks[0].window"),
        (ask_body(used=-1), "asks[0].used"),
        (ask_body(used=10**15 + 1), "asks[0].used"),
        (ask_body(balance=10**15 + 1), "asks[0].balance"),
        (ask_body(balance=-(10**15) - 1), "asks[0].balance"),
        (ask_body(limit="nope"), "asks[0].limit"),
        (ask_body(kind="everything"), "asks[0].kind"),
        (ask_body(want=None), "asks[0].want"),
        (ask_body(extra=1), "asks[0]: Object contains unknown field `extra`"),
        (orjson.dumps({"asks": [orjson.loads(ask_body())["asks"][0] | {"window": None}]}), "asks[0].window"),
        (orjson.dumps({"asks": "everything"}), "asks: Expected `array`"),
        (
            orjson.dumps({"asks": [orjson.loads(ask_body())["asks"][0]] * (protocol.MAX_ASKS + 1)}),
            "asks: Expected `array` of length <= 256",
        ),
        (orjson.dumps({"pod": "p" * 254, "asks": []}), "pod: "),
        (orjson.dumps({"pod": ""}), "Object missing required field `asks`"),
        (orjson.dumps([1]), "Expected `object`"),
        (b'{"asks": [', "truncated"),
        (b"not json", "JSON is malformed"),
    ],
)
def test_a_malformed_request_is_refused_naming_the_field(body, named):
    with pytest.raises(protocol.Malformed) as caught:
        protocol.decode_request(body)
    assert named in str(caught.value)


@pytest.mark.parametrize(
    ("grant", "named"),
    [
        ({"amount": -1}, "grants[0].amount"),
        ({"retryAfter": -0.5}, "grants[0].retryAfter"),
        ({"budget": ""}, "grants[0].budget"),
    ],
)
def test_a_malformed_reply_is_refused_naming_the_field(grant, named):
    good = orjson.loads(PINNED[2][1])["grants"][0]
    with pytest.raises(protocol.Malformed) as caught:
        protocol.decode_reply(orjson.dumps({"grants": [good | grant]}))
    assert str(caught.value).startswith(named)
