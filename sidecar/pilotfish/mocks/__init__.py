"""Fault-injecting fake providers for the demo, the tests and the benchmarks.

Each speaks one vendor's wire format exactly (``openai_server`` for now); all share the fault model
(``faults``), the run-time control endpoints (``control``) and the runner. They bind to port 0 by
default, as kopf's own probe servers do, so tests never fight over ports.
"""
