"""Telemetry: the per-request record, Prometheus metrics, and the one JSON log line per request.

Metric and log field names are declared once, here. Nothing in this package ever receives prompt
text or an API key: it is handed only the ``RequestRecord`` the server builds.
"""
