"""How the sidecar gets its routes: ``sidecar`` (mounted ConfigMap + Secrets) or ``local`` (manifests).

Both publish snapshots into one ``routes.live.LiveRoutes`` and share ``serve`` for the two ports.
"""
