"""Integration harness: real `pilotfish` processes on loopback, mock providers in the test's loop.

The sidecar runs as a subprocess exactly as users run it (`pilotfish local` / `pilotfish sidecar`),
ports chosen by the OS (port 0) and announced on stderr; the mocks run in the test's event loop so a
test can switch their faults between requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import pathlib
import re
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import anthropic
import openai
import pytest
from tests.chat import USER

from pilotfish.mocks import runner

ROOT = pathlib.Path(__file__).resolve().parents[2]
KEYS = {
    "primary": "sk-test-primary-5f2b",
    "backup": "sk-test-backup-9c1d",
    "third": "sk-test-third-77aa",
    "claude": "sk-ant-test-claude-41e0",
    "gemini": "gemini-test-key-93ab",
}
PROVIDERS = {"claude": "anthropic", "gemini": "gemini"}  # mock name → provider; the others speak OpenAI


@dataclasses.dataclass
class Sidecar:
    process: asyncio.subprocess.Process
    api: str
    admin: str
    stdout_lines: list[str]
    stderr_lines: list[str]
    # Every SDK client a test made, closed when the sidecar stops. Never left to the garbage collector: an
    # SDK client collected in a reference cycle has its sockets closed by their finalizers first, then
    # closes its pool from ``__del__`` in a task; that task unregisters the old descriptor numbers from the
    # event loop, which by then belong to newer connections, and those never read their answers (the
    # 20-client hang test lost ten answers this way, whenever a collection fell inside it).
    sdk_clients: list[openai.AsyncOpenAI | anthropic.AsyncAnthropic] = dataclasses.field(default_factory=list)

    def client(self, **kwargs: object) -> openai.AsyncOpenAI:
        """An OpenAI SDK client of this sidecar, closed with it."""
        client = openai.AsyncOpenAI(base_url=self.api + "/v1", api_key="unused-by-the-sidecar", max_retries=0, **kwargs)
        self.sdk_clients.append(client)
        return client

    def anthropic_client(self) -> anthropic.AsyncAnthropic:
        """An Anthropic SDK client of this sidecar, closed with it."""
        client = anthropic.AsyncAnthropic(base_url=self.api, api_key="unused-by-the-sidecar", max_retries=0)
        self.sdk_clients.append(client)
        return client

    async def get_json(self, path: str) -> dict[str, object]:
        async with aiohttp.ClientSession() as session, session.get(self.admin + path) as response:
            return await response.json()  # type: ignore[no-any-return]

    async def metrics(self) -> str:
        async with aiohttp.ClientSession() as session, session.get(self.admin + "/metrics") as response:
            return await response.text()

    async def member(self, class_name: str, member_id: str) -> dict[str, object]:
        members = (await self.get_json("/debug/members"))["classes"][class_name]["members"]  # type: ignore[index]
        return next(m for m in members if m["id"] == member_id)

    def log_records(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.stdout_lines if line.startswith("{")]

    async def last_request_line(self, *, timeout: float = 2.5, nth: int = 1) -> dict[str, Any]:
        """The newest request log line once there are at least ``nth``: a line is written as its response ends,
        so give the pipe a moment (``nth``: the line of the test's nth request, not an earlier one's)."""
        for _ in range(int(timeout / 0.02)):
            lines = [r for r in self.log_records() if r.get("msg") == "request"]
            if len(lines) >= nth:
                return lines[-1]
            await asyncio.sleep(0.02)
        raise AssertionError(f"fewer than {nth} request log lines")


async def _pump(stream: asyncio.StreamReader | None, into: list[str]) -> None:
    assert stream is not None
    async for line in stream:
        into.append(line.decode().rstrip("\n"))


async def start_sidecar(
    args: list[str],
    *,
    admin: str = "127.0.0.1:0",
    env: dict[str, str] | None = None,
    preexec: Callable[[], None] | None = None,
) -> Sidecar:
    """``admin``: a fixed admin address, for a scraper configured before the sidecar starts;
    ``env``: extra environment (e.g. the OTEL_* variables); ``preexec``: run in the child before it
    starts (e.g. to lower its open-file limit)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pilotfish.cli",
        *args,
        "--listen",
        "127.0.0.1:0",
        "--admin",
        admin,
        "--reload-interval",
        "0.1",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=preexec,
        env={
            **os.environ,
            "PYTHONPATH": f"{ROOT / 'sidecar'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            **(env or {}),
        },
    )
    stderr_lines: list[str] = []
    assert process.stderr is not None
    async with asyncio.timeout(20):
        while True:
            line = (await process.stderr.readline()).decode()
            if not line:
                raise RuntimeError("sidecar exited before listening:\n" + "\n".join(stderr_lines))
            stderr_lines.append(line.rstrip("\n"))
            if line.startswith('{"msg":"listening"'):
                announced = json.loads(line)
                break
    stdout_lines: list[str] = []
    sidecar = Sidecar(process, announced["api"], announced["admin"], stdout_lines, stderr_lines)
    sidecar._pumps = [  # type: ignore[attr-defined]
        asyncio.create_task(_pump(process.stdout, stdout_lines)),
        asyncio.create_task(_pump(process.stderr, stderr_lines)),
    ]
    return sidecar


async def stop_sidecar(sidecar: Sidecar) -> None:
    for client in sidecar.sdk_clients:
        with contextlib.suppress(Exception):  # a client that cannot close must not keep the sidecar running
            await asyncio.wait_for(client.close(), 10)
    with contextlib.suppress(ProcessLookupError):
        sidecar.process.terminate()
    try:
        async with asyncio.timeout(10):
            await sidecar.process.wait()
    except TimeoutError:
        sidecar.process.kill()
        await sidecar.process.wait()
    for task in sidecar._pumps:  # type: ignore[attr-defined]
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 2)


def manifests_for(mocks: dict[str, runner.RunningMock], class_yaml: str) -> str:
    """A Secret, one credential per mock (named like the mock) and the given ModelClass YAML."""
    docs = [
        textwrap.dedent(f"""\
        apiVersion: v1
        kind: Secret
        metadata: {{name: test-keys}}
        stringData: {json.dumps(KEYS)}
        """)
    ]
    for name, mock in mocks.items():
        docs.append(
            textwrap.dedent(f"""\
            apiVersion: pilotfish.dev/v1alpha1
            kind: ProviderCredential
            metadata: {{name: {name}}}
            spec:
              provider: {mock.provider if mock.provider in ("anthropic", "gemini") else "openai-compatible"}
              baseURL: {mock.url}
              apiKeySecretRef: {{name: test-keys, key: {name}}}
              compliance: {{dpa: signed}}
            """)
        )
    docs.append(textwrap.dedent(class_yaml))
    return "---\n".join(docs)


DEFAULT_CLASS = """\
apiVersion: pilotfish.dev/v1alpha1
kind: ModelClass
metadata: {name: workhorse}
spec:
  members:
    - {credentialRef: primary, model: model-a}
    - {credentialRef: backup, model: model-b}
  routing: {maxAttempts: 3, pinning: {header: x-conversation-id}}
  timeouts: {connectSeconds: 1, firstTokenSeconds: 0.5, totalSeconds: 10}
  health: {failureThreshold: 2, cooldownSeconds: 1}
"""


@pytest.fixture
async def mocks() -> AsyncIterator[dict[str, runner.RunningMock]]:
    started = {
        name: await runner.start_mock(name=name, api_key=key, provider=PROVIDERS.get(name, "openai"))
        for name, key in KEYS.items()
    }
    yield started
    for mock in started.values():
        await mock.stop()


LocalSidecar = Callable[..., Awaitable[Sidecar]]


@pytest.fixture
async def local_sidecar(tmp_path: pathlib.Path, mocks: dict[str, runner.RunningMock]) -> AsyncIterator[LocalSidecar]:
    """Factory: `await local_sidecar(class_yaml=...)` → a running `pilotfish local` on generated manifests."""
    running: list[Sidecar] = []

    async def start(class_yaml: str = DEFAULT_CLASS, *extra: str) -> Sidecar:
        manifest = tmp_path / "manifests" / "all.yaml"
        manifest.parent.mkdir(exist_ok=True)
        manifest.write_text(manifests_for(mocks, class_yaml))
        sidecar = await start_sidecar(["local", "-f", str(manifest.parent), *extra])
        running.append(sidecar)
        return sidecar

    yield start
    for sidecar in running:
        await stop_sidecar(sidecar)


@pytest.fixture
async def sidecar(local_sidecar: LocalSidecar) -> Sidecar:
    return await local_sidecar()


@dataclasses.dataclass(frozen=True)
class Streamed:
    """What a streaming client of class ``workhorse`` received through the official SDK."""

    text: str
    models: list[str]  # the distinct models its chunks named, in order: who wrote the answer
    finish: str | None  # the last finish reason
    error: openai.APIError | None  # the error the stream ended with (None: it finished)

    def whole(self) -> tuple[str, list[str], str | None]:
        """Text, models and finish reason of a stream that finished; the error it ended with is raised."""
        if self.error is not None:
            raise self.error
        return self.text, self.models, self.finish


async def streamed(sidecar: Sidecar, **extra: Any) -> Streamed:
    """One streaming request (``extra``: more request fields, e.g. ``tools``), read to its end."""
    stream = await sidecar.client().chat.completions.create(model="workhorse", messages=USER, stream=True, **extra)
    text: list[str] = []
    models: list[str] = []
    finish: str | None = None
    try:
        async for chunk in stream:
            if chunk.model not in models:
                models.append(chunk.model)
            if chunk.choices:
                text.append(chunk.choices[0].delta.content or "")
                finish = chunk.choices[0].finish_reason or finish
    except openai.APIError as exc:
        return Streamed("".join(text), models, finish, exc)
    return Streamed("".join(text), models, finish, None)


async def complete(client: openai.AsyncOpenAI, *, stream: bool, **kwargs: object) -> tuple[str, dict[str, str]]:
    """The answer text and the x-pilotfish-* headers, streaming or not, through the official SDK."""
    params: dict[str, object] = {"model": "workhorse", "messages": USER, **kwargs}
    if not stream:
        raw = await client.chat.completions.with_raw_response.create(**params)  # type: ignore[call-overload]
        return raw.parse().choices[0].message.content or "", _pilotfish_headers(raw.headers)
    raw = await client.chat.completions.with_raw_response.create(**params, stream=True)  # type: ignore[call-overload]
    text = "".join([chunk.choices[0].delta.content or "" async for chunk in raw.parse() if chunk.choices])
    return text, _pilotfish_headers(raw.headers)


def _pilotfish_headers(headers: object) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items() if k.lower().startswith("x-pilotfish-")}  # type: ignore[attr-defined]


def metric_sum(text: str, name: str, **labels: str) -> float:
    """The sum of the series of ``name`` in a /metrics text whose labels include ``labels`` (0 if none)."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
            total += float(match.group(2))
    return total


def answer_of(name: str) -> str:
    return runner.openai_server.ANSWER.format(name=name)
