"""A real Prometheus server for tests (Debian's `prometheus` package), scraping loopback targets every second."""

from __future__ import annotations

import contextlib
import json
import pathlib
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import yaml
from e2e.testenv import controlplane, processes


class Prometheus:
    def __init__(self, url: str, process: subprocess.Popen[bytes], log: pathlib.Path) -> None:
        self.url, self.process, self.log = url, process, log

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; raises with Prometheus' own message when the expression is invalid."""
        with urllib.request.urlopen(
            f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}", timeout=10
        ) as r:
            body = json.load(r)
        if body.get("status") != "success":
            raise AssertionError(f"{expr}: {body}")
        return list(body["data"]["result"])

    def targets_up(self) -> int:
        return sum(float(sample["value"][1]) == 1 for sample in self.query("up"))


@contextlib.contextmanager
def running(
    workdir: pathlib.Path,
    targets: Mapping[str, Sequence[tuple[str, Mapping[str, str]]]],
    rule_files: Sequence[pathlib.Path] = (),
) -> Iterator[Prometheus]:
    """``targets``: job → [(host:port, extra labels)]."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise RuntimeError("prometheus is not installed (Debian: apt-get install prometheus; `make test` installs it)")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [
            {
                "job_name": job,
                # as the chart's ServiceMonitor does: the operator's series name the namespace they are about
                "honor_labels": job.endswith("-operator"),
                "static_configs": [{"targets": [target], "labels": dict(labels)} for target, labels in entries],
            }
            for job, entries in targets.items()
        ],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = controlplane.free_port()
    log = workdir / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Prometheus(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"prometheus did not start:\n{log.read_text()[-2000:]}") from None
                time.sleep(0.2)
        yield server
    finally:
        processes.stop_group(process.pid)
        process.poll()  # records the exit stop_group reaped, so Popen does not warn it is still running
