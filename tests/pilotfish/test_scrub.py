"""The one scrubber: upstream text loses every held key and anything key-shaped, then is capped."""

from __future__ import annotations

import pytest

from pilotfish import failures, scrub


@pytest.mark.parametrize(
    "secret",
    [
        "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t",  # OpenAI project key
        "sk-ant-api03-Xy7zAb3dEf6hIj9kLm2n",  # Anthropic
        "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUv",  # Google API key (Gemini)
        "0123456789abcdef0123456789abcdef",  # Azure OpenAI: 32 hex
        "eyJhbGciOiJIUzI1NiJ9eyJzdWIiOiIxMjM0NTY3ODkwIn0abcdefgh",  # a JWT-like base64 run
    ],
)
def test_anything_key_shaped_is_removed_whether_we_hold_it_or_not(secret):
    text = scrub.scrubbed(f"Incorrect API key provided: {secret}. Check it.")
    assert secret not in text and "[redacted]" in text and text.startswith("Incorrect API key provided:")


@pytest.mark.parametrize("carrier", ["Authorization: Bearer abc.def", "GET /v1?key=abc123&alt=sse", "api-key=zz9"])
def test_bearer_tokens_and_keys_in_query_strings_are_removed(carrier):
    assert "abc" not in scrub.scrubbed(carrier).split("[redacted]")[-1] and "[redacted]" in scrub.scrubbed(carrier)


def test_a_held_key_is_removed_even_when_it_does_not_look_like_a_key():
    scrubber = scrub.Scrubber(["plain-words-key", "plain-words-key-0001"])
    text = scrubber.text("bad key plain-words-key-0001 and plain-words-key")
    assert "plain-words" not in text and text == "bad key [redacted] and [redacted]"


def test_keys_too_short_to_be_keys_are_not_removed_by_value():
    assert scrub.Scrubber(["ab"]).text("a table") == "a table"


def test_a_scrubber_keeps_the_keys_it_knew_when_it_learns_new_ones():
    scrubber = scrub.Scrubber(["old-key-value"]).knowing(["new-key-value"])
    assert scrubber.text("old-key-value new-key-value") == "[redacted] [redacted]"


def test_the_text_is_cut_after_scrubbing_so_no_part_of_a_key_survives_the_cut():
    key = "held-key-straddling-the-cut"
    text = "x" * (scrub.MAX_CHARS - 5) + key
    scrubbed = scrub.Scrubber([key]).text(text)
    assert "held" not in scrubbed and len(scrubbed) <= scrub.MAX_CHARS + 1


def test_control_characters_cannot_forge_log_lines():
    assert "\n" not in scrub.scrubbed('oops\n{"msg": "request", "forged": true}\r\x1b[2J')


def test_a_failure_keeps_no_key_shaped_text_and_scrubbed_removes_the_held_keys():
    failure = failures.Failure(
        kind=failures.FailureKind.BAD_REQUEST, detail="key gemini-test-key-93ab or sk-abcdefgh12345678 rejected"
    )
    assert "sk-abcdefgh" not in failure.detail and "gemini-test-key-93ab" in failure.detail
    shown = failure.scrubbed(scrub.Scrubber(["gemini-test-key-93ab"]))
    assert shown.detail == "key [redacted] or [redacted] rejected"


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("inf", 600.0), ("1e308", 600.0), ("Infinity", 600.0), ("1e400", 600.0)],
)
def test_a_retry_after_too_large_to_be_meant_is_capped_at_ten_minutes(header, seconds):
    assert failures.parse_retry_after(header) == seconds
