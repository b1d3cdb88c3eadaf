"""Entry point of ``pilotfish operator``: not built yet (see the operator issue), and says so."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(*, namespaces: Sequence[str] | None) -> int:
    sys.stderr.write(
        "pilotfish operator: the reconcilers are not implemented in this version; "
        "use `pilotfish render` to produce the routes document and `pilotfish local` to serve it.\n"
    )
    return 2
