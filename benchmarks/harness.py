"""What every benchmark here shares: processes on loopback, their CPU and memory, a manifest, percentiles.

Used by ``sidecar_overhead`` (the sidecar tax), ``hang_onset`` and ``recovery_gap``: each starts mock
or bench upstreams and a ``pilotfish sidecar`` (what every pod runs) as separate processes, waits for them, and reads
their CPU time and RSS from /proc.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCH_KEY = "sk-bench"
BENCH_SECRET = "bench-keys"  # the Secret every manifest here names


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A port that refuses connections for the length of the block: bound, never listening, so no other
    process (a test suite beside the benchmark) can start a server on it while the benchmark runs."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0, *, any_status: bool = False) -> None:
    """Until ``url`` answers 2xx (or, with ``any_status``, at all: a server without a probe is up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            if any_status:
                return
            time.sleep(0.05)
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


@contextlib.contextmanager
def process(args: Sequence[str], *, env: Mapping[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A child process for the length of the block, output discarded, terminated (then killed) after."""
    proc = subprocess.Popen(
        list(args),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **env} if env else None,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used so far."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pin(pid: int, cpu: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setaffinity(pid, {cpu % (os.cpu_count() or 1)})


def unpin(pid: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setaffinity(pid, set(range(os.cpu_count() or 1)))


def pct(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (seconds), in milliseconds."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def manifest(
    credentials: Mapping[str, str],
    classes: Mapping[str, Sequence[tuple[str, str]]],
    *,
    provider: Mapping[str, str] | None = None,
    class_spec: Mapping[str, str] | None = None,
) -> str:
    """Manifests for ``pilotfish local``: one Secret, a ProviderCredential per ``credentials`` entry
    (name → base URL), a ModelClass per ``classes`` entry (name → [(credential, model)]).

    ``provider``: a credential's provider type (default openai-compatible); ``class_spec``: YAML lines added
    under a class's spec (indented two spaces), such as timeouts or health settings."""
    docs = [f"apiVersion: v1\nkind: Secret\nmetadata: {{name: {BENCH_SECRET}}}\nstringData: {{key: {BENCH_KEY}}}\n"]
    for name, base_url in credentials.items():
        kind = (provider or {}).get(name, "openai-compatible")
        docs.append(
            "apiVersion: pilotfish.dev/v1alpha1\nkind: ProviderCredential\n"
            f"metadata: {{name: {name}}}\nspec:\n  provider: {kind}\n  baseURL: {base_url}\n"
            f"  apiKeySecretRef: {{name: {BENCH_SECRET}, key: key}}\n"
        )
    for name, members in classes.items():
        listed = "".join(f"    - {{credentialRef: {cred}, model: {model}}}\n" for cred, model in members)
        extra = (class_spec or {}).get(name, "")
        docs.append(
            "apiVersion: pilotfish.dev/v1alpha1\nkind: ModelClass\n"
            f"metadata: {{name: {name}}}\nspec:\n  members:\n{listed}{extra}"
        )
    return "---\n".join(docs)


def sidecar_args(manifest_path: pathlib.Path, *, api_port: int, admin_port: int, request_log: bool = True) -> list[str]:
    """``pilotfish sidecar``, what every injected pod runs, with its defaults (request log on): serving the
    routes document rendered from ``manifest_path`` as the operator renders the ConfigMap, and the bench
    Secret, both in folders beside the manifest as the kubelet mounts them."""
    text = manifest_path.read_bytes()
    mounts = manifest_path.parent / f"mounts-{hashlib.sha256(text).hexdigest()[:12]}"  # one per manifest text
    config_dir, secrets_dir = mounts / "routes", mounts / "secrets"
    if not config_dir.exists():
        rendered = subprocess.run(
            [sys.executable, "-m", "pilotfish.cli", "render", "-f", str(manifest_path)],
            cwd=ROOT,
            check=True,
            capture_output=True,
        ).stdout
        (secrets_dir / BENCH_SECRET).mkdir(parents=True)
        (secrets_dir / BENCH_SECRET / "key").write_text(BENCH_KEY)
        config_dir.mkdir()
        (config_dir / "routes.json").write_bytes(rendered)  # the file name of the ConfigMap's key
    args = ["-m", "pilotfish.cli", "sidecar", f"--config-dir={config_dir}", f"--secrets-dir={secrets_dir}"]
    args += [f"--listen=127.0.0.1:{api_port}", f"--admin=127.0.0.1:{admin_port}"]
    return args if request_log else [*args, "--no-request-log"]
