"""Starts a mock in-process (tests, demo) or as ``pilotfish mock-provider`` (benchmarks, humans)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import signal
import sys
from collections.abc import Callable

import orjson
import pydantic
from aiohttp import web

from pilotfish.mocks import anthropic_server, control, faults, gemini_server, openai_server

Builder = Callable[..., web.Application]
BUILDERS: dict[str, Builder] = {
    "openai": openai_server.build_app,
    "azure-openai": functools.partial(openai_server.build_app, azure=True),
    "anthropic": anthropic_server.build_app,
    "gemini": gemini_server.build_app,
}


@dataclasses.dataclass
class RunningMock:
    runner: web.AppRunner
    port: int
    fault_state: faults.FaultState
    stats: control.Stats
    host: str = "127.0.0.1"

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    provider: str = "openai"

    @property
    def url(self) -> str:
        """The base URL a credential would name: OpenAI's ends in /v1; the others' are the origin."""
        return f"{self.origin}/v1" if self.provider == "openai" else self.origin

    def set_fault(self, fault: faults.Fault | None = None, **fields: object) -> None:
        self.fault_state.set(fault or faults.Fault.model_validate(fields))

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_mock(
    *,
    provider: str = "openai",
    name: str = "mock",
    host: str = "127.0.0.1",
    port: int = 0,
    api_key: str | None = None,
    fault: faults.Fault | None = None,
    seed: int = 0,
) -> RunningMock:
    state = faults.FaultState(fault, seed=seed)
    stats = control.Stats()
    app = BUILDERS[provider](name=name, api_key=api_key, fault_state=state, stats=stats)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1] if runner.addresses else port
    return RunningMock(runner=runner, port=int(bound), fault_state=state, stats=stats, host=host, provider=provider)


def main(*, provider: str, listen: str, name: str, api_key: str | None, fault: str | None) -> int:
    host, _, port = listen.rpartition(":")
    try:
        initial = faults.Fault.model_validate_json(fault) if fault else None
    except pydantic.ValidationError as exc:
        sys.stderr.write(f"--fault: {exc}\n")
        return 2

    async def run() -> None:
        mock = await start_mock(
            provider=provider,
            name=name,
            host=host or "127.0.0.1",
            port=int(port),
            api_key=api_key,
            fault=initial,
        )
        sys.stderr.write(orjson.dumps({"msg": "listening", "url": mock.url}).decode() + "\n")
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):  # as a pod's PID 1, SIGTERM is ignored unless handled
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        try:
            await stop.wait()
        finally:
            await mock.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0
