"""The operator's own Prometheus series, on a private registry served at ``/metrics``."""

from __future__ import annotations

import prometheus_client

REGISTRY = prometheus_client.CollectorRegistry()

RECONCILES = prometheus_client.Counter(
    "pilotfish_operator_reconciles_total", "Namespace reconcile passes.", ["result"], registry=REGISTRY
)
ROUTES_WRITES = prometheus_client.Counter(
    "pilotfish_operator_routes_writes_total", "Writes of pilotfish-routes ConfigMaps.", ["action"], registry=REGISTRY
)
INJECTIONS = prometheus_client.Counter(
    "pilotfish_operator_injections_total",
    "Admission decisions on pods: injected or skipped, with the reason.",
    ["result", "reason"],
    registry=REGISTRY,
)
INJECTION_MISSED = prometheus_client.Gauge(
    "pilotfish_operator_injection_missed_pods",
    "Opted-in pods running without the sidecar (created while the webhook was unreachable).",
    registry=REGISTRY,
)
ADMISSION_SECONDS = prometheus_client.Histogram(
    "pilotfish_operator_admission_duration_seconds",
    "Time to answer an admission review.",
    ["webhook"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=REGISTRY,
)
VALIDATIONS = prometheus_client.Counter(
    "pilotfish_operator_validations_total", "Validating admission decisions.", ["kind", "allowed"], registry=REGISTRY
)
SIDECARS = prometheus_client.Gauge(
    "pilotfish_operator_sidecars",
    "Running injected sidecars by the routes digest they serve (or unreachable): how far a change got.",
    ["namespace", "digest"],
    registry=REGISTRY,
)
BUDGET_USED = prometheus_client.Gauge(
    "pilotfish_operator_budget_used_ratio",
    "Share of a Budget's limit the namespace has used in the current window (1 = spent), as the sidecars "
    "report it; events fire at 0.8 and 1.",
    ["namespace", "budget", "limit"],
    registry=REGISTRY,
)
ALLOWANCE_CALLS = prometheus_client.Counter(
    "pilotfish_operator_allowance_requests_total",
    "Sidecar allowance requests, by result: granted, unauthenticated, forbidden (another namespace), invalid.",
    ["result"],
    registry=REGISTRY,
)
