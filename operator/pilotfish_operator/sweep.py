"""Finds opted-in pods that run without the sidecar: injection missed while the webhook was down.

With ``failurePolicy: Ignore`` an operator outage never blocks pod creation, so it has to be
visible afterwards instead: a Warning Event on each such pod (once) and a gauge to alert on.

The same pass reads each running sidecar's /readyz: the routes digest it serves (how far a change
got), the credentials its providers reject (the ProviderCredential's CredentialRejected condition) and
the members it learned unable to continue a stream (the ModelClass's PrefillMismatch condition).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pilotfish import failures
from pilotfish_operator import inject, kube, metrics

log = logging.getLogger("pilotfish.operator.sweep")
ALWAYS_EXCLUDED = frozenset({"kube-system", "kube-public", "kube-node-lease"})


def missed(pod: Any, *, namespace_enabled: bool, own_namespace: str | None) -> bool:
    """Pure: should this pod have the sidecar and does it lack it?"""
    meta = pod.metadata
    if meta.namespace in ALWAYS_EXCLUDED or meta.namespace == own_namespace:
        return False
    labels: Mapping[str, str] = meta.labels or {}
    annotations: Mapping[str, str] = meta.annotations or {}
    opted_in = labels.get(inject.INJECT_LABEL) == "true" or (
        namespace_enabled and labels.get(inject.INJECT_LABEL) != "false"
    )
    if not opted_in or inject.STATUS_ANNOTATION in annotations or (pod.spec and pod.spec.host_network):
        return False
    return (pod.status is None or pod.status.phase not in ("Succeeded", "Failed")) and meta.deletion_timestamp is None


UNREACHABLE = "unreachable"
# What a sidecar may report as a credential's rejection (failures.CredentialProblem values): anything
# else is ignored, so a compromised sidecar cannot write arbitrary text into a ProviderCredential.
REJECTION_REASONS = frozenset(problem.value for problem in failures.CredentialProblem)
# The same for why a member cannot continue a stream (failures.ContinuationProblem values).
CONTINUATION_REASONS = frozenset(problem.value for problem in failures.ContinuationProblem)
Learned = Mapping[str, Mapping[str, str]]  # class → member id → why it cannot continue a stream


@dataclasses.dataclass(frozen=True)
class SidecarReport:
    """What one sidecar's /readyz says: the routes digest it serves, the credentials rejected there, and
    the members it learned unable to continue a stream."""

    digest: str
    rejected: Mapping[str, str] = dataclasses.field(default_factory=dict)  # credential name → reason
    cannot_continue: Learned = dataclasses.field(default_factory=dict)


def read_sidecar(pod_ip: str, admin_port: int, *, timeout: float = 1.0) -> SidecarReport:
    """The sidecar's report from /readyz (a 503 while not ready still says which digest), or unreachable."""
    try:
        with urllib.request.urlopen(f"http://{pod_ip}:{admin_port}/readyz", timeout=timeout) as response:
            return _report(json.load(response))
    except urllib.error.HTTPError as exc:
        try:
            return _report(json.load(exc))
        except ValueError:
            return SidecarReport(UNREACHABLE)
    except (OSError, ValueError):
        return SidecarReport(UNREACHABLE)


def _report(body: Any) -> SidecarReport:
    if not isinstance(body, dict):
        return SidecarReport(UNREACHABLE)
    rejected = body.get("rejectedCredentials")
    reasons = {
        str(name): reason
        for name, reason in (rejected.items() if isinstance(rejected, dict) else ())
        if reason in REJECTION_REASONS
    }
    return SidecarReport(str(body.get("digest") or UNREACHABLE), reasons, _learned(body.get("cannotContinue")))


def _learned(reported: Any) -> dict[str, dict[str, str]]:
    """``cannotContinue`` as the sidecar serves it, keeping only string names and known reasons (which
    members a class really has is checked against its spec when the status is planned)."""
    learned: dict[str, dict[str, str]] = {}
    for class_name, members in reported.items() if isinstance(reported, dict) else ():
        for member_id, reason in members.items() if isinstance(members, dict) else ():
            if isinstance(class_name, str) and isinstance(member_id, str) and reason in CONTINUATION_REASONS:
                learned.setdefault(class_name, {})[member_id] = reason
    return learned


def merged_learned(reports: Iterable[Learned]) -> dict[str, dict[str, str]]:
    """Pure: what the sidecars of one namespace learned, together; the first reason read for a member wins
    (sidecars may differ: one saw a restart, another a rejection; either shows the declaration wrong)."""
    merged: dict[str, dict[str, str]] = {}
    for learned in reports:
        for class_name, members in sorted(learned.items()):
            for member_id, reason in sorted(members.items()):
                merged.setdefault(class_name, {}).setdefault(member_id, reason)
    return merged


class Sweeper:
    """Missed injections, and which routes digest each injected sidecar serves (how far a change got)."""

    def __init__(self, api: kube.Kube, *, own_namespace: str | None, interval: float, admin_port: int = 4001) -> None:
        self.api, self.own_namespace, self.interval, self.admin_port = api, own_namespace, interval, admin_port
        self._reported: set[str] = set()
        self.propagation: dict[str, collections.Counter[str]] = {}  # namespace → digest (or unreachable) → pods
        self.rejections: dict[str, dict[str, str]] = {}  # namespace → credential → reason, from running sidecars
        self.continuations: dict[str, dict[str, dict[str, str]]] = {}  # namespace → what its sidecars learned

    def sweep(self) -> list[str]:
        """One pass (blocking): the ``namespace/name`` of every pod that missed injection."""
        enabled = set(self.api.namespaces_labelled(f"{inject.INJECTION_NS_LABEL}=enabled"))
        pods = {p.metadata.uid: p for ns in sorted(enabled) for p in self.api.pods(namespace=ns)}
        pods.update({p.metadata.uid: p for p in self.api.pods(selector=f"{inject.INJECT_LABEL}=true")})
        found = [
            p
            for p in pods.values()
            if missed(p, namespace_enabled=p.metadata.namespace in enabled, own_namespace=self.own_namespace)
        ]
        metrics.INJECTION_MISSED.set(len(found))
        for pod in found:
            if pod.metadata.uid in self._reported:
                continue
            self._reported.add(pod.metadata.uid)
            involved = {
                "api_version": "v1",
                "kind": "Pod",
                "name": pod.metadata.name,
                "namespace": pod.metadata.namespace,
                "uid": pod.metadata.uid,
            }
            message = "opted in to the pilotfish sidecar but runs without it (was the webhook down?); recreate the pod"
            try:
                self.api.event(
                    pod.metadata.namespace, involved, type_="Warning", reason="InjectionMissed", message=message
                )
            except Exception as exc:
                log.warning(
                    "could not post InjectionMissed on %s/%s: %s", pod.metadata.namespace, pod.metadata.name, exc
                )
        self._reported &= {p.metadata.uid for p in found}
        self.propagation = self._propagation(pods.values())
        return [f"{p.metadata.namespace}/{p.metadata.name}" for p in found]

    def _propagation(self, pods: Iterable[Any]) -> dict[str, collections.Counter[str]]:
        serving = [
            p
            for p in pods
            if inject.STATUS_ANNOTATION in (p.metadata.annotations or {})
            and p.status is not None
            and p.status.phase == "Running"
            and p.status.pod_ip
        ]
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            reports = list(pool.map(lambda p: read_sidecar(p.status.pod_ip, self.admin_port), serving))
        counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        rejections: dict[str, dict[str, str]] = collections.defaultdict(dict)
        learned: dict[str, list[Learned]] = collections.defaultdict(list)
        for pod, report in zip(serving, reports, strict=True):
            counts[pod.metadata.namespace][report.digest] += 1
            namespace_rejections = rejections[pod.metadata.namespace]
            for name, reason in sorted(report.rejected.items()):
                namespace_rejections.setdefault(name, reason)
            learned[pod.metadata.namespace].append(report.cannot_continue)
        self.rejections = dict(rejections)
        self.continuations = {namespace: merged_learned(reports) for namespace, reports in learned.items()}
        metrics.SIDECARS.clear()
        for namespace, by_digest in counts.items():
            for digest, count in by_digest.items():
                metrics.SIDECARS.labels(namespace=namespace, digest=digest).set(count)
        return dict(counts)

    async def run(self, on_propagation: Callable[[str], None] | None = None) -> None:
        """Sweep forever; ``on_propagation(namespace)`` when the digests served there changed."""
        while True:
            before, rejected_before, learned_before = self.propagation, self.rejections, self.continuations
            try:
                names = await asyncio.to_thread(self.sweep)
                if names:
                    log.warning("pods opted in but without the sidecar: %s", ", ".join(names))
            except Exception as exc:
                log.warning("missed-injection sweep failed: %s", exc)
            if on_propagation is not None:
                for namespace in set(before) | set(self.propagation) | set(self.rejections) | set(self.continuations):
                    if (
                        before.get(namespace) != self.propagation.get(namespace)
                        or rejected_before.get(namespace) != self.rejections.get(namespace)
                        or learned_before.get(namespace) != self.continuations.get(namespace)
                    ):
                        on_propagation(namespace)
            await asyncio.sleep(self.interval)
