"""Shared test setup: the source roots on sys.path when the package is not installed."""

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
for source_root in (ROOT / "sidecar", ROOT / "operator"):
    if str(source_root) not in sys.path:
        sys.path.insert(0, str(source_root))
