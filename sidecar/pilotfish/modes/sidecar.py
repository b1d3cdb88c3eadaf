"""Container mode: the routes ConfigMap and the Secrets it names, mounted as Kubernetes mounts them."""

from __future__ import annotations

import argparse

from pilotfish.modes import running
from pilotfish.routes import live, loader


def main(*, config_dir: str, secrets_dir: str, options: argparse.Namespace) -> int:
    routes_loader = loader.RoutesLoader(config_dir=config_dir, secrets_dir=secrets_dir)

    def reload() -> live.Snapshot | None:
        if not routes_loader.changed():
            return None
        return routes_loader.load()

    return running.run_with_reloads(reload, options=options)
