"""``python -m e2e.testenv build|up|down|env``: the test control plane, for humans.

python -m e2e.testenv build     # build (or find) the binaries; prints where they are
eval "$(python -m e2e.testenv up)"   # start one in the background; exports KUBECONFIG
kubectl get modelclasses
python -m e2e.testenv down      # stop it and delete its data
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import shutil
import signal
import sys
import tempfile

from e2e.testenv import binaries, controlplane

STATE = pathlib.Path(tempfile.gettempdir()) / "pilotfish-testenv.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m e2e.testenv", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["build", "up", "down", "env"])
    command = parser.parse_args(argv).command
    try:
        return _run(command)
    except binaries.BinariesUnavailable as exc:
        sys.stderr.write(f"{exc}\n")
        return 2


def _run(command: str) -> int:
    if command == "build":
        bins = binaries.ensure()
        for name, path in vars(bins).items():
            print(f"{name}: {path}")
        times = binaries.cache_root() / "build-times.json"
        if times.exists():
            print(f"last build took (seconds): {json.loads(times.read_text())}")
        return 0
    if command == "up":
        if STATE.exists():
            sys.stderr.write(f"a control plane is already up ({STATE}); run `down` first\n")
            return 1
        plane = controlplane.ControlPlane(binaries.ensure(), detached=True).start()
        STATE.write_text(
            json.dumps(
                {
                    "workdir": str(plane.workdir),
                    "kubeconfig": str(plane.kubeconfig),
                    "pids": [p.pid for p in plane.processes.values()],
                }
            )
        )
        print(f"export KUBECONFIG={plane.kubeconfig}")
        sys.stderr.write(f"control plane up at {plane.server}; stop it with `python -m e2e.testenv down`\n")
        return 0
    if command == "env":
        if not STATE.exists():
            sys.stderr.write("no control plane is up\n")
            return 1
        print(f"export KUBECONFIG={json.loads(STATE.read_text())['kubeconfig']}")
        return 0
    if not STATE.exists():
        sys.stderr.write("no control plane is up\n")
        return 0
    state = json.loads(STATE.read_text())
    for pid in state["pids"]:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    shutil.rmtree(state["workdir"], ignore_errors=True)
    STATE.unlink()
    print("control plane stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
