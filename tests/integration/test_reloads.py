"""Hot reload in both modes: a good change is served, a bad one is rejected and the last good stays."""

from __future__ import annotations

import asyncio
import shutil

import aiohttp
import openai
import orjson
import pytest
from tests import mounts
from tests.integration.conftest import (
    DEFAULT_CLASS,
    Sidecar,
    answer_of,
    manifests_for,
    start_sidecar,
    stop_sidecar,
)

from pilotfish.api import manifests
from pilotfish.routes import render


async def _eventually(check, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


async def test_local_mode_serves_a_new_class_after_the_manifest_changes(local_sidecar, mocks, tmp_path):
    sidecar = await local_sidecar()
    manifest = tmp_path / "manifests" / "all.yaml"
    manifest.write_text(manifest.read_text() + "---\n" + DEFAULT_CLASS.replace("name: workhorse", "name: fast"))

    async def has_fast() -> bool:
        return "fast" in (await sidecar.get_json("/readyz"))["classes"]

    await _eventually(has_fast)
    response = await sidecar.client().chat.completions.create(
        model="fast", messages=[{"role": "user", "content": "hi"}]
    )
    assert response.choices[0].message.content == answer_of("primary")


async def test_local_mode_keeps_the_last_good_routes_when_a_manifest_breaks(local_sidecar, tmp_path):
    sidecar = await local_sidecar()
    before = (await sidecar.get_json("/readyz"))["digest"]
    manifest = tmp_path / "manifests" / "all.yaml"
    manifest.write_text(manifest.read_text().replace("model: model-b", "modle: model-b"))

    async def rejected() -> bool:
        return (await sidecar.get_json("/readyz"))["lastReloadError"] is not None

    await _eventually(rejected)
    ready = await sidecar.get_json("/readyz")
    assert ready["ready"] is True and ready["digest"] == before
    assert 'ModelClass "workhorse": spec.members[1].model: Field required' in ready["lastReloadError"]
    assert "pilotfish_config_last_reload_successful 0.0" in await sidecar.metrics()
    response = await sidecar.client().chat.completions.create(
        model="workhorse", messages=[{"role": "user", "content": "hi"}]
    )
    assert response.choices[0].message.content == answer_of("primary")


async def test_container_mode_follows_the_kubelet_symlink_swap_and_rejects_a_bad_document(mocks, tmp_path):
    parsed = manifests.parse_text(manifests_for(mocks, DEFAULT_CLASS), source="test", namespace="team-a")
    snapshot, _ = render.snapshot_from_manifests(parsed, namespace="team-a")
    config_dir, secrets_dir = tmp_path / "routes", tmp_path / "secrets"
    mounts.kubelet_write(config_dir, {"routes.json": snapshot.document.to_json().decode()}, 1)
    secret = next(s for s in parsed.secrets if s.name == "test-keys")
    mounts.kubelet_write(secrets_dir / "test-keys", {k: v.reveal() for k, v in secret.data.items()}, 1)
    sidecar: Sidecar = await start_sidecar(
        ["sidecar", "--config-dir", str(config_dir), "--secrets-dir", str(secrets_dir)]
    )
    try:
        ready = await sidecar.get_json("/readyz")
        assert ready["digest"] == snapshot.digest and ready["namespace"] == "team-a"
        client = sidecar.client()
        response = await client.chat.completions.create(model="workhorse", messages=[{"role": "user", "content": "hi"}])
        assert response.choices[0].message.content == answer_of("primary")

        mounts.kubelet_write(config_dir, {"routes.json": '{"schemaVersion": 99, "classes": {}}'}, 2)

        async def rejected() -> bool:
            return (await sidecar.get_json("/readyz"))["lastReloadError"] is not None

        await _eventually(rejected)
        ready = await sidecar.get_json("/readyz")
        assert ready["digest"] == snapshot.digest
        assert "schemaVersion" in ready["lastReloadError"]
        response = await client.chat.completions.create(model="workhorse", messages=[{"role": "user", "content": "hi"}])
        assert response.choices[0].message.content == answer_of("primary")

        renamed = orjson.loads(snapshot.document.to_json())
        renamed["classes"]["fast"] = {**renamed["classes"].pop("workhorse"), "name": "fast"}
        mounts.kubelet_write(config_dir, {"routes.json": orjson.dumps(renamed).decode()}, 3)

        async def serves_fast() -> bool:
            return (await sidecar.get_json("/readyz"))["classes"] == ["fast"]

        await _eventually(serves_fast)
        assert (await sidecar.get_json("/readyz"))["lastReloadError"] is None
        response = await client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}])
        assert response.choices[0].message.content == answer_of("primary")
    finally:
        await stop_sidecar(sidecar)


async def test_container_mode_is_not_ready_until_a_document_is_mounted(tmp_path):
    sidecar = await start_sidecar(["sidecar", "--config-dir", str(tmp_path / "none"), "--secrets-dir", str(tmp_path)])
    try:
        async with aiohttp.ClientSession() as session, session.get(sidecar.admin + "/readyz") as response:
            assert response.status == 503
            body = await response.json()
        assert "cannot read the routes document" in body["lastReloadError"]
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                sidecar.api + "/v1/chat/completions",
                json={"model": "x", "messages": [{"role": "user", "content": "hi"}]},
            ) as response,
        ):
            assert response.status == 503
            assert (await response.json())["error"]["code"] == "routes_not_loaded"
    finally:
        await stop_sidecar(sidecar)
        shutil.rmtree(tmp_path / "none", ignore_errors=True)


async def test_container_mode_with_an_empty_routes_mount_is_ready_and_picks_up_a_class_applied_later(mocks, tmp_path):
    """An injected pod in a namespace with no ModelClass: the optional ConfigMap is absent, the kubelet
    mounts an empty folder, the sidecar must pass its startup probe so the app starts, and serve the
    class once the operator writes the ConfigMap (without a restart)."""
    config_dir, secrets_dir = tmp_path / "routes", tmp_path / "secrets"
    config_dir.mkdir()
    secrets_dir.mkdir()
    sidecar: Sidecar = await start_sidecar(
        ["sidecar", "--config-dir", str(config_dir), "--secrets-dir", str(secrets_dir)]
    )
    try:
        ready = await sidecar.get_json("/readyz")
        assert ready["ready"] is True and ready["classes"] == [] and ready["lastReloadError"] is None
        with pytest.raises(openai.NotFoundError) as caught:
            await sidecar.client().chat.completions.create(
                model="workhorse", messages=[{"role": "user", "content": "hi"}]
            )
        assert "workhorse" in str(caught.value)

        parsed = manifests.parse_text(manifests_for(mocks, DEFAULT_CLASS), source="test", namespace="team-a")
        snapshot, _ = render.snapshot_from_manifests(parsed, namespace="team-a")
        secret = next(s for s in parsed.secrets if s.name == "test-keys")
        mounts.kubelet_write(secrets_dir / "test-keys", {k: v.reveal() for k, v in secret.data.items()}, 1)
        mounts.kubelet_write(config_dir, {"routes.json": snapshot.document.to_json().decode()}, 1)

        async def serves_workhorse() -> bool:
            return (await sidecar.get_json("/readyz"))["classes"] == ["workhorse"]

        await _eventually(serves_workhorse, timeout=30)
        response = await sidecar.client().chat.completions.create(
            model="workhorse", messages=[{"role": "user", "content": "hi"}]
        )
        assert response.choices[0].message.content == answer_of("primary")
    finally:
        await stop_sidecar(sidecar)
