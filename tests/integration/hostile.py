"""A hostile upstream for integration tests: a real HTTP server on loopback whose answers the test
writes, and which records everything it is sent (to prove what did, or did not, reach it).

The well-behaved fakes are in ``pilotfish.mocks`` and follow each vendor's documented format; this one
answers whatever a test needs a hostile provider, or a gateway in front of one, to answer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import pathlib
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from tests.integration import conftest

PROVIDER_HEADERS = ("authorization", "x-api-key", "x-goog-api-key", "api-key")  # every way a key travels


@dataclasses.dataclass(frozen=True)
class Received:
    """One request as the server saw it."""

    method: str
    path_qs: str
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def carries(self, secret: str) -> bool:
        """Whether the key or prompt ``secret`` arrived anywhere: a header, the URL or the body."""
        return (
            any(secret in value for value in self.headers.values())
            or secret in self.path_qs
            or (secret.encode() in self.body)
        )


Answer = Callable[[web.Request, Received], Awaitable[web.StreamResponse]]


async def _ok(request: web.Request, received: Received) -> web.StreamResponse:
    return web.json_response({"received": True})


@dataclasses.dataclass
class Hostile:
    runner: web.AppRunner
    origin: str
    received: list[Received]
    answer: Answer

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start(answer: Answer = _ok) -> Hostile:
    """A server on 127.0.0.1:0; set ``.answer`` to change what it says next."""
    received: list[Received] = []
    hostile: Hostile

    async def handle(request: web.Request) -> web.StreamResponse:
        seen = Received(
            method=request.method,
            path_qs=request.path_qs,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=await request.read(),
        )
        received.append(seen)
        return await hostile.answer(request, seen)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hostile = Hostile(
        runner=runner, origin=f"http://127.0.0.1:{runner.addresses[0][1]}", received=received, answer=answer
    )
    return hostile


@contextlib.asynccontextmanager
async def running(answer: Answer = _ok) -> AsyncIterator[Hostile]:
    """``start``, stopped on the way out."""
    upstream = await start(answer)
    try:
        yield upstream
    finally:
        await upstream.stop()


@contextlib.asynccontextmanager
async def serving(
    directory: pathlib.Path,
    credentials: list[Credential],
    classes_yaml: str,
    *,
    env: dict[str, str] | None = None,
) -> AsyncIterator[conftest.Sidecar]:
    """A `pilotfish local` on these credentials and classes, stopped on the way out."""
    manifest = write_manifests(directory, credentials, classes_yaml)
    sidecar = await conftest.start_sidecar(["local", "-f", str(manifest.parent)], env=env)
    try:
        yield sidecar
    finally:
        await conftest.stop_sidecar(sidecar)


@dataclasses.dataclass(frozen=True)
class Credential:
    name: str
    provider: str  # spec.provider: openai-compatible, azure-openai, anthropic, gemini
    base_url: str
    key: str


def write_manifests(directory: pathlib.Path, credentials: list[Credential], classes_yaml: str) -> pathlib.Path:
    """A Secret holding every key, one ProviderCredential each, and the given ModelClass YAML."""
    docs = [
        textwrap.dedent(f"""\
        apiVersion: v1
        kind: Secret
        metadata: {{name: hostile-keys}}
        stringData: {json.dumps({c.name: c.key for c in credentials})}
        """)
    ]
    docs += [
        textwrap.dedent(f"""\
        apiVersion: pilotfish.dev/v1alpha1
        kind: ProviderCredential
        metadata: {{name: {c.name}}}
        spec:
          provider: {c.provider}
          baseURL: {c.base_url}
          apiKeySecretRef: {{name: hostile-keys, key: {c.name}}}
          compliance: {{dpa: signed}}
        """)
        for c in credentials
    ]
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "all.yaml"
    path.write_text("---\n".join([*docs, textwrap.dedent(classes_yaml)]))
    return path


def class_yaml(name: str, members: list[tuple[str, str]], *, extra: str = "") -> str:
    """A ModelClass whose members are (credential, model), tried in order; breakers that never open."""
    lines = "\n".join(f"    - {{credentialRef: {cred}, model: {model}}}" for cred, model in members)
    return (
        "apiVersion: pilotfish.dev/v1alpha1\nkind: ModelClass\n"
        f"metadata: {{name: {name}}}\nspec:\n  members:\n{lines}\n"
        f"  routing: {{maxAttempts: {len(members)}, retryBudgetPercent: 100, sameMemberRetries: 0}}\n"
        "  health: {failureThreshold: 100, cooldownSeconds: 1}\n"
        "  timeouts: {connectSeconds: 2, firstTokenSeconds: 5, totalSeconds: 10}\n" + extra
    )
