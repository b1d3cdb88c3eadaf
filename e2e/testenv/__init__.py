"""A real Kubernetes control plane (kube-apiserver + etcd, no nodes) for Pilotfish's tests.

``binaries`` finds or builds kube-apiserver, etcd, kubectl and helm from the official Go modules;
``controlplane`` starts and stops them; ``python -m e2e.testenv up|down|build|env`` does it by hand.
"""
