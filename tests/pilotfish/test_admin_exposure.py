"""Beyond the pod's loopback the admin port serves only what the kubelet, Prometheus, the operator's
sweep and `pilotfish top -n` read, and only for reading."""

import pytest

from pilotfish import admin

POD_NEIGHBOUR = "10.244.1.17"


@pytest.mark.parametrize("path", sorted(admin.PUBLIC))
def test_the_probes_metrics_and_member_view_are_readable_from_outside_the_pod(path: str) -> None:
    assert admin.allowed(method="GET", path=path, peer=POD_NEIGHBOUR)


def test_anything_else_from_outside_the_pod_is_refused() -> None:
    assert not admin.allowed(method="GET", path="/debug/pins", peer=POD_NEIGHBOUR)
    assert not admin.allowed(method="POST", path="/readyz", peer=POD_NEIGHBOUR)
    assert not admin.allowed(method="DELETE", path="/metrics", peer="fd00::2")
    assert not admin.allowed(method="GET", path="/debug/pins", peer=None)


def test_the_pods_own_loopback_reaches_everything() -> None:
    for peer in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        assert admin.allowed(method="POST", path="/debug/pins", peer=peer)
