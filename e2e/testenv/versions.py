"""Pinned versions of the control-plane binaries: Kubernetes and the etcd it is tested with."""

KUBERNETES = "1.33.13"  # the newest 1.33 patch on the Go module proxy when pinned
ETCD = "3.5.21"  # the etcd release Kubernetes 1.33 is tested with
HELM = "3.18.6"
BUILD_RECIPE = 3  # bump when build flags change, so caches built the old way are not reused


def cache_key() -> str:
    return f"k8s-{KUBERNETES}_etcd-{ETCD}_helm-{HELM}_r{BUILD_RECIPE}"
