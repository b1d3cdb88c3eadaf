"""Pilotfish: multi-provider LLM failover as a property of the platform.

Two import packages ship in one distribution: ``pilotfish`` (this one: the data-plane sidecar, the
shared operator ↔ sidecar contract and the CLI; it never imports kopf or kubernetes) and
``pilotfish_operator`` (the kopf operator, which imports ``pilotfish`` and never the reverse).
"""

__version__ = "0.1.0"
