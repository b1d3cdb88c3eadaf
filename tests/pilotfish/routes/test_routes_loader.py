import pytest
from tests import mounts

from pilotfish.api import manifests
from pilotfish.routes import loader, render

MANIFEST = """\
apiVersion: v1
kind: Secret
metadata: {name: keys}
stringData: {openai: sk-loader-test}
---
apiVersion: pilotfish.dev/v1alpha1
kind: ProviderCredential
metadata: {name: p}
spec: {provider: openai, apiKeySecretRef: {name: keys, key: openai}}
---
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {name: workhorse}
spec: {members: [{credentialRef: p, model: m}]}
"""


@pytest.fixture
def mounted(tmp_path):
    parsed = manifests.parse_text(MANIFEST, source="m", namespace="ns")
    snapshot, _ = render.snapshot_from_manifests(parsed, namespace="ns")
    mounts.kubelet_write(tmp_path / "routes", {"routes.json": snapshot.document.to_json().decode()}, 1)
    mounts.kubelet_write(tmp_path / "secrets" / "keys", {"openai": "sk-loader-test\n"}, 1)
    return tmp_path, snapshot


def test_a_mounted_configmap_and_secret_load_into_a_snapshot(mounted):
    root, expected = mounted
    routes = loader.RoutesLoader(config_dir=root / "routes", secrets_dir=root / "secrets")
    assert routes.changed()
    snapshot = routes.load()
    assert snapshot.digest == expected.digest
    assert snapshot.keys[("keys", "openai")].reveal() == "sk-loader-test"
    assert not routes.changed()


def test_the_kubelet_symlink_swap_is_seen_as_a_change(mounted):
    root, _ = mounted
    routes = loader.RoutesLoader(config_dir=root / "routes", secrets_dir=root / "secrets")
    routes.load()
    mounts.kubelet_write(root / "routes", {"routes.json": "{}"}, 2)
    assert routes.changed()


def test_an_unknown_schema_version_is_rejected_with_the_file_named(mounted):
    root, _ = mounted
    mounts.kubelet_write(root / "routes", {"routes.json": '{"schemaVersion": 2}'}, 2)
    with pytest.raises(
        loader.LoadError, match=r"routes\.json: not a routes document this sidecar understands: schemaVersion"
    ):
        loader.RoutesLoader(config_dir=root / "routes", secrets_dir=root / "secrets").load()


def test_a_referenced_secret_that_is_not_mounted_is_rejected(mounted):
    root, _ = mounted
    with pytest.raises(loader.LoadError, match='needs Secret "keys" key "openai"'):
        loader.RoutesLoader(config_dir=root / "routes", secrets_dir=root / "elsewhere").load()


def test_invalid_json_is_rejected(mounted):
    root, _ = mounted
    mounts.kubelet_write(root / "routes", {"routes.json": "{not json"}, 2)
    with pytest.raises(loader.LoadError, match="not valid JSON"):
        loader.RoutesLoader(config_dir=root / "routes", secrets_dir=root / "secrets").load()


def test_an_empty_mount_is_a_namespace_without_classes_yet_and_loads_as_an_empty_document(tmp_path):
    """The routes ConfigMap is optional in the injected pod: with no ModelClass it does not exist and
    the kubelet mounts an empty folder. The sidecar must come up (so the app starts) with no classes."""
    (tmp_path / "routes").mkdir()
    routes = loader.RoutesLoader(config_dir=tmp_path / "routes", secrets_dir=tmp_path / "secrets")
    snapshot = routes.load()
    assert snapshot.document.classes == {} and snapshot.keys == {}


def test_a_folder_that_is_not_mounted_at_all_is_still_an_error(tmp_path):
    routes = loader.RoutesLoader(config_dir=tmp_path / "missing", secrets_dir=tmp_path / "secrets")
    with pytest.raises(loader.LoadError, match="cannot read the routes document: the folder is not mounted"):
        routes.load()


def test_a_document_projected_into_the_empty_mount_later_is_seen_as_a_change_and_loaded(mounted, tmp_path):
    _, expected = mounted
    (tmp_path / "later").mkdir()
    routes = loader.RoutesLoader(config_dir=tmp_path / "later", secrets_dir=tmp_path / "secrets")
    assert routes.load().document.classes == {}
    assert not routes.changed()
    mounts.kubelet_write(tmp_path / "later", {"routes.json": expected.document.to_json().decode()}, 1)
    assert routes.changed()
    assert list(routes.load().document.classes) == ["workhorse"]
