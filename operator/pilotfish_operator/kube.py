"""The few Kubernetes API calls the operator makes, through the official client (blocking; run in threads).

Kept in one place so the reconciler and the webhook read as decisions, and so RBAC (the chart's
ClusterRole) can be checked against one list of verbs.
"""

from __future__ import annotations

import datetime
from collections.abc import Collection, Mapping
from typing import Any

import kubernetes
from kubernetes.client import exceptions

GROUP, VERSION = "pilotfish.dev", "v1alpha1"
KOPF_GROUP, KOPF_VERSION = "kopf.dev", "v1"  # kopf's peering objects
COMPONENT = "pilotfish-operator"
NotFound = 404
Conflict = 409
Forbidden = 403


class Kube:
    """One ApiClient shared by every thread; the generated client is thread-safe per call."""

    def __init__(self, api_client: kubernetes.client.ApiClient | None = None) -> None:
        # Any: the generated client's annotations are partial and would need a cast at every call
        self.client: Any = api_client or _default_client()
        self.core: Any = kubernetes.client.CoreV1Api(self.client)
        self.custom: Any = kubernetes.client.CustomObjectsApi(self.client)
        self.rbac: Any = kubernetes.client.RbacAuthorizationV1Api(self.client)

    def list_custom(self, namespace: str, plural: str, *, missing_ok: bool = False) -> list[dict[str, Any]]:
        """``missing_ok``: a kind whose CRD is not installed (yet) lists as empty (Budgets came later)."""
        try:
            items = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)["items"]
        except exceptions.ApiException as exc:
            if missing_ok and exc.status == NotFound:
                return []
            raise
        return list(items)

    def get_custom(self, namespace: str, plural: str, name: str) -> dict[str, Any] | None:
        try:
            found = self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
        except exceptions.ApiException as exc:
            if exc.status == NotFound:
                return None
            raise
        return dict(found)

    def patch_status_at(
        self, namespace: str, plural: str, name: str, *, resource_version: str, status: Mapping[str, Any]
    ) -> bool:
        """A merge patch of status that applies only at ``resource_version`` (optimistic concurrency: the
        budget counters are read-modify-write by every operator replica). False on a conflict."""
        body = {"metadata": {"resourceVersion": resource_version}, "status": dict(status)}
        try:
            self.custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, plural, name, body)
        except exceptions.ApiException as exc:
            if exc.status == Conflict:
                return False
            raise
        return True

    def review_token(self, token: str, *, audience: str) -> tuple[bool, str]:
        """The API server's TokenReview of ``token`` for ``audience``: (authenticated, username)."""
        body = kubernetes.client.V1TokenReview(
            spec=kubernetes.client.V1TokenReviewSpec(token=token, audiences=[audience])
        )
        review = kubernetes.client.AuthenticationV1Api(self.client).create_token_review(body)
        status = review.status
        if status is None or not status.authenticated or status.user is None:
            return False, ""
        if status.audiences is not None and audience not in status.audiences:
            return False, ""
        return True, str(status.user.username or "")

    def secret_keys(self, namespace: str) -> dict[str, set[str]]:
        """Each Secret's key names. The values pass through this process but are never kept."""
        secrets = self.core.list_namespaced_secret(namespace).items
        return {s.metadata.name: set(s.data or {}) | set(s.string_data or {}) for s in secrets}

    def secret_keys_named(self, namespace: str, names: Collection[str]) -> tuple[dict[str, set[str]], set[str]]:
        """The key names of these Secrets, read one ``get`` each (what a reader limited to ``get`` by
        ``resourceNames`` may do), and the names we may not read; a Secret that does not exist is left out."""
        found: dict[str, set[str]] = {}
        forbidden: set[str] = set()
        for name in sorted(names):
            try:
                secret = self.core.read_namespaced_secret(name, namespace)
            except exceptions.ApiException as exc:
                if exc.status == Forbidden:
                    forbidden.add(name)
                elif exc.status != NotFound:
                    raise
                continue
            found[name] = set(secret.data or {}) | set(secret.string_data or {})
        return found, forbidden

    def cluster_role_uid(self, name: str) -> str:
        return str(self.rbac.read_cluster_role(name).metadata.uid)

    def get_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found = self.core.read_namespaced_config_map(name, namespace)
        except exceptions.ApiException as exc:
            if exc.status == NotFound:
                return None
            raise
        return dict(self.client.sanitize_for_serialization(found))

    def put_configmap(self, body: Mapping[str, Any], current: Mapping[str, Any] | None) -> None:
        """Create, or replace at the version we read (a conflict retries the whole reconcile)."""
        meta = body["metadata"]
        if current is None:
            self.core.create_namespaced_config_map(meta["namespace"], body)
            return
        old = current.get("metadata") or {}
        merged = {
            **body,
            "metadata": {
                **meta,
                "resourceVersion": old.get("resourceVersion"),
                "labels": {**(old.get("labels") or {}), **meta["labels"]},
                "annotations": {**(old.get("annotations") or {}), **meta["annotations"]},
            },
        }
        self.core.replace_namespaced_config_map(meta["name"], meta["namespace"], merged)

    def delete_configmap(self, namespace: str, name: str) -> None:
        try:
            self.core.delete_namespaced_config_map(name, namespace)
        except exceptions.ApiException as exc:
            if exc.status != NotFound:
                raise

    def patch_status(self, namespace: str, plural: str, name: str, status: Mapping[str, Any]) -> None:
        try:
            self.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, plural, name, {"status": dict(status)}
            )
        except exceptions.ApiException as exc:
            if exc.status != NotFound:  # deleted meanwhile: its namespace is reconciled again anyway
                raise

    def patch_object(self, namespace: str, plural: str, name: str, patch: Mapping[str, Any]) -> None:
        """A merge patch of a Pilotfish object (the canary consumes spec.canary.promote this way)."""
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, plural, name, dict(patch))

    def event(self, namespace: str, involved: Mapping[str, Any], *, type_: str, reason: str, message: str) -> None:
        """A core/v1 Event, as `kubectl describe` shows them."""
        now = datetime.datetime.now(datetime.UTC)
        body = kubernetes.client.CoreV1Event(
            metadata=kubernetes.client.V1ObjectMeta(
                generate_name=f"{involved.get('name', 'pod')}.", namespace=namespace
            ),
            involved_object=kubernetes.client.V1ObjectReference(**{k: v for k, v in involved.items() if v}),
            type=type_,
            reason=reason,
            message=message[:1024],
            source=kubernetes.client.V1EventSource(component=COMPONENT),
            reporting_component=COMPONENT,
            first_timestamp=now,
            last_timestamp=now,
            count=1,
        )
        self.core.create_namespaced_event(namespace, body)

    def role_binding_owners(self, namespace: str, name: str) -> set[str] | None:
        """The uids of the binding's owners, or None when there is no such binding."""
        try:
            found = self.rbac.read_namespaced_role_binding(name, namespace)
        except exceptions.ApiException as exc:
            if exc.status == NotFound:
                return None
            raise
        return {ref.uid for ref in found.metadata.owner_references or []}

    def create_role_binding(
        self, namespace: str, name: str, *, cluster_role: str, subject: tuple[str, str], owner_uid: str
    ) -> None:
        """Bind ``subject`` (namespace, ServiceAccount name) to ``cluster_role`` in ``namespace``, owned by
        that ClusterRole (uid ``owner_uid``): when it is deleted (``helm uninstall``), the garbage collector
        deletes the binding. An existing binding of that name is left as it is."""
        owner = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "name": cluster_role}
        body = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {"app.kubernetes.io/managed-by": COMPONENT},
                "ownerReferences": [{**owner, "uid": owner_uid}],
            },
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role},
            "subjects": [{"kind": "ServiceAccount", "namespace": subject[0], "name": subject[1]}],
        }
        try:
            self.rbac.create_namespaced_role_binding(namespace, body)
        except exceptions.ApiException as exc:
            if exc.status != Conflict:
                raise

    def delete_role_binding(self, namespace: str, name: str) -> None:
        try:
            self.rbac.delete_namespaced_role_binding(name, namespace)
        except exceptions.ApiException as exc:
            if exc.status != NotFound:
                raise

    def namespaces_labelled(self, selector: str) -> list[str]:
        return [ns.metadata.name for ns in self.core.list_namespace(label_selector=selector).items]

    def pods(self, *, namespace: str | None = None, selector: str | None = None) -> list[Any]:
        if namespace is not None:
            return list(self.core.list_namespaced_pod(namespace, label_selector=selector).items)
        return list(self.core.list_pod_for_all_namespaces(label_selector=selector).items)

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        return dict(self.core.read_namespace(namespace).metadata.labels or {})

    def peering_exists(self, name: str, namespace: str | None) -> bool | None:
        """Whether kopf's peering object exists (a ClusterKopfPeering when ``namespace`` is None).

        None when this cannot tell (forbidden, API trouble): the caller then says nothing rather than
        something wrong. A missing peering CRD reads as a missing object."""
        try:
            if namespace is None:
                self.custom.get_cluster_custom_object(KOPF_GROUP, KOPF_VERSION, "clusterkopfpeerings", name)
            else:
                self.custom.get_namespaced_custom_object(KOPF_GROUP, KOPF_VERSION, namespace, "kopfpeerings", name)
        except exceptions.ApiException as exc:
            return False if exc.status == NotFound else None
        return True


def _default_client() -> kubernetes.client.ApiClient:
    """In-cluster credentials in a pod, else the kubeconfig (``KUBECONFIG`` or ~/.kube/config)."""
    config: Any = kubernetes.config
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return kubernetes.client.ApiClient()
