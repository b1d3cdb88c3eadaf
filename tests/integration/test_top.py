"""`pilotfish top --once` against a real sidecar under traffic with a failover."""

from __future__ import annotations

import asyncio
import sys

from tests.integration.conftest import ROOT, USER
from tests.waiting import eventually


async def _top(*admin: str) -> str:
    args = [a for url in admin for a in ("--admin", url)]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pilotfish.cli",
        "top",
        *args,
        "--once",
        "--interval",
        "1.5",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "sidecar"), "PATH": "/usr/bin:/bin"},
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_top_shows_rates_circuits_and_failovers_per_member(sidecar, mocks):
    mocks["primary"].set_fault(mode="status", status=503)
    client = sidecar.client()
    stop = asyncio.Event()

    async def traffic() -> None:
        while not stop.is_set():
            await client.chat.completions.create(model="workhorse", messages=USER)
            await asyncio.sleep(0.02)

    task = asyncio.create_task(traffic())
    try:
        await eventually(  # failures so far opened the primary's circuit: the view below has it all
            lambda: sidecar.member("workhorse", "primary/model-a"), lambda m: m["state"] == "open", what="open"
        )
        text = await _top(sidecar.admin, "http://127.0.0.1:9")  # a second target that cannot be read
    finally:
        stop.set()
        await task
    lines = text.splitlines()
    assert lines[0].startswith("pilotfish top: rates over the last")
    header = lines[1].split()
    assert header[:4] == ["CLASS", "MEMBER", "PROVIDER", "CIRCUIT"]
    rows = {line.split()[1]: line.split() for line in lines[2:] if line.startswith("workhorse")}
    primary, backup = rows["primary/model-a"], rows["backup/model-b"]
    assert primary[3] == "open"
    assert float(backup[5]) > 0  # SERVED/S (how many a second is this machine's business, not the view's)
    assert float(primary[5]) == 0
    assert float(primary[7]) > 0  # FAILOVER/S: skipped while its circuit is open
    assert backup[8].endswith("ms")  # P95
    assert any(line.startswith("unreachable: http://127.0.0.1:9") for line in lines)
