"""The collector settings the serving modes apply once startup is done (``pilotfish.garbage``).

Each test runs in a child interpreter: freezing the test session's own objects would change what the
rest of the suite collects."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pilotfish import garbage
from pilotfish.modes import running

CHILD = """
import gc
from pilotfish import garbage
before = gc.get_threshold()
garbage.tune()
print(gc.get_freeze_count(), *gc.get_threshold(), *before)
"""


def test_tune_freezes_what_startup_built_and_collects_the_young_less_often() -> None:
    out = subprocess.run([sys.executable, "-c", CHILD], check=True, capture_output=True, text=True).stdout.split()
    frozen, young, middle, old, _, before_middle, before_old = map(int, out)
    assert frozen > 1000  # the interpreter and pilotfish's modules, at least
    assert young == garbage.YOUNG_THRESHOLD
    assert (middle, old) == (before_middle, before_old)  # the older generations keep their settings


class _Tuned(Exception):
    pass


def test_serving_modes_tune_the_collector_before_they_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    def tuned() -> None:
        raise _Tuned

    served: list[object] = []
    monkeypatch.setattr(garbage, "tune", tuned)
    monkeypatch.setattr(running.asyncio, "Runner", lambda **kwargs: served.append(kwargs))
    monkeypatch.setattr(running, "configure_logging", lambda: None)
    options = running.argparse.Namespace(
        listen="127.0.0.1:0",
        admin="127.0.0.1:0",
        max_body_bytes=1024,
        write_deadline_seconds=1.0,
        no_request_log=True,
        pod_labels_file=None,
        reload_interval=1.0,
        budget_url=None,
    )
    with pytest.raises(_Tuned):
        running.run_with_reloads(lambda: None, options=options)
    assert not served  # tuned before the loop starts serving
