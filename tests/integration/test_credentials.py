"""A key the provider rejects fails over, opens its member's circuit for minutes, is counted and shows on
/readyz (where the operator reads it for the ProviderCredential); a key missing from the manifests is
never sent as no key at all."""

from __future__ import annotations

import pathlib

from tests.chat import USER, post_chat
from tests.integration.conftest import KEYS, answer_of, manifests_for, start_sidecar, stop_sidecar
from tests.waiting import eventually

GEMINI_FIRST = """\
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {name: geminifirst}
spec:
  members:
    - {credentialRef: gemini, model: gemini-2.5-flash}
    - {credentialRef: backup, model: model-b}
  health: {failureThreshold: 3, cooldownSeconds: 1}
"""


async def test_a_revoked_gemini_key_fails_over_opens_the_circuit_for_minutes_and_is_reported(
    tmp_path: pathlib.Path, mocks
):
    manifest = tmp_path / "m" / "all.yaml"
    manifest.parent.mkdir()
    manifest.write_text(manifests_for(mocks, GEMINI_FIRST).replace(KEYS["gemini"], "revoked-gemini-key"))
    sidecar = await start_sidecar(["local", "-f", str(manifest.parent)])
    try:
        body = {"model": "geminifirst", "messages": USER}
        answer = await post_chat(sidecar.api, body)
        assert answer.status == 200 and answer.body["choices"][0]["message"]["content"] == answer_of("backup")
        assert answer.headers["x-pilotfish-failover-reason"] == "auth"  # Google's 400 API_KEY_INVALID is no bad request
        gemini = await sidecar.member("geminifirst", "gemini/gemini-2.5-flash")
        assert gemini["state"] == "open" and gemini["credentialProblem"] == "invalid_key"
        assert gemini["cooldownLeftSeconds"] > 200  # not the class's 1 s cooldown
        await post_chat(sidecar.api, body)
        assert mocks["gemini"].stats.requests == 1  # the second request did not try the rejected key again
        assert (await sidecar.get_json("/readyz"))["rejectedCredentials"] == {"gemini": "invalid_key"}
        metrics = await sidecar.metrics()
        assert (
            'pilotfish_credential_rejections_total{class="geminifirst",credential="gemini",provider="gemini",'
            'reason="invalid_key"} 1.0'
        ) in metrics
        assert 'pilotfish_credential_rejected{credential="gemini",reason="invalid_key"} 1.0' in metrics

        # the key is rotated in its Secret: the member serves again at once, without waiting out the circuit
        manifest.write_text(manifests_for(mocks, GEMINI_FIRST))

        async def served_by_gemini() -> bool:
            answer = await post_chat(sidecar.api, body)
            return answer.body["choices"][0]["message"]["content"] == answer_of("gemini")

        await eventually(served_by_gemini, timeout=15, what="the rotated key serving")
        assert (await sidecar.get_json("/readyz"))["rejectedCredentials"] == {}
        assert "pilotfish_credential_rejected{" not in await sidecar.metrics()
    finally:
        await stop_sidecar(sidecar)


async def test_a_deleted_secret_document_is_flagged_and_no_request_goes_upstream_without_its_key(
    tmp_path: pathlib.Path, mocks
):
    manifest = tmp_path / "m" / "all.yaml"
    manifest.parent.mkdir()
    text = manifests_for(mocks, GEMINI_FIRST)
    manifest.write_text(text)
    sidecar = await start_sidecar(["local", "-f", str(manifest.parent)])
    try:
        manifest.write_text(text.split("---\n", 1)[1])  # the Secret document deleted

        async def warned() -> bool:
            return any(
                'Secret "test-keys" key "gemini" is not in the manifests' in line for line in sidecar.stderr_lines
            )

        await eventually(warned, timeout=15, what="a warning about the missing Secret")
        before = {name: mock.stats.requests for name, mock in mocks.items()}
        answer = await post_chat(sidecar.api, {"model": "geminifirst", "messages": USER})
        assert answer.status == 502
        message = answer.body["error"]["message"]
        assert (
            "gemini/gemini-2.5-flash: auth (key_missing)" in message and "backup/model-b: auth (key_missing)" in message
        )
        assert {name: mock.stats.requests for name, mock in mocks.items()} == before  # nothing went upstream
    finally:
        await stop_sidecar(sidecar)
