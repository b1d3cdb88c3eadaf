"""A fleet of in-process sidecars of one namespace, drawing on the operator's budget allowances.

Each sidecar is the real API application (``server.app.build_app``) on its own loopback port, serving the
routes document the operator wrote into the namespace's ConfigMap, with its allowance client pointed at
the operator's TLS port and the namespace ServiceAccount's token (audience ``pilotfish``). Providers are
the wire-level mocks of ``pilotfish.mocks``. The Budgets' and the member quotas' kube tests share it, with
a restartable ``Operator`` and the rate-window waits (``fresh_minute``, ``wait_until_minute_after``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import pathlib
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from tests import chat, waiting
from tests.chat import USER, Answer
from tests.kube.conftest import RunningOperator, start_operator, stop_operator, wait_for

from pilotfish.api import budget, refs
from pilotfish.budgets import allowances, windows
from pilotfish.routes import document, live, loader
from pilotfish.server import app as server_app
from pilotfish.telemetry import metrics

ROOM_SECONDS = 40  # of a minute, for a burst to fit in one rate window on a busy machine


class Fleet:
    """``size`` sidecars serving ``doc``; ``ask`` sends one chat request through sidecar ``index``."""

    def __init__(self, doc: document.RoutesDocument, key_values: dict[tuple[str, str], str]) -> None:
        self.doc, self.key_values = doc, key_values
        self.runners: list[web.AppRunner] = []
        self.urls: list[str] = []
        self.registries: list[metrics.Metrics] = []
        self.session: aiohttp.ClientSession | None = None

    async def start(self, size: int, settings: allowances.AllowanceSettings) -> None:
        keys = {ref: refs.ApiKey(value) for ref, value in self.key_values.items()}
        for index in range(size):
            routes = live.LiveRoutes()
            routes.publish(loader.Snapshot(document=self.doc, keys=keys, digest=self.doc.digest()))
            registry = metrics.Metrics()
            pod = dataclasses.replace(settings, pod=f"app-{index}")
            app = server_app.build_app(
                routes=routes,
                metrics_registry=registry,
                settings=server_app.ServerSettings(
                    request_log=False, seed=index, allowances=allowances.OperatorSource(pod)
                ),
            )
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.runners.append(runner)
            self.registries.append(registry)
            self.urls.append(f"http://127.0.0.1:{runner.addresses[0][1]}")
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()
        for runner in self.runners:
            await runner.cleanup()

    async def ask(self, index: int, model: str = "workhorse") -> Answer:
        assert self.session is not None
        return await chat.post_chat(self.urls[index], {"model": model, "messages": USER}, session=self.session)

    async def burst(self, per_sidecar: int, model: str = "workhorse") -> list[Answer]:
        """Every sidecar sends ``per_sidecar`` requests one after another, all sidecars at once."""

        async def one_pod(index: int) -> list[Answer]:
            return [await self.ask(index, model) for _ in range(per_sidecar)]

        results = await asyncio.gather(*(one_pod(i) for i in range(len(self.urls))))
        return [answer for answers in results for answer in answers]

    def metric(self, name: str, **labels: str) -> float:
        """The sum over the fleet of every sample of ``name`` that carries these labels (and any others)."""
        total = 0.0
        for registry in self.registries:
            for family in registry.registry.collect():
                for sample in family.samples:
                    if sample.name == name and labels.items() <= sample.labels.items():
                        total += sample.value
        return total


class Operator:
    """One operator of a test module's own, stoppable and restartable at the same webhook address."""

    def __init__(self, plane: Any, workdir: pathlib.Path) -> None:
        self.plane, self.workdir = plane, workdir
        self.running: RunningOperator = start_operator(plane, workdir)
        self.port = int(self.running.webhook_url.rsplit(":", 1)[1])

    def restart(self) -> None:
        stop_operator(self.running)
        self.start()

    def stop(self) -> None:
        stop_operator(self.running)

    def start(self) -> None:
        self.running = start_operator(self.plane, self.workdir, webhook_port=self.port)

    def is_running(self) -> bool:
        return self.running.process.poll() is None


def allowance_settings(
    plane: Any, namespace: str, operator: Operator, tmp_path: pathlib.Path
) -> allowances.AllowanceSettings:
    """What the injector gives a sidecar of ``namespace``: the operator's allowance endpoint, its CA and a token."""
    assert plane.pki is not None
    return allowances.AllowanceSettings(
        url=f"https://127.0.0.1:{operator.port}",
        namespace=namespace,
        token_file=str(token_file(plane, namespace, tmp_path)),
        ca_file=str(plane.pki.ca_cert),
    )


def routes_when(
    plane: Any, namespace: str, ready: Callable[[document.RoutesDocument], bool], *, what: str
) -> document.RoutesDocument:
    """The routes document the operator wrote into the namespace's ConfigMap, once ``ready`` accepts it."""

    def read() -> document.RoutesDocument | None:
        done = plane.kubectl("get", "-n", namespace, "configmap", "pilotfish-routes", "-o", "json", check=False)
        if done.returncode != 0:
            return None
        doc = document.RoutesDocument.from_json(json.loads(done.stdout)["data"]["routes.json"])
        return doc if ready(doc) else None

    found: document.RoutesDocument = wait_for(read, timeout=90, what=what)
    return found


def token_file(plane: Any, namespace: str, directory: pathlib.Path, *, service_account: str = "app") -> pathlib.Path:
    """A ServiceAccount token for audience ``pilotfish``, as the injected projected volume would hold it."""
    plane.kubectl("create", "serviceaccount", service_account, "-n", namespace, check=False)
    token = plane.kubectl(
        "create", "token", service_account, "-n", namespace, "--audience", "pilotfish", "--duration", "1h"
    ).stdout.strip()
    path = directory / f"{namespace}-{service_account}.token"
    path.write_text(token)
    return path


def minute_key() -> str:
    """The rate window (UTC minute) the wall clock is in now."""
    return windows.window_of(budget.Limit.REQUESTS, budget.Period.DAY, wall=time.time()).key


async def fresh_minute() -> str:
    """Wait for a minute with at least ``ROOM_SECONDS`` left, so a burst fits in one window on a busy machine."""
    await waiting.minute_with_room(ROOM_SECONDS)
    return minute_key()


async def wait_until_minute_after(window: str) -> None:
    """Wait for the wall clock to leave rate window ``window`` (a UTC minute)."""
    while minute_key() == window:
        await asyncio.sleep(0.5)  # waits for the wall clock to reach the next window: the event under test


async def burst_in_one_window(fleet: Fleet, per_sidecar: int, *, tries: int = 3) -> tuple[list[Answer], str]:
    """Every sidecar's ``per_sidecar`` requests inside one rate window; a burst that straddled two is run again
    in a window it did not touch (the one it ended in has part of its limit spent) rather than measured across
    both."""
    for _ in range(tries):
        window = await fresh_minute()
        answers = await fleet.burst(per_sidecar)
        if minute_key() == window:
            return answers, window
        await wait_until_minute_after(minute_key())
    pytest.fail(f"no burst of {len(fleet.urls)}x{per_sidecar} requests fitted in one minute in {tries} tries")
