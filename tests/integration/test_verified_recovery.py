"""Recovery that never corrupts an answer: what a resuming member sends is checked against what the client
already has, a member that cannot continue is learned as such and skipped, and a class may regenerate and
splice when nobody can continue. Every case ends with the whole answer exactly once, or with an in-band
error after a prefix of it: never duplicated or garbled text."""

from __future__ import annotations

from tests.integration.conftest import KEYS, streamed

from pilotfish.mocks import answers, runner

PRIMARY = answers.ANSWER.format(name="primary")


def _class(*members: str, spec: str = "") -> str:
    listed = "".join(f"    - {member}\n" for member in members)
    return (
        "apiVersion: pilotfish.dev/v1alpha1\nkind: ModelClass\nmetadata: {name: workhorse}\nspec:\n"
        f"  members:\n{listed}"
        "  timeouts: {connectSeconds: 1, firstTokenSeconds: 2, totalSeconds: 20}\n"
        "  health: {failureThreshold: 5, cooldownSeconds: 1}\n" + spec
    )


async def test_a_member_that_starts_over_is_spliced_exactly_and_learned_unable_to_continue(local_sidecar, mocks):
    sidecar = await local_sidecar(
        _class("{credentialRef: primary, model: model-a}", "{credentialRef: gemini, model: gemini-2.5-pro}")
    )
    mocks["primary"].set_fault(mode="cut", after_chunks=4)
    mocks["gemini"].set_fault(mode="restart")
    received = await streamed(sidecar)
    text, error = received.text, received.error
    assert (text, error) == (PRIMARY, None)  # whole and once: the repeated start was dropped
    gemini = await sidecar.member("workhorse", "gemini/gemini-2.5-pro")
    assert gemini["canContinue"] is False and gemini["cannotContinueReason"] == "restarted"
    assert (
        'pilotfish_member_can_continue{class="workhorse",member="gemini/gemini-2.5-pro"} 0.0' in await sidecar.metrics()
    )


async def test_a_member_that_starts_over_differently_ends_the_stream_with_an_error_after_a_clean_prefix(
    local_sidecar, mocks
):
    sidecar = await local_sidecar(
        _class("{credentialRef: primary, model: model-a}", "{credentialRef: gemini, model: gemini-2.5-pro}")
    )
    mocks["primary"].set_fault(mode="cut", after_chunks=4)
    mocks["gemini"].set_fault(mode="diverge")
    received = await streamed(sidecar)
    text, error = received.text, received.error
    assert error is not None and "incomplete" in str(error)
    assert text == "".join(answers.words("primary")[:4])  # only what the primary sent: nothing of the other answer
    assert (await sidecar.member("workhorse", "gemini/gemini-2.5-pro"))["cannotContinueReason"] == "diverged"
    assert 'result="diverged"' in await sidecar.metrics()


async def test_a_member_that_rejects_the_prefill_is_skipped_and_the_next_capable_member_continues(local_sidecar, mocks):
    sidecar = await local_sidecar(
        _class(
            "{credentialRef: primary, model: model-a}",
            "{credentialRef: gemini, model: gemini-2.5-pro}",
            "{credentialRef: claude, model: claude-sonnet-4-5}",
        )
    )
    mocks["primary"].set_fault(mode="cut", after_chunks=4)
    mocks["gemini"].set_fault(mode="no-prefill")
    received = await streamed(sidecar)
    text, error = received.text, received.error
    assert (text, error) == (PRIMARY, None)
    gemini = await sidecar.member("workhorse", "gemini/gemini-2.5-pro")
    assert gemini["canContinue"] is False and gemini["cannotContinueReason"] == "prefill_rejected"
    # what the operator's sweep reads onto the ModelClass's PrefillMismatch condition
    readyz = await sidecar.get_json("/readyz")
    assert readyz["cannotContinue"] == {"workhorse": {"gemini/gemini-2.5-pro": "prefill_rejected"}}
    # the next break goes straight to the member that can continue: the lesson is not paid for twice
    before = mocks["gemini"].stats.requests
    received = await streamed(sidecar)
    assert (received.text, received.error) == (PRIMARY, None)
    assert mocks["gemini"].stats.requests == before


async def test_a_member_declared_able_to_prefill_that_cannot_is_caught_by_the_seam(local_sidecar, mocks):
    sidecar = await local_sidecar(
        _class("{credentialRef: primary, model: model-a}", "{credentialRef: backup, model: model-b, prefill: true}")
    )
    mocks["primary"].set_fault(mode="cut", after_chunks=4)
    mocks["backup"].set_fault(mode="restart")  # declared able, in fact starts over
    received = await streamed(sidecar)
    text, error = received.text, received.error
    assert (text, error) == (PRIMARY, None)
    assert (await sidecar.member("workhorse", "backup/model-b"))["canContinue"] is False


async def test_a_member_declared_unable_to_prefill_is_never_asked_to_continue(local_sidecar, mocks):
    sidecar = await local_sidecar(
        _class(
            "{credentialRef: primary, model: model-a}", "{credentialRef: gemini, model: gemini-2.5-pro, prefill: false}"
        )
    )
    mocks["primary"].set_fault(mode="cut", after_chunks=4)
    received = await streamed(sidecar)
    text, error = received.text, received.error
    assert error is not None and text == "".join(answers.words("primary")[:4])
    assert mocks["gemini"].stats.requests == 0


SPLICE = "  streaming: {splice: {enabled: true, maxSeconds: 10, maxTokens: 64}}\n"


async def test_regenerate_and_splice_finishes_on_a_deterministic_replica_that_cannot_prefill(local_sidecar, mocks):
    await mocks["third"].stop()
    mocks["third"] = await runner.start_mock(name="primary", api_key=KEYS["third"])  # the same model, elsewhere
    sidecar = await local_sidecar(
        _class("{credentialRef: primary, model: model-a}", "{credentialRef: third, model: model-a}", spec=SPLICE)
    )
    mocks["primary"].set_fault(mode="cut", after_chunks=4)
    received = await streamed(sidecar)
    text, error = received.text, received.error
    assert (text, error) == (PRIMARY, None)
    assert mocks["third"].stats.last_body["messages"][-1]["role"] == "user"  # the whole answer, asked again


async def test_regenerate_and_splice_refuses_a_member_that_answers_differently(local_sidecar, mocks):
    sidecar = await local_sidecar(
        _class("{credentialRef: primary, model: model-a}", "{credentialRef: backup, model: model-b}", spec=SPLICE)
    )
    mocks["primary"].set_fault(mode="cut", after_chunks=4)
    received = await streamed(sidecar)
    text, error = received.text, received.error
    assert error is not None and text == "".join(answers.words("primary")[:4])
    assert mocks["backup"].stats.requests == 1
