"""Local mode: the very manifests you would ``kubectl apply``, rendered as the operator renders them.

A change to any file re-renders. Manifest errors reject the new routes (the last good ones keep
serving) and are printed with file, document, object and field; members excluded by render (missing
credential, Secret or compliance label) are reported and the rest is served. Budgets are enforced with
counters kept in this process (``budgets.counters``): on a laptop the one process is the whole fleet.
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import sys
import time
from collections.abc import Sequence

from pilotfish.api import manifests
from pilotfish.budgets import counters
from pilotfish.modes import running
from pilotfish.routes import live, loader, render

_log = logging.getLogger("pilotfish.local")


class ManifestsInvalid(Exception):
    """The manifests have errors; the message lists every one."""


def main(*, paths: Sequence[str], namespace: str, options: argparse.Namespace) -> int:
    seen: list[object] = [None]

    def reload() -> live.Snapshot | None:
        fingerprint = _fingerprint(paths)
        if fingerprint == seen[0]:
            return None
        seen[0] = fingerprint
        return load_snapshot(paths=paths, namespace=namespace)

    return running.run_with_reloads(
        reload, options=options, browser_guard=True, budgets=counters.Counters(wall=time.time)
    )


def load_snapshot(*, paths: Sequence[str], namespace: str) -> loader.Snapshot:
    parsed = manifests.load_paths(paths, namespace=namespace)
    if parsed.errors:
        raise ManifestsInvalid("; ".join(str(error) for error in parsed.errors))
    snapshot, result = render.snapshot_from_manifests(parsed, namespace=namespace)
    for problem in (*result.problems(), *missing_keys(snapshot)):
        _log.warning("%s", problem)
    if not snapshot.document.classes:
        raise ManifestsInvalid("no ModelClass with an eligible member was found in " + ", ".join(paths))
    return snapshot


def missing_keys(snapshot: loader.Snapshot) -> list[str]:
    """A warning for every member whose Secret key is not in the manifests (a deleted Secret document):
    its attempts fail with ``key_missing`` and nothing is sent upstream without a key."""
    return [
        f'member {member.id} of class "{name}": Secret "{ref.name}" key "{ref.key}" is not in the manifests; '
        "requests to this member fail until it is (nothing is sent upstream without its key)"
        for name, route in snapshot.document.classes.items()
        for member in route.members
        if (ref := member.api_key_ref) is not None and (ref.name, ref.key) not in snapshot.keys
    ]


def print_render(*, paths: Sequence[str], namespace: str) -> int:
    """``pilotfish render``: the routes document on stdout, or every error on stderr (exit 1)."""
    parsed = manifests.load_paths(paths, namespace=namespace)
    for error in parsed.errors:
        sys.stderr.write(f"error: {error}\n")
    if parsed.errors:
        return 1
    _, result = render.snapshot_from_manifests(parsed, namespace=namespace)
    for problem in result.problems():
        sys.stderr.write(f"warning: {problem}\n")
    sys.stdout.write(result.document.to_json().decode() + "\n")
    return 0


def _fingerprint(paths: Sequence[str]) -> object:
    entries = []
    for path in manifests.expand_paths(paths):
        try:
            stat = pathlib.Path(path).stat()
            entries.append((str(path), stat.st_mtime_ns, stat.st_size))
        except OSError:
            entries.append((str(path), 0, -1))
    return tuple(entries)
