"""Active health probes: while a member's circuit is open, the sidecar finds out itself whether the
member is back, so that no user request is ever the probe of a dead member.

Only members whose ProviderCredential declares ``spec.probe`` are probed this way; their breakers
admit no caller while half-open (``breaker.CircuitBreaker.active_probe``), and the engine does not
send them a last-resort attempt either. Every ``TICK_SECONDS`` (jittered ±50%, so the sidecars of a
fleet do not tick together) the prober looks for such members whose cooldown has ended
(``HealthRegistry.probes_due``). For each, with probability ``probe.share`` it sends one probe
(``probe_request``), else it leaves this cooldown's probe to other sidecars and waits another jittered
cooldown (``breaker.postpone``). A probe's outcome is recorded like an attempt's: success (or an
answer that says the member is up, such as a 400 for the probe's own shape) closes the circuit, a
failure that counts against health opens it again for a fresh jittered cooldown.

The fleet-wide rate this bounds, per member while it is down: about ``pods * share / cooldown``
probes, and for ``generation`` probes about 10 tokens each (``pilotfish_probe_tokens_total`` counts
them as the provider reports them). docs/architecture.md states the arithmetic.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Callable

from pilotfish import failures, upstream
from pilotfish.failover import health, policy
from pilotfish.providers import registry
from pilotfish.routes import document
from pilotfish.specs import credential, refs
from pilotfish.telemetry import metrics
from pilotfish.wire import http, openai

TICK_SECONDS = 1.0  # how often due probes are looked for (jittered): a second late is nothing to a cooldown
PROBE_SECONDS = 10.0  # a probe's whole deadline; one that takes longer has failed
ANSWER_MAX_BYTES = 64 * 1024  # a probe's answer is a token or a model list: more is not read
# A fixed prompt: the same few tokens every time, and a 1-token limit on the answer.
PROBE_CHAT = openai.ChatRequest.from_body(
    {"model": "pilotfish-probe", "messages": [{"role": "user", "content": "Say OK."}], "max_tokens": 1}
)
# Where each vendor lists its models, from the member's base URL (azure-openai has no such list).
MODELS_PATHS = {
    credential.ProviderType.OPENAI: "/models",
    credential.ProviderType.OPENAI_COMPATIBLE: "/models",
    credential.ProviderType.ANTHROPIC: "/v1/models",
    credential.ProviderType.GEMINI: "/v1beta/models",
}


class Prober:
    """Probes the actively probed members whose cooldown has ended; ``run`` until cancelled."""

    def __init__(
        self,
        *,
        registry_: health.HealthRegistry,
        sessions: upstream.Sessions,
        keys_of: Callable[[], health.Keys],
        observe: metrics.Metrics,
        rng: random.Random,
        now: Callable[[], float],
    ) -> None:
        self._registry, self._sessions, self._keys_of = registry_, sessions, keys_of
        self._metrics, self._rng, self._now = observe, rng, now
        self._out: dict[tuple[str, str], asyncio.Task[None]] = {}  # (class, member id) → its probe in flight

    async def run(self) -> None:
        try:
            while True:
                await asyncio.sleep(TICK_SECONDS * self._rng.uniform(0.5, 1.5))
                self.tick()
        finally:
            for task in list(self._out.values()):
                task.cancel()

    def tick(self) -> None:
        """Start a probe for every due member this sidecar probes this time; postpone the others."""
        for class_name, member, member_health in self._registry.probes_due():
            assert member.probe is not None  # probes_due lists only members with a probe
            which = (class_name, member.id)
            if which in self._out:
                continue  # its probe is still out
            if self._rng.random() >= member.probe.share:
                member_health.breaker.postpone()
                self._metrics.probed(class_name, member.id, result="postponed", tokens=0)
            elif member_health.breaker.lease_probe():
                task = self._out[which] = asyncio.create_task(self._probe(class_name, member, member_health))
                task.add_done_callback(functools.partial(self._done, which))

    def _done(self, which: tuple[str, str], _: asyncio.Task[None]) -> None:
        self._out.pop(which, None)

    async def _probe(self, class_name: str, member: document.MemberRoute, member_health: health.MemberHealth) -> None:
        started = self._now()
        key = self._keys_of().get((member.api_key_ref.name, member.api_key_ref.key)) if member.api_key_ref else None
        try:
            if key is None and member.api_key_ref is not None:
                raise failures.AttemptFailed(failures.Failure(kind=failures.FailureKind.AUTH, detail="key_missing"))
            async with asyncio.timeout(PROBE_SECONDS):
                tokens = await probe_once(self._sessions, member, probe_request(member, key))
        except (failures.AttemptFailed, TimeoutError) as exc:
            failure = exc.failure if isinstance(exc, failures.AttemptFailed) else _timed_out()
            rule = policy.policy_for(failure.kind)
            if rule.counts_against_health:
                member_health.record_failure(
                    failure=failure, counts_against_health=True, open_for=rule.open_circuit_seconds
                )
                self._metrics.probed(class_name, member.id, result=failure.kind.value, tokens=0)
                return
            tokens = 0  # it answered (a 400 for the probe's own shape, say): the member is up
        except BaseException:
            member_health.breaker.release_probe()
            raise
        member_health.record_success(latency=self._now() - started, ttft=None)
        self._metrics.probed(class_name, member.id, result="success", tokens=tokens)


def probe_request(member: document.MemberRoute, key: refs.ApiKey | None) -> http.UpstreamRequest:
    """The probe the member's credential asks for, built by the member's own adapter (its auth headers)."""
    assert member.probe is not None
    generation = registry.adapter_for(member.provider).build_request(PROBE_CHAT, member, api_key=key)
    if member.probe.kind is credential.ProbeKind.GENERATION:
        return generation
    headers = {name: value for name, value in generation.headers.items() if name.lower() != "content-type"}
    return http.UpstreamRequest(
        url=member.base_url + MODELS_PATHS[member.provider], headers=headers, body=b"", stream=False, method="GET"
    )


async def probe_once(sessions: upstream.Sessions, member: document.MemberRoute, request: http.UpstreamRequest) -> int:
    """Send the probe; the tokens it cost (as the provider reported them), or AttemptFailed."""
    adapter = registry.adapter_for(member.provider)
    stream = await upstream.open_stream(
        sessions,
        request,
        connect_timeout=PROBE_SECONDS,
        read_timeout=PROBE_SECONDS,
        classify=adapter.classify_error,
    )
    if not request.stream:
        await stream.read(max_bytes=ANSWER_MAX_BYTES)
        return 0
    translator, tokens, answered = adapter.new_stream_translator(member=member), 0, False
    try:
        async for batch in stream.batches(max_bytes=ANSWER_MAX_BYTES):
            for event in batch:
                for chunk in translator.feed(event):
                    answered = True
                    usage = chunk.get("usage") or {}
                    tokens = max(
                        tokens, int(usage.get("prompt_tokens") or 0) + int(usage.get("completion_tokens") or 0)
                    )
            if translator.finished:
                break
    finally:
        stream.close()
    if not answered:
        raise failures.AttemptFailed(
            failures.Failure(kind=failures.FailureKind.BAD_RESPONSE, detail="empty probe answer")
        )
    return tokens


def _timed_out() -> failures.Failure:
    return failures.Failure(kind=failures.FailureKind.FIRST_TOKEN_TIMEOUT, detail=f"no answer in {PROBE_SECONDS:g}s")
