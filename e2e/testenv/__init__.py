"""A real Kubernetes control plane (kube-apiserver + etcd, no nodes) for Pilotfish's tests.

``binaries`` finds the binaries or has ``gobuild`` build them from the official Go modules;
``certs`` and ``kubeconfig`` make the credentials; ``processes`` keeps servers from outliving the
tests; ``controlplane`` starts and stops them; ``python -m e2e.testenv build|up|down|env`` is the CLI.
"""

from e2e.testenv.binaries import Binaries, BinariesUnavailable
from e2e.testenv.controlplane import ControlPlane, StartError

__all__ = ["Binaries", "BinariesUnavailable", "ControlPlane", "StartError"]
