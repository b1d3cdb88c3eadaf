"""Secret reads granted namespace by namespace, only where ProviderCredentials reference Secrets.

The operator reads Secrets only for their key names (a credential's status says whether its key
exists). Kubernetes RBAC cannot select Secrets by label, so a cluster-wide operator would otherwise
hold get/list/watch on every Secret of the cluster. Installed by the chart, it holds none: it may
``bind`` one ClusterRole (the Secret reader) and, when a namespace first has credentials, binds
itself to it there with a RoleBinding (removed when the last credential goes). It then reads that
namespace's Secrets by listing them on each pass, and, having no cluster-wide Secret watch, passes
over each such namespace every ``RESYNC_SECONDS`` so that a Secret that gains its key is noticed.

Without ``Bound`` (an operator given Secret access by other means, e.g. a Role per watched
namespace), reads go straight to the API and kopf watches Secrets as before. Used by ``reconciler``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from kubernetes.client import exceptions

from pilotfish_operator import kube

BINDING = "pilotfish-secret-reader"  # the RoleBinding the operator manages in each namespace
RESYNC_SECONDS = 10.0  # how soon a change to a Secret is noticed without a watch on Secrets
GRANT_SECONDS = 30.0  # how long a new binding may take to be honoured (the API server's RBAC cache, under load)


@dataclasses.dataclass(frozen=True)
class Bound:
    cluster_role: str  # the Secret-reader ClusterRole the operator may bind
    service_account: tuple[str, str]  # the operator's own (namespace, name)


class NamespaceTerminating(Exception):
    """The namespace is being deleted: nothing can be created in it, and there is nothing to reconcile."""


class SecretAccess:
    def __init__(self, api: kube.Kube, bound: Bound | None = None) -> None:
        self.api = api
        self.bound = bound
        self._bound_in: dict[str, bool] = {}  # namespace → whether our RoleBinding is there, as last seen

    @property
    def watches_secrets(self) -> bool:
        """Whether Secrets are watched (kopf, cluster-wide or per namespace) rather than passed over."""
        return self.bound is None

    def secret_keys(self, namespace: str, *, needed: bool) -> dict[str, set[str]]:
        """Each Secret's key names, when the namespace's credentials need them; access granted or given
        back as they come and go (blocking)."""
        if self.bound is None:
            return self.api.secret_keys(namespace) if needed else {}
        if not needed:
            if self._is_bound(namespace):
                self.api.delete_role_binding(namespace, BINDING)
                self._bound_in[namespace] = False
            return {}
        if not self._is_bound(namespace):
            try:
                self.api.create_role_binding(
                    namespace, BINDING, cluster_role=self.bound.cluster_role, subject=self.bound.service_account
                )
            except exceptions.ApiException as exc:
                if exc.status == kube.Forbidden and "being terminated" in str(exc.body):
                    raise NamespaceTerminating(namespace) from None
                raise
            self._bound_in[namespace] = True
        return _honoured(lambda: self.api.secret_keys(namespace))

    def _is_bound(self, namespace: str) -> bool:
        if namespace not in self._bound_in:
            self._bound_in[namespace] = self.api.has_role_binding(namespace, BINDING)
        return self._bound_in[namespace]


def _honoured(read: Callable[[], dict[str, set[str]]]) -> dict[str, set[str]]:
    """``read()``, retried while a binding just made is not yet honoured (403)."""
    deadline = time.monotonic() + GRANT_SECONDS
    while True:
        try:
            return read()
        except exceptions.ApiException as exc:
            if exc.status != kube.Forbidden or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
