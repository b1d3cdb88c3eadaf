"""Every provider's credential errors, in the bodies its documentation shows, are credential failures:
the key is bad for this member, so the class fails over and the member's circuit opens for long."""

from __future__ import annotations

import orjson
import pytest

from pilotfish import failures
from pilotfish.failover import policy
from pilotfish.providers import anthropic, azure_openai, gemini, openai

K = failures.FailureKind
P = failures.CredentialProblem

_GEMINI_KEY_INVALID = {
    "code": 400,
    "message": "API key not valid. Please pass a valid API key.",
    "status": "INVALID_ARGUMENT",
    "details": [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        }
    ],
}

CASES = [
    # OpenAI: https://platform.openai.com/docs/guides/error-codes
    (
        "openai",
        401,
        {"error": {"message": "Incorrect API key provided: sk-abc***", "code": "invalid_api_key"}},
        P.INVALID_KEY,
    ),
    (
        "openai",
        403,
        {
            "error": {
                "message": "Country, region, or territory not supported",
                "type": "request_forbidden",
                "code": "unsupported_country_region_territory",
            }
        },
        P.REGION_NOT_SUPPORTED,
    ),
    ("openai", 403, {"error": {"message": "You are not allowed to use this model", "code": None}}, P.PERMISSION_DENIED),
    # Azure OpenAI: 401 for a bad api-key, 403 for a network or RBAC refusal
    (
        "azure",
        401,
        {"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint."}},
        P.INVALID_KEY,
    ),
    (
        "azure",
        403,
        {"error": {"code": "403", "message": "Traffic is not from an approved private endpoint."}},
        P.PERMISSION_DENIED,
    ),
    # Anthropic: https://docs.anthropic.com/en/api/errors
    (
        "anthropic",
        401,
        {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}},
        P.INVALID_KEY,
    ),
    (
        "anthropic",
        403,
        {"type": "error", "error": {"type": "permission_error", "message": "Your API key does not have permission"}},
        P.PERMISSION_DENIED,
    ),
    # Gemini: https://ai.google.dev/gemini-api/docs/troubleshooting
    ("gemini", 400, {"error": _GEMINI_KEY_INVALID}, P.INVALID_KEY),
    (
        "gemini",
        403,
        {"error": {"code": 403, "message": "Permission denied.", "status": "PERMISSION_DENIED"}},
        P.PERMISSION_DENIED,
    ),
    (
        "gemini",
        400,
        {
            "error": {
                "code": 400,
                "message": "User location is not supported for the API use.",
                "status": "FAILED_PRECONDITION",
            }
        },
        P.REGION_NOT_SUPPORTED,
    ),
    (
        "gemini",
        401,
        {"error": {"code": 401, "message": "Request had invalid credentials.", "status": "UNAUTHENTICATED"}},
        P.INVALID_KEY,
    ),
]
ADAPTERS = {"openai": openai, "azure": azure_openai, "anthropic": anthropic, "gemini": gemini}


@pytest.mark.parametrize(("provider", "status", "body", "problem"), CASES, ids=lambda v: str(v)[:40])
def test_each_vendors_credential_error_is_a_credential_failure_with_its_reason(provider, status, body, problem):
    failure = ADAPTERS[provider].classify_error(status, {}, orjson.dumps(body))
    assert failure.kind is K.AUTH
    assert failure.credential is problem
    assert failure.status == status


def test_a_gemini_bad_request_that_is_not_about_the_key_stays_a_bad_request():
    body = {"error": {"code": 400, "message": "Invalid JSON payload received.", "status": "INVALID_ARGUMENT"}}
    failure = gemini.classify_error(400, {}, orjson.dumps(body))
    assert failure.kind is K.BAD_REQUEST and failure.credential is None


def test_a_credential_failure_fails_over_counts_and_opens_the_circuit_for_minutes():
    rule = policy.policy_for(K.AUTH)
    assert rule.failover and rule.counts_against_health
    assert rule.open_circuit_seconds is not None and rule.open_circuit_seconds >= 300
    assert rule.client_status == 502  # the member's key is bad, not the client's request


def test_a_redirect_is_a_member_problem_that_fails_over():
    rule = policy.policy_for(K.REDIRECT)
    assert rule.failover and rule.counts_against_health and rule.client_status == 502
