"""Secret reads granted namespace by namespace, only where ProviderCredentials reference Secrets.

The operator reads Secrets only for their key names (a credential's status says whether its key
exists). Kubernetes RBAC cannot select Secrets by label, so a cluster-wide operator would otherwise
hold get/list/watch on every Secret of the cluster. Installed by the chart, it holds none: it may
``bind`` one ClusterRole (the Secret reader, ``get`` only, limited by ``resourceNames`` to the
chart's ``operator.secretNames`` when set) and, when a namespace first has credentials, binds itself
to it there with a RoleBinding (removed when the last credential goes). The binding is owned by that
ClusterRole, so ``helm uninstall``, which deletes the ClusterRole, leaves no binding behind (the
garbage collector deletes them); a binding from before that rule is made again with its owner. It
then reads, by name, only the Secrets the namespace's credentials reference, on each pass, and,
having no Secret watch, passes over each such namespace every ``RESYNC_SECONDS`` so that a Secret
that gains its key is noticed.

Why not a Role per namespace naming exactly the referenced Secrets: RBAC lets the operator create a
Role only with permissions it already holds, or with ``escalate`` on roles, and an operator that may
write any rule into a role it can bind may grant itself anything. ``operator.secretNames`` is the
narrowing that stays safe: the platform team, not the operator, names the Secrets.

Without ``Bound`` (an operator given Secret access by other means, e.g. a Role per watched
namespace), reads go straight to the API and kopf watches Secrets as before. Used by ``reconciler``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Collection

from kubernetes.client import exceptions

from pilotfish_operator import kube

BINDING = "pilotfish-secret-reader"  # the RoleBinding the operator manages in each namespace
RESYNC_SECONDS = 10.0  # how soon a change to a Secret is noticed without a watch on Secrets
GRANT_SECONDS = 30.0  # how long a new binding may take to be honoured (the API server's RBAC cache, under load)


_log = logging.getLogger("pilotfish.operator")


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
        self._cluster_role_uid: str | None = None  # the Secret reader's, owner of every binding we make

    @property
    def watches_secrets(self) -> bool:
        """Whether Secrets are watched (kopf, cluster-wide or per namespace) rather than passed over."""
        return self.bound is None

    def secret_keys(self, namespace: str, *, names: Collection[str], needed: bool) -> dict[str, set[str]]:
        """The key names of the Secrets ``names`` (those the credentials reference), when the namespace's
        credentials need Secrets; access granted or given back as they come and go (blocking)."""
        if self.bound is None:
            return self.api.secret_keys(namespace) if needed else {}
        if not needed:
            if self._is_bound(namespace):
                self.api.delete_role_binding(namespace, BINDING)
                self._bound_in[namespace] = False
            return {}
        fresh = not self._is_bound(namespace)
        if fresh:
            self._bind(namespace, self.bound)
        found, forbidden = _honoured(lambda: self.api.secret_keys_named(namespace, names), fresh=fresh)
        if forbidden:  # read as absent: the credential reports its Secret missing
            _log.warning(
                "may not read Secret(s) %s in %s: not among the chart's operator.secretNames?",
                ", ".join(sorted(forbidden)),
                namespace,
            )
        return found

    def _bind(self, namespace: str, bound: Bound) -> None:
        owner_uid = self._owner_uid(bound)
        try:
            self.api.create_role_binding(
                namespace, BINDING, cluster_role=bound.cluster_role, subject=bound.service_account, owner_uid=owner_uid
            )
        except exceptions.ApiException as exc:
            if exc.status == kube.Forbidden and "being terminated" in str(exc.body):
                raise NamespaceTerminating(namespace) from None
            raise
        self._bound_in[namespace] = True

    def _owner_uid(self, bound: Bound) -> str:
        if self._cluster_role_uid is None:
            self._cluster_role_uid = self.api.cluster_role_uid(bound.cluster_role)
        return self._cluster_role_uid

    def _is_bound(self, namespace: str) -> bool:
        """Whether our binding is there, as last seen; one without the Secret reader as its owner (made
        before bindings had owners) is deleted, so that it is made again with one."""
        if namespace not in self._bound_in:
            owners = self.api.role_binding_owners(namespace, BINDING)
            if owners is not None and self.bound is not None and self._owner_uid(self.bound) not in owners:
                self.api.delete_role_binding(namespace, BINDING)
                owners = None
            self._bound_in[namespace] = owners is not None
        return self._bound_in[namespace]


Read = Callable[[], tuple[dict[str, set[str]], set[str]]]  # (key names by Secret, Secrets forbidden to us)


def _honoured(read: Read, *, fresh: bool) -> tuple[dict[str, set[str]], set[str]]:
    """``read()``; right after binding, retried while some Secret is still forbidden (the API server's
    RBAC cache has not seen the binding yet) for up to ``GRANT_SECONDS``."""
    deadline = time.monotonic() + GRANT_SECONDS
    while True:
        found, forbidden = read()
        if not forbidden or not fresh or time.monotonic() > deadline:
            return found, forbidden
        time.sleep(0.2)
