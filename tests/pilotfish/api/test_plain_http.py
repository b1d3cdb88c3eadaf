"""A key never travels in plain text beyond the loopback: a credential (and a routes document's member)
that would send one over http to another host is refused, unless it opts in with allowPlainHTTP.
The CRD's CEL rule uses the same pattern; tests/kube/test_control_plane.py proves it on a real API server."""

from __future__ import annotations

import msgspec
import orjson
import pydantic
import pytest

from pilotfish.api import credential, refs
from pilotfish.routes import document

KEY = refs.SecretKeyRef(name="keys", key="k")
LOOPBACK = ["http://127.0.0.1:9101", "http://127.8.0.1/v1", "http://localhost:8000/v1", "http://[::1]:4000/v1"]
ELSEWHERE = [
    "http://vllm.internal:8000/v1",
    "http://10.0.0.7/v1",
    "http://127.0.0.1@evil.example/v1",  # userinfo: the host is evil.example
    "http://localhost.evil.example/v1",
    "http://127.0.0.1.nip.io/v1",
    "http://[::1].evil.example/v1",
]


def spec(url: str, **fields: object) -> credential.ProviderCredentialSpec:
    return credential.ProviderCredentialSpec.model_validate({"provider": "openai-compatible", "baseURL": url, **fields})


@pytest.mark.parametrize("url", ELSEWHERE)
def test_a_key_over_plain_http_to_another_host_is_refused_naming_the_fix(url):
    with pytest.raises(pydantic.ValidationError, match=r"plain text .* use https, or set allowPlainHTTP"):
        spec(url, apiKeySecretRef=KEY.model_dump())


@pytest.mark.parametrize("url", LOOPBACK)
def test_a_key_over_plain_http_to_the_loopback_is_accepted(url):
    assert spec(url, apiKeySecretRef=KEY.model_dump()).resolved_base_url() == url.rstrip("/")


@pytest.mark.parametrize("url", ELSEWHERE[:2])
def test_plain_http_without_a_key_or_with_the_opt_in_is_accepted(url):
    assert spec(url).api_key_secret_ref is None
    assert spec(url, apiKeySecretRef=KEY.model_dump(), allowPlainHTTP=True).allow_plain_http


def test_https_anywhere_is_accepted():
    assert spec("https://vllm.internal:8000/v1", apiKeySecretRef=KEY.model_dump()).allow_plain_http is None


def member(url: str, **fields: object) -> dict[str, object]:
    return {"id": "c/m", "credential": "c", "provider": "openai-compatible", "baseURL": url, "model": "m",
            "priority": 0, "apiKeyRef": KEY.model_dump(), **fields}  # fmt: skip


def test_the_sidecar_refuses_a_routes_document_member_that_would_send_its_key_in_plain_text():
    """A document written by hand or by an older operator: the sidecar keeps its last good one."""
    with pytest.raises(msgspec.ValidationError, match="member c/m: baseURL would send the API key in plain text"):
        msgspec.convert(member("http://vllm.internal:8000/v1"), document.MemberRoute)
    assert msgspec.convert(member("http://vllm.internal:8000/v1", allowPlainHTTP=True), document.MemberRoute)
    assert msgspec.convert(member("http://127.0.0.1:8000/v1"), document.MemberRoute)


def as_written(route: document.MemberRoute) -> dict[str, object]:
    """The member as the routes ConfigMap carries it."""
    written = document.RoutesDocument(classes={"c": document.ClassRoute(name="c", members=(route,))}).to_json()
    return orjson.loads(written)["classes"]["c"]["members"][0]


def test_the_opt_in_reaches_the_document_only_when_set_so_older_sidecars_still_read_it():
    plain = as_written(msgspec.convert(member("https://x/v1"), document.MemberRoute))
    assert "allowPlainHTTP" not in plain
