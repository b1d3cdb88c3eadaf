"""The user-facing API: ModelClass and ProviderCredential as pydantic models, no I/O.

These models are the single source of truth: the CRD YAML in ``crds/`` is generated from them
(``pilotfish crds``) and a test fails when the two drift.
"""

GROUP = "pilotfish.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
