"""Typed application keys shared by the API handlers (aiohttp AppKey)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from aiohttp import web

from pilotfish import memory
from pilotfish.budgets import allowances
from pilotfish.failover import engine
from pilotfish.routes import live
from pilotfish.telemetry import logs, metrics, tracing

LIVE = web.AppKey("live", live.LiveRoutes)
ENGINE = web.AppKey("engine", engine.Engine)
METRICS = web.AppKey("metrics", metrics.Metrics)
REQUEST_LOG = web.AppKey("request_log", logs.RequestLog)
MAX_BODY_BYTES = web.AppKey("max_body_bytes", int)
LARGE_PARSES = web.AppKey("large_parses", asyncio.Lock)  # one large body parsed at a time (bodies.parsing_turn)
WRITE_SECONDS = web.AppKey("write_seconds", float)  # the longest one write of a stream may wait for its client
TRACING = web.AppKey("tracing", tracing.Tracing)  # absent while tracing is off
BUDGET = web.AppKey("memory_budget", memory.MemoryBudget)  # the in-flight memory budget of the process
HOLD = web.RequestKey("hold", memory.Hold)  # this request's share of it; released when the request ends
POD_LABELS = web.AppKey("pod_labels", Mapping[str, str])  # the calling pod's labels, for tier rules
ALLOWANCES = web.AppKey("allowances", allowances.Allowances)  # absent when no operator keeps budgets
