"""The admin kubeconfig: the one file that kubectl, helm, kopf and the Python client all read."""

from __future__ import annotations

import pathlib

import yaml

CONTEXT = "pilotfish-testenv"


def write(
    path: pathlib.Path,
    *,
    server: str,
    ca_cert: pathlib.Path,
    client_cert: pathlib.Path,
    client_key: pathlib.Path,
    namespace: str = "default",
) -> pathlib.Path:
    """Write a kubeconfig whose only context is the test control plane, as its admin (system:masters).

    Paths, not inline data, so a human can find the certificates next to it; the files live in the
    control plane's work directory and disappear with it.
    """
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": server, "certificate-authority": str(ca_cert)}}],
        "users": [{"name": "admin", "user": {"client-certificate": str(client_cert), "client-key": str(client_key)}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": "admin", "namespace": namespace}}],
        "current-context": CONTEXT,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path
