"""The calling pod's labels, as the downward API writes them into a file: ``key="value"`` a line.

The operator's injection mounts ``metadata.labels`` into the sidecar (``--pod-labels-file``) so tier
rules can match on the pod that calls (``spec.tiers.rules[].when.podLabels``). Labels are read once at
start: the tier rules of one pod's sidecar serve that pod only.
"""

from __future__ import annotations

import ast
import logging
import pathlib

MAX_BYTES = 256 * 1024  # labels are at most 63-character names and values; a pod has dozens, not thousands

_log = logging.getLogger("pilotfish.podinfo")


def read_labels(path: str | None) -> dict[str, str]:
    """The labels in ``path``; empty (and a warning) when there is no such file or it cannot be parsed."""
    if not path:
        return {}
    try:
        with open(path, "rb") as file:
            raw = file.read(MAX_BYTES + 1)
    except OSError as exc:
        _log.warning("pod labels not read from %s: %s", pathlib.Path(path), exc)
        return {}
    if len(raw) > MAX_BYTES:
        _log.warning("pod labels not read from %s: larger than %d bytes", path, MAX_BYTES)
        return {}
    return parse_labels(raw.decode("utf-8", errors="replace"))


def parse_labels(text: str) -> dict[str, str]:
    """``app="web"\\ntier="gold"`` → ``{"app": "web", "tier": "gold"}``; malformed lines are skipped."""
    labels: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, quoted = line.partition("=")
        if not sep or not key.strip():
            continue
        try:
            value = ast.literal_eval(quoted.strip())  # the kubelet writes Go-quoted strings
        except (ValueError, SyntaxError, RecursionError, MemoryError):
            continue
        if isinstance(value, str):
            labels[key.strip()] = value
    return labels
