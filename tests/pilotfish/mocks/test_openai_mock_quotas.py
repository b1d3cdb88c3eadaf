"""The OpenAI mock's provider quotas (``rpm``, ``tpm``) answer as OpenAI does past them: the official openai SDK
is the judge of the 429, and the figures in its message are the minute's."""

from __future__ import annotations

import openai
import pytest

from pilotfish.mocks import answers, runner

KEY = "sk-test-quota-mock-5a1f"
USER = [{"role": "user", "content": "Say hello."}]
COST = answers.prompt_tokens(["Say hello."]) + len(answers.words("quota-mock"))  # what one answer reports


class Clock:
    """The wall clock the mock counts its quota minutes on, moved by hand."""

    def __init__(self) -> None:
        self.now = 600.0  # the start of a UTC minute

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def mock(clock):
    started = await runner.start_mock(name="quota-mock", api_key=KEY)
    started.fault_state.wall = clock
    yield started
    await started.stop()


@pytest.fixture
async def client(mock):
    sdk = openai.AsyncOpenAI(base_url=mock.url, api_key=KEY, max_retries=0)
    yield sdk
    await sdk.close()


async def test_past_its_tpm_a_request_gets_openais_429_for_tokens_until_the_minute_ends(mock, client, clock):
    mock.set_fault(tpm=2 * COST + COST // 2, retry_after=30)
    for _ in range(2):
        answer = await client.chat.completions.create(model="gpt-x", messages=USER)
        assert answer.usage is not None and answer.usage.total_tokens == COST  # counted as the answer reports it
    with pytest.raises(openai.RateLimitError) as refused:
        await client.chat.completions.create(model="gpt-x", messages=USER)
    error = refused.value
    assert error.body == {
        "message": error.body["message"],
        "type": "tokens",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    assert error.body["message"].startswith(
        f"Rate limit reached for gpt-x in organization org-mock on tokens per min (TPM): "
        f"Limit {2 * COST + COST // 2}, Used {2 * COST}, Requested {COST}. Please try again in "
    )
    headers = error.response.headers
    assert headers["x-ratelimit-limit-tokens"] == str(2 * COST + COST // 2)
    assert headers["x-ratelimit-remaining-tokens"] == str(COST // 2)
    assert headers["x-ratelimit-reset-tokens"] == "60.000s" and headers["retry-after"] == "30"
    assert mock.stats.by_mode["rate-limit"] == 1
    clock.now += 60  # the next minute: the quota is whole again
    assert (await client.chat.completions.create(model="gpt-x", messages=USER)).usage.total_tokens == COST


async def test_past_its_rpm_a_request_gets_openais_429_for_requests(mock, client):
    mock.set_fault(rpm=1, retry_after=30)
    await client.chat.completions.create(model="gpt-x", messages=USER)
    with pytest.raises(openai.RateLimitError) as refused:
        await client.chat.completions.create(model="gpt-x", messages=USER)
    assert refused.value.body["type"] == "requests"
    assert "on requests per min (RPM): Limit 1, Used 1, Requested 1." in refused.value.body["message"]
    assert refused.value.response.headers["x-ratelimit-remaining-requests"] == "0"
