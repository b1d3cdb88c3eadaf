"""Converters from other gateways' configuration to Pilotfish manifests (``pilotfish import ...``).

Each converter is pure: text in, manifests and warnings out. Reading files, the environment and
writing the output happen in ``pilotfish.cli``.
"""
