"""The knobs the routes document carries, as the serving process reads them: frozen msgspec Structs.

``pilotfish.api`` holds the same specs as pydantic models, for what users write (CRD schema with
descriptions, manifests, the webhook); the sidecar never imports pydantic, which alone costs it
about 10 MiB of resident memory. The enums and constants are defined here once and the api re-exports
them; a test (tests/pilotfish/specs/test_twins.py) fails when a field, default or wire name of an api
spec and its twin here differ.
"""
