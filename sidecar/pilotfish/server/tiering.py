"""Tier routing at the edge: gather a request's facts, ask ``failover.tiers`` to decide, note the decision.

A class with tiers has no members of its own. The chat and embeddings handlers call ``route_tiers``
with the class they looked up; it returns the chosen tier's route (what the engine plans) and the
routes of the tiers above it (the engine's escalation), and writes the decision on the request record,
from where it reaches the response headers, the log line, the metrics and the trace.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from pilotfish.failover import engine, tiers
from pilotfish.routes import document
from pilotfish.server import keys
from pilotfish.telemetry import records
from pilotfish.wire import openai


def chat_facts(request: web.Request, chat: openai.ChatRequest) -> tiers.RequestFacts:
    """What the tier rules may look at in a chat request (either dialect, once canonical)."""
    return tiers.RequestFacts(
        prompt_tokens=chat.estimate_prompt_tokens(),
        has_tools=bool(chat.tools),
        has_response_format=chat.response_format is not None,
        max_tokens=chat.output_token_limit(),
        headers=request.headers,
        pod_labels=request.app[keys.POD_LABELS],
    )


def route_tiers(
    request: web.Request,
    route: document.ClassRoute,
    record: records.RequestRecord,
    *,
    facts: tiers.RequestFacts | None,
) -> tuple[document.ClassRoute, tuple[document.ClassRoute, ...]]:
    """``route`` itself when it has no tiers; else the chosen tier and the tiers above it.

    ``facts`` None (an embeddings request): only the rules on headers and pod labels apply."""
    if route.tiers is None:
        return route, ()
    if facts is not None:
        decision = tiers.decide(route.tiers, facts)
    else:
        pod_labels = request.app[keys.POD_LABELS]
        decision = tiers.decide_by_context(route.tiers, headers=request.headers, pod_labels=pod_labels)
    record.tier, record.tier_reason = decision.tier, decision.reason
    snapshot = request.app[keys.LIVE].snapshot
    classes: Mapping[str, document.ClassRoute] = snapshot.document.classes if snapshot else {}
    ladder = [classes[name] for name in (decision.tier, *decision.escalation) if _serves(classes.get(name))]
    if not ladder:
        raise engine.AllMembersFailed(class_name=route.name, code="no_available_members", failure=None)
    return ladder[0], tuple(ladder[1:])


def _serves(route: document.ClassRoute | None) -> bool:
    return route is not None and route.tiers is None and bool(route.members)
